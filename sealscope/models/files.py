"""The server's models (app/models/files.py); the client distribution ships a copy."""

from app.models.files import *  # noqa: F403
