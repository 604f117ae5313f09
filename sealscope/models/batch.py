"""The server's models (app/models/batch.py); the client distribution ships a copy."""

from app.models.batch import *  # noqa: F403
