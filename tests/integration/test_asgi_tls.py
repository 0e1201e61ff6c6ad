"""SecurityHeaders on a real uvicorn over TLS: pages, 404s, 500s and streams."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from rollout_itest import UvicornThread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from rollout.middleware.asgi import SecurityHeaders
from rollout.settings import StageSettings

pytestmark = pytest.mark.integration

APP = {
    "strict-transport-security": "max-age=3600",
    "content-security-policy-report-only": "default-src 'self'",
    "x-frame-options": "DENY",
}


def app() -> Starlette:
    """Starlette with a page, an unhandled exception and a streaming route."""

    async def page(request: Request) -> Response:
        return PlainTextResponse("hello")

    async def boom(request: Request) -> Response:
        raise RuntimeError("unhandled")

    async def stream(request: Request) -> Response:
        async def chunks() -> Any:
            for i in range(3):
                yield f"chunk {i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    return Starlette(routes=[Route("/", page), Route("/boom", boom), Route("/stream", stream)])


@pytest.fixture
def client(tmp_path: Path, server_cert: Any, ca: trustme.CA) -> Iterator[httpx.Client]:
    """An https client for uvicorn (TLS from trustme) serving SecurityHeaders(app)."""
    import tomli_w

    from rollout.settings import dumps

    stage_file = tmp_path / "production.toml"
    stage_file.write_text(tomli_w.dumps(dumps(StageSettings("production", 2, "hsts-1h", APP))))
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    server_cert.private_key_pem.write_to_path(str(key))
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    wrapped = SecurityHeaders(app(), settings=stage_file)
    with UvicornThread(wrapped, ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        base = f"https://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base, verify=context, timeout=10) as c:
            yield c


@pytest.mark.parametrize(("path", "status"), [("/", 200), ("/nope", 404), ("/boom", 500)])
def test_headers_on_every_status(client: httpx.Client, path: str, status: int) -> None:
    """The page, the 404 and the unhandled-exception 500 all carry each header exactly once."""
    response = client.get(path)
    assert response.status_code == status
    for name, value in APP.items():
        assert response.headers.get_list(name) == [value]


def test_streaming_response_over_tls(client: httpx.Client) -> None:
    """A streamed body arrives whole, with the headers on its response start."""
    with client.stream("GET", "/stream") as response:
        assert response.headers["x-frame-options"] == "DENY"
        body = b"".join(response.iter_bytes())
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"
