"""The middleware and renderers stay light: no pydantic, aiohttp, httpx, click or frameworks."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "rollout.middleware.asgi",
    "rollout.render.headers",
    "rollout.render.json",
    "rollout.render.nginx",
    "rollout.render.apache",
    "rollout.render.django",
]


def test_no_heavy_imports() -> None:
    """Importing the ASGI middleware and every renderer pulls in none of the heavy packages."""
    code = (
        f"import sys\nfor m in {MODULES!r}: __import__(m)\n"
        "print(sorted(m for m in ('pydantic', 'aiohttp', 'httpx', 'click', 'starlette', 'django')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
