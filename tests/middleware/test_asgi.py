"""The pure ASGI middleware, driven with raw ASGI calls and with Starlette/FastAPI apps."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from middleware_support import APP, write_stage_file
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

import rollout.middleware.watch as watch
from rollout.middleware.asgi import SecurityHeaders

Message = dict[str, Any]


def plain_app(headers: list[tuple[bytes, bytes]] | None = None, status: int = 200) -> Any:
    """A raw ASGI app answering every request with these headers."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers or []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def call(app: Any, **scope: Any) -> list[Message]:
    """Run one HTTP request through app and return what it sent."""
    sent: list[Message] = []
    full = {
        "type": "http",
        "scheme": "https",
        "method": "GET",
        "path": "/",
        "headers": [],
        "client": ("203.0.113.9", 5000),
        **scope,
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(full, receive, send))
    return sent


def response_headers(sent: list[Message]) -> list[tuple[str, str]]:
    """The response-start headers as (lower-case name, value) strings."""
    start = next(m for m in sent if m["type"] == "http.response.start")
    return [(n.decode().lower(), v.decode()) for n, v in start["headers"]]


def test_stamps_every_app_owned_header_on_https(stage_file: Path) -> None:
    """An https response carries each app-owned header once, HSTS included."""
    sent = call(SecurityHeaders(plain_app(), settings=stage_file))
    assert sorted(response_headers(sent)) == sorted(APP.items())


def test_never_emits_edge_owned_headers(stage_file: Path) -> None:
    """Headers the edge owns (nosniff here) are left to the proxy."""
    names = [n for n, _ in response_headers(call(SecurityHeaders(plain_app(), stage_file)))]
    assert "x-content-type-options" not in names


def test_route_header_wins_whatever_its_case(stage_file: Path) -> None:
    """A header the route set, in any case, is kept and never doubled."""
    app = plain_app([(b"X-Frame-Options", b"SAMEORIGIN")])
    headers = response_headers(call(SecurityHeaders(app, stage_file)))
    assert [v for n, v in headers if n == "x-frame-options"] == ["SAMEORIGIN"]


def test_app_header_list_is_not_mutated(stage_file: Path) -> None:
    """A response object the app reuses keeps its own header list unchanged."""
    shared = [(b"content-type", b"text/plain")]
    middleware = SecurityHeaders(plain_app(shared), stage_file)
    call(middleware)
    call(middleware)
    assert shared == [(b"content-type", b"text/plain")]


def test_no_hsts_over_plain_http(stage_file: Path) -> None:
    """Plain http gets the other app-owned headers but never HSTS."""
    headers = dict(response_headers(call(SecurityHeaders(plain_app(), stage_file), scheme="http")))
    assert "strict-transport-security" not in headers
    assert headers["x-frame-options"] == "DENY"


def test_hsts_when_a_trusted_proxy_says_https(stage_file: Path) -> None:
    """X-Forwarded-Proto: https from a trusted proxy address counts as https."""
    app = SecurityHeaders(plain_app(), stage_file, trusted_proxies=["10.0.0.1"])
    sent = call(
        app,
        scheme="http",
        client=("10.0.0.1", 4000),
        headers=[(b"x-forwarded-proto", b"https")],
    )
    assert dict(response_headers(sent))["strict-transport-security"] == "max-age=300"


def test_x_forwarded_proto_from_untrusted_client_is_ignored(stage_file: Path) -> None:
    """A client that is not a trusted proxy cannot claim https with X-Forwarded-Proto."""
    app = SecurityHeaders(plain_app(), stage_file, trusted_proxies=["10.0.0.1"])
    sent = call(
        app,
        scheme="http",
        client=("198.51.100.7", 4000),
        headers=[(b"x-forwarded-proto", b"https")],
    )
    assert "strict-transport-security" not in dict(response_headers(sent))


def test_missing_file_is_stage_off(tmp_path: Path) -> None:
    """Without a stage file the middleware adds nothing."""
    sent = call(SecurityHeaders(plain_app(), tmp_path / "absent.toml"))
    assert response_headers(sent) == []


def test_websocket_and_lifespan_pass_through_untouched(stage_file: Path) -> None:
    """Non-HTTP scopes reach the app with the server's own send callable."""
    seen: list[tuple[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], send))

    middleware = SecurityHeaders(app, stage_file)

    async def send(message: Message) -> None:
        pass

    async def receive() -> Message:
        return {}

    for kind in ("websocket", "lifespan"):
        asyncio.run(middleware({"type": kind}, receive, send))
    assert seen == [("websocket", send), ("lifespan", send)]


