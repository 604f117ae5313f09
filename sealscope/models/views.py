"""The server's models (app/models/views.py); the client distribution ships a copy."""

from app.models.views import *  # noqa: F403
