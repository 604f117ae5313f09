"""The server's models (app/models/kvm.py); the client distribution ships a copy."""

from app.models.kvm import *  # noqa: F403
