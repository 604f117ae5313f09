"""The server's models (app/models/guest.py); the client distribution ships a copy."""

from app.models.guest import *  # noqa: F403
