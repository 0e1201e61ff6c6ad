"""Middlewares that stamp a stage file's app-owned headers: `asgi` and `django`."""
