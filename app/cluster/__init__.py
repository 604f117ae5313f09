"""Running sealscope past one process: a private PostgreSQL, HAProxy, N workers."""
