"""The server's models (app/models/sessions.py); the client distribution ships a copy."""

from app.models.sessions import *  # noqa: F403
