"""The header-middleware contenders: one trivial Starlette app, six ways to add six headers.

Built the same way in process and under uvicorn (`uvicorn --factory middleware_apps:build`
with `BENCH_CONTENDER` naming one). Every contender is configured to send exactly the six
values of `HEADERS`; `middleware_speed.py` checks that with a real request before timing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

HEADERS = {
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "content-security-policy": "default-src 'self'; object-src 'none'; base-uri 'self'",
    "permissions-policy": "geolocation=(), camera=(), microphone=()",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
}

BARE = "bare app"
FLOOR = "floor: the route sets the six headers"
ROLLOUT = "rollout SecurityHeaders (stage file)"
SEEDS_ASGI = "seeds' pure ASGI class"
SEEDS_BASE = "seeds' BaseHTTPMiddleware + setdefault"
SECURE = "secure 2 SecureASGIMiddleware"
SECWEB = "secweb SecWeb"


async def _home(request: Request) -> Response:
    return PlainTextResponse("hello")


async def _home_with_headers(request: Request) -> Response:
    return PlainTextResponse("hello", headers=HEADERS)


def bare() -> Starlette:
    """The app under test: one plain-text route."""
    return Starlette(routes=[Route("/", _home)])


def floor() -> Starlette:
    """The same route returning the six headers itself: what they cost with no middleware."""
    return Starlette(routes=[Route("/", _home_with_headers)])


def rollout(stage_file: str) -> Any:
    """rollout's middleware around the whole app, as docs/middleware.md says to wrap it."""
    from rollout.middleware.asgi import SecurityHeaders

    return SecurityHeaders(bare(), settings=stage_file)


class SeedsSecurityHeaders:
    """The seeds' pure ASGI class: wraps send, skips the headers the route already set."""

    def __init__(self, app: Any, headers: dict[str, str] = HEADERS) -> None:
        self.app = app
        self.headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in self.headers if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)


def seeds_asgi() -> Any:
    return SeedsSecurityHeaders(bare())


class SetdefaultMiddleware(BaseHTTPMiddleware):
    """The seeds' (and the blog posts') way: BaseHTTPMiddleware and headers.setdefault."""

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def seeds_base() -> Any:
    app = bare()
    app.add_middleware(SetdefaultMiddleware)
    return app


def secure() -> Any:
    """`secure`'s ASGI middleware, added as its README shows, with exactly our six values."""
    from secure import Secure
    from secure.headers import CustomHeader
    from secure.middleware import SecureASGIMiddleware

    headers = Secure(custom=[CustomHeader(name, value) for name, value in HEADERS.items()])
    app = bare()
    app.add_middleware(SecureASGIMiddleware, secure=headers)
    return app


def secweb() -> Any:
    """`SecWeb` with its other headers switched off; it has no Permissions-Policy option, so
    that one goes through its own `SetMiddleware`, which merges into the same layer."""
    from Secweb import SecWeb
    from Secweb.middleware import SetMiddleware

    app = bare()
    off = ["coep", "coop", "corp", "xss", "xcdp", "xdns", "xdo", "oac", "cache_control", "wshsts"]
    options: dict[str, Any] = dict.fromkeys(off, False)
    options |= {
        "hsts": {"max-age": 31536000, "includeSubDomains": True},
        "csp": {"default-src": ["'self'"], "object-src": ["'none'"], "base-uri": ["'self'"]},
        "referrer": ["strict-origin-when-cross-origin"],
        "xframe": "DENY",
    }
    SecWeb(app, options=options)  # type: ignore[arg-type]
    pp = HEADERS["permissions-policy"].encode()
    app.add_middleware(SetMiddleware, headers=[(b"Permissions-Policy", pp)])
    return app


def contenders(stage_file: str) -> dict[str, Callable[[], Any]]:
    """Each contender's factory, by its name on the page."""
    return {
        BARE: bare,
        FLOOR: floor,
        ROLLOUT: lambda: rollout(stage_file),
        SEEDS_ASGI: seeds_asgi,
        SEEDS_BASE: seeds_base,
        SECURE: secure,
        SECWEB: secweb,
    }


def write_stage_file(path: Path) -> None:
    """A real stage file (rollout's own writer) whose app-owned headers are the six."""
    import tomli_w

    from rollout.settings import StageSettings, dumps

    path.write_text(tomli_w.dumps(dumps(StageSettings("bench", 6, "hsts-1y", HEADERS))))


def build() -> Any:
    """uvicorn's factory: the contender named by $BENCH_CONTENDER."""
    return contenders(os.environ["BENCH_STAGE_FILE"])[os.environ["BENCH_CONTENDER"]]()
