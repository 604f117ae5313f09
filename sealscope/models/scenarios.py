"""The server's models (app/models/scenarios.py); the client distribution ships a copy."""

from app.models.scenarios import *  # noqa: F403
