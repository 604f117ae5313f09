"""The server's models (app/models/compare.py); the client distribution ships a copy."""

from app.models.compare import *  # noqa: F403
