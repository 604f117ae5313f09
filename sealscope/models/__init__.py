"""The server's own pydantic models, as the client sees them.

In a checkout (and the full distribution) each module here re-exports app/models/ (the
same classes); the client-only distribution (client/) ships a copy of app/models/ in
their place, so it needs neither the engine nor a top-level `app` package."""
