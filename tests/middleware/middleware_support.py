"""Stage files for the middleware tests, written the way rollout writes them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from rollout.middleware.asgi import SecurityHeaders
from rollout.settings import StageSettings, dumps

APP = {
    "strict-transport-security": "max-age=300",
    "content-security-policy-report-only": "default-src 'self'; report-uri /csp",
    "permissions-policy": "geolocation=(), camera=()",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
}
EDGE = {"x-content-type-options": "nosniff"}

WriteStage = Callable[..., Path]


def write_stage_file(
    path: Path,
    app: Mapping[str, str] = APP,
    edge: Mapping[str, str] = EDGE,
    stage: int | None = 1,
    name: str = "hsts-5m",
) -> Path:
    """Replace path atomically with a stage file holding these headers."""
    settings = StageSettings("staging", stage, name if stage is not None else "off", app, edge)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(dumps(settings)))
    os.replace(tmp, path)
    return path


# Stage files the middleware must refuse, as raw bytes: a value that is not UTF-8, one
# ending in a newline (a TOML escape, so the file itself is valid TOML), and one its
# header's grammar refuses.
BAD_VERSIONS = {
    "invalid-utf8": b'"DENY\xff"',
    "newline-escape": b'"DENY\\n"',
    "bad-grammar": b'"ALLOWALL"',
}


def write_bad_stage_file(path: Path, bad_value: bytes) -> Path:
    """Replace path atomically with a stage file whose x-frame-options value is bad_value."""
    text = (
        b'environment = "staging"\nstage = 1\nname = "hsts-5m"\n\n[app]\n'
        b'"strict-transport-security" = "max-age=300"\n'
        b'"x-frame-options" = ' + bad_value + b"\n\n[edge]\n"
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(text)
    os.replace(tmp, path)
    return path


async def page_app(scope: Any, receive: Any, send: Any) -> None:
    """A plain 200 page."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def headers_of(middleware: SecurityHeaders) -> dict[bytes, bytes]:
    """The headers one https request through middleware gets, by lower-case name."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "scheme": "https", "method": "GET", "path": "/", "headers": []}
    asyncio.run(middleware(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    pairs = [(n.lower(), v) for n, v in start["headers"]]
    assert all(b"\n" not in v and b"\r" not in v for _, v in pairs)  # never an injection
    return dict(pairs)


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The messages logged on rollout.middleware at exactly this level."""
    return [r.getMessage() for r in caplog.records if r.levelno == level]
