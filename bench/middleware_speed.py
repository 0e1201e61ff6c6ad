"""Per-request cost of header middlewares on a Starlette `GET /`, in process, same run.

Usage: .venv/bin/python bench/middleware_speed.py [--requests 20000] [--reps 7]

Drives each variant with raw ASGI calls (no server, no client: only the app and its
middleware are timed), in turns, and prints the median time per request and its ratio to
the bare app measured in the same run, as ANCHORS.md does. Six security headers, all
app-owned. Absolute figures drift on shared machines; the ratios are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import tomli_w
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from rollout.middleware.asgi import SecurityHeaders
from rollout.settings import StageSettings, dumps

HEADERS = {
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "content-security-policy": "default-src 'self'; object-src 'none'; base-uri 'self'",
    "permissions-policy": "geolocation=(), camera=(), microphone=()",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
}

App = Callable[[Any, Any, Any], Awaitable[None]]


def bare() -> Starlette:
    """The app under test: one plain-text route."""

    async def home(request: Request) -> Response:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", home)])


class SetdefaultMiddleware(BaseHTTPMiddleware):
    """The blog-post way: BaseHTTPMiddleware and `response.headers.setdefault`."""

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def variants(stage_file: Path) -> dict[str, App]:
    """Each variant as one ASGI callable, built once."""
    with_base = bare()
    with_base.add_middleware(SetdefaultMiddleware)
    return {
        "bare app": bare(),
        "rollout SecurityHeaders (pure ASGI)": SecurityHeaders(bare(), settings=stage_file),
        "BaseHTTPMiddleware + headers.setdefault": with_base,
    }


async def run(app: App, requests: int) -> float:
    """Seconds per request over `requests` GET / calls."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "https",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench.test")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 443),
    }
    sent = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        sent += 1

    start = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - start
    assert sent >= 2 * requests  # start + body (some variants send an extra empty body)
    return elapsed / requests


async def check(apps: dict[str, App]) -> None:
    """Every middleware variant really sends the six headers (a bench of a no-op is void)."""
    for name, app in list(apps.items())[1:]:
        headers: list[tuple[bytes, bytes]] = []

        async def send(message: dict[str, Any], into: list[Any] = headers) -> None:
            if message["type"] == "http.response.start":
                into.extend(message["headers"])

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        scope = {
            "type": "http",
            "scheme": "https",
            "method": "GET",
            "path": "/",
            "headers": [],
            "query_string": b"",
            "root_path": "",
            "client": None,
        }
        await app(scope, receive, send)
        got = {n.decode() for n, _ in headers}
        assert set(HEADERS) <= got, f"{name} sent {sorted(got)}"


async def main(requests: int, reps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stage_file = Path(tmp) / "production.toml"
        stage_file.write_text(tomli_w.dumps(dumps(StageSettings("bench", 6, "hsts-1y", HEADERS))))
        apps = variants(stage_file)
        await check(apps)
        for app in apps.values():  # warm-up: imports, caches, first reload
            await run(app, requests // 10)
        timings: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(reps):  # in turns, so drift hits every variant alike
            for name, app in apps.items():
                timings[name].append(await run(app, requests))
    base = statistics.median(timings["bare app"])
    print(f"{requests} requests x {reps} reps, median per request, ratio to bare (same run)")
    print(f"{'variant':<42} {'µs/req':>8} {'ratio':>6}")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:<42} {median * 1e6:>8.1f} {median / base:>6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.reps))
