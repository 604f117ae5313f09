"""The server's models (app/models/common.py); the client distribution ships a copy."""

from app.models.common import *  # noqa: F403