def test_streaming_body_is_not_buffered(stage_file: Path) -> None:
    """The first chunk reaches the server before the app has produced the second."""
    got_first = asyncio.Event()
    sent: list[Message] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await asyncio.wait_for(got_first.wait(), timeout=5)  # times out if buffered
        await send({"type": "http.response.body", "body": b"two"})

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("body") == b"one":
            got_first.set()

    async def receive() -> Message:
        return {"type": "http.request"}

    scope = {"type": "http", "scheme": "https", "headers": [], "client": None}
    asyncio.run(SecurityHeaders(app, stage_file)(scope, receive, send))
    assert [m.get("body") for m in sent[1:]] == [b"one", b"two"]
    assert "permissions-policy" in dict(response_headers(sent))


def test_reloads_a_changed_file_after_the_interval(
    stage_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rewrite shows only once the one-second interval has passed on the monotonic clock."""
    now = [1000.0]
    monkeypatch.setattr(watch.time, "monotonic", lambda: now[0])
    monkeypatch.setattr("rollout.middleware.asgi.monotonic", lambda: now[0])
    middleware = SecurityHeaders(plain_app(), stage_file)
    hsts_1h = {**APP, "strict-transport-security": "max-age=3600"}
    write_stage_file(stage_file, app=hsts_1h, stage=2, name="hsts-1h")
    now[0] += 0.5
    assert dict(response_headers(call(middleware)))["strict-transport-security"] == "max-age=300"
    now[0] += 0.6
    assert dict(response_headers(call(middleware)))["strict-transport-security"] == "max-age=3600"


def test_bad_file_logs_one_error_and_keeps_last_good(
    stage_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A corrupt rewrite is reported once and the previous headers stay in force."""
    middleware = SecurityHeaders(plain_app(), stage_file, check_interval=0)
    stage_file.write_text('environment = "staging"\nstage = "sideways"\n[app]\n[edge]\n')
    with caplog.at_level(logging.ERROR, logger="rollout.middleware"):
        for _ in range(5):
            headers = dict(response_headers(call(middleware)))
    assert headers["strict-transport-security"] == "max-age=300"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "stage: 'sideways'" in errors[0].getMessage()
    assert str(stage_file) in errors[0].getMessage()


def test_file_appearing_later_turns_headers_on(tmp_path: Path) -> None:
    """A stage file created after start-up is picked up at the next check."""
    path = tmp_path / "staging.toml"
    middleware = SecurityHeaders(plain_app(), path, check_interval=0)
    assert response_headers(call(middleware)) == []
    write_stage_file(path)
    assert dict(response_headers(call(middleware)))["x-frame-options"] == "DENY"


def starlette_app() -> Starlette:
    """A Starlette app with a page, a failing route and a streaming route."""

    async def page(request: Any) -> Response:
        return PlainTextResponse("hello")

    async def boom(request: Any) -> Response:
        raise RuntimeError("unhandled")

    async def stream(request: Any) -> Response:
        async def chunks() -> Any:
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks())

    return Starlette(
        routes=[Route("/", page), Route("/boom", boom), Route("/stream", stream)],
    )


def get(app: Any, path: str) -> httpx.Response:
    """GET path from app in process, server errors answered rather than raised."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="https://app.test") as c:
            return await c.get(path)

    return asyncio.run(run())


@pytest.mark.parametrize(("path", "status"), [("/", 200), ("/missing", 404), ("/stream", 200)])
def test_starlette_pages_404_and_streams_carry_headers(
    stage_file: Path, path: str, status: int
) -> None:
    """Starlette's pages, its 404 and a streaming response all get the headers."""
    response = get(SecurityHeaders(starlette_app(), stage_file), path)
    assert response.status_code == status
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["strict-transport-security"] == "max-age=300"


def test_unhandled_exception_500_carries_headers_when_wrapping_outside(stage_file: Path) -> None:
    """Wrapping the whole app puts the headers on ServerErrorMiddleware's 500 too."""
    response = get(SecurityHeaders(starlette_app(), stage_file), "/boom")
    assert response.status_code == 500
    assert response.headers["permissions-policy"] == "geolocation=(), camera=()"


def test_add_middleware_inside_misses_the_500(stage_file: Path) -> None:
    """Added with add_middleware it sits inside ServerErrorMiddleware, so the 500 lacks them."""
    app = starlette_app()
    app.add_middleware(SecurityHeaders, settings=stage_file)
    assert get(app, "/").headers["x-frame-options"] == "DENY"
    response = get(app, "/boom")
    assert response.status_code == 500
    assert "x-frame-options" not in response.headers


def test_fastapi_route_override_is_kept(stage_file: Path) -> None:
    """A FastAPI route that sets its own X-Frame-Options keeps it, with no second copy."""
    api = FastAPI()

    @api.get("/embed")
    def embed(response: Response) -> dict[str, str]:
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return {"ok": "yes"}

    response = get(SecurityHeaders(api, stage_file), "/embed")
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
