"""The request side stays light: the middleware's report endpoint, the SQLite store and the
standalone app pull in no pydantic, aiohttp, httpx, click or framework."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "rollout.middleware.asgi",
    "rollout.reports.endpoint",
    "rollout.reports.store",
    "rollout.reports.writer",
    "rollout.reports.app",
]


def test_no_heavy_imports() -> None:
    """Importing the report endpoint, the writer, the store and the app imports none of the
    heavy packages, nor the header grammars (the writer loads those off the request path)."""
    heavy = ("pydantic", "aiohttp", "httpx", "click", "starlette", "django", "psycopg")
    code = (
        f"import sys\nfor m in {MODULES!r}: __import__(m)\n"
        f"print(sorted(m for m in {heavy!r} + ('rollout.headers',) if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
