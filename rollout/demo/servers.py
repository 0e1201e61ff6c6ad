"""A whole site on loopback for `rollout demo`: an edge, an http redirector and an app.

The edge (aiohttp, TLS from a throwaway trustme CA) proxies to the app and adds the
edge-owned headers, as nginx's `add_header ... always` would; the redirector sends plain
http to https. The app (a bare ASGI page server under uvicorn) owns every other header
through `SecurityHeaders` and the stage file, so each layer can be changed, or broken, alone.
"""

from __future__ import annotations

import asyncio
import html
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from rollout.middleware.asgi import ASGIApp, Receive, Scope, SecurityHeaders, Send
from rollout.names import HSTS

__all__ = ["LocalEnvironment", "start"]

START_TIMEOUT = 10.0  # seconds; a healthy start takes a fraction of one
STOP_TIMEOUT = 5.0

# RFC 9110 §7.6.1: meaningful for one connection only, so a proxy never forwards them.
# Content-Length and Transfer-Encoding go too: aiohttp frames each side itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)

Headers = tuple[tuple[str, str], ...]


@dataclass
class LocalEnvironment:
    """The running servers: where they listen, and the handles to change and stop them."""

    folder: Path
    ca_path: Path
    host: str
    subdomain: str
    https_port: int
    http_port: int
    app_port: int
    _edge: _Edge = field(repr=False, compare=False)
    _app: _AppServer = field(repr=False, compare=False)

    def connect_to(self) -> list[str]:
        """curl --connect-to entries sending host and subdomain, ports 443 and 80, here."""
        return [
            f"{name}:{public}:127.0.0.1:{local}"
            for name in (self.host, self.subdomain)
            for public, local in ((443, self.https_port), (80, self.http_port))
        ]

    def flush_reports(self, timeout: float = 10.0) -> bool:
        """Write the app's queued CSP reports and page views to the store now."""
        return self._app.headers.reports.collector.flush(timeout)

    def report_stats(self) -> dict[str, int]:
        """How the app's report endpoint answered so far: counts by status and format."""
        return self._app.headers.reports.stats()

    def set_edge_headers(self, headers: Mapping[str, str]) -> None:
        """Replace what the edge adds to every response, from the next request on."""
        self._edge.headers = _checked(headers)

    def stop(self) -> None:
        """Stop the edge, the redirector and the app, and wait for their threads; idempotent."""
        # Edge first: closing its client session closes its connections to the app, so
        # uvicorn has no open connection to wait for.
        self._edge.stop()
        self._app.stop()

    def __enter__(self) -> LocalEnvironment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start(
    folder: Path,
    settings: Path,
    edge_headers: Mapping[str, str],
    *,
    host: str = "shop.demo.test",
    subdomain: str = "api.shop.demo.test",
    check_interval: float = 0.2,
    pages: Iterable[str] = ("/", "/account"),
    head: str = "",
    site: ASGIApp | None = None,
) -> LocalEnvironment:
    """Start the app (stamping `settings`), the edge and the redirector; CA PEM in folder.

    The app serves `pages` (each with `head` in its HTML), or is `site` when given.
    """
    import trustme  # the `demo` extra: the rest of rollout runs without it

    headers = _checked(edge_headers)
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca_path = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host, subdomain).configure_cert(tls)

    with ExitStack() as undo:  # a failed start leaves no thread and no socket behind
        # Bound here, before any thread starts, so every port is known up front and none
        # can be taken in between; the servers close them when they stop.
        socks = []
        for _ in range(3):
            socks.append(_listen())
            undo.callback(socks[-1].close)
        app_sock, https_sock, http_sock = socks
        app_port, https_port, http_port = (s.getsockname()[1] for s in socks)
        inner = site or _site(pages, head)
        app = SecurityHeaders(inner, settings=settings, check_interval=check_interval)
        app_server = _AppServer(app, app_sock)
        undo.callback(app_server.stop)
        edge = _Edge(https_sock, http_sock, tls, app_port, headers)
        undo.callback(edge.stop)
        app_server.start()
        edge.start()  # while uvicorn starts in its thread
        app_server.wait_started()
        edge.wait_started()
        undo.pop_all()
    return LocalEnvironment(
        folder=folder,
        ca_path=ca_path,
        host=host,
        subdomain=subdomain,
        https_port=https_port,
        http_port=http_port,
        app_port=app_port,
        _edge=edge,
        _app=app_server,
    )


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _checked(headers: Mapping[str, str]) -> Headers:
    # aiohttp would refuse such a line on every response; refuse it once, here, instead.
    for name, value in headers.items():
        if not name or any(c in f"{name}{value}" for c in "\r\n\0") or ":" in name:
            raise ValueError(f"{name!r}: {value!r} is not a one-line header")
    return tuple(headers.items())


PAGE = "<!doctype html>\n<title>rollout demo</title>{head}\n<h1>{path}</h1>\n<p>A page.</p>\n"


def _site(pages: Iterable[str], head: str = "") -> ASGIApp:
    """A page server with no framework: every header on its responses is the middleware's.

    `head` goes into every page as it is (scripts, images): what a policy may block.
    """
    known = frozenset(pages)

    async def site(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        # HEAD as GET (RFC 9110 §9.3.2), so `curl -I` shows what a browser gets.
        if scope["method"] in ("GET", "HEAD") and scope["path"] in known:
            status, kind = 200, b"text/html; charset=utf-8"
            body = PAGE.format(path=html.escape(scope["path"]), head=head).encode()
        else:
            status, kind, body = 404, b"text/plain; charset=utf-8", b"not found\n"
        length = str(len(body)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", kind), (b"content-length", length)],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    return site


class _AppServer:
    """uvicorn in a daemon thread, serving on a socket bound beforehand."""

    def __init__(self, app: SecurityHeaders, sock: socket.socket) -> None:
        import uvicorn  # the `demo` extra

        self.headers = app

        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            log_config=None,  # leave the host process's logging configuration alone
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self._sock = sock
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [sock]},
            name="rollout-demo-app",
            daemon=True,
        )

    def start(self) -> None:
        self.thread.start()

    def wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the demo app (uvicorn) exited before it started")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo app (uvicorn) did not start in {START_TIMEOUT}s")
            time.sleep(0.005)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(STOP_TIMEOUT)
            if self.thread.is_alive():  # a client holds a connection open: stop waiting
                self.server.force_exit = True
                self.thread.join(STOP_TIMEOUT)
        self._sock.close()  # uvicorn closed it, unless it never got that far


class _Edge:
    """The TLS reverse proxy and the http redirector, on one event loop in one thread."""

    def __init__(
        self,
        https_sock: socket.socket,
        http_sock: socket.socket,
        tls: ssl.SSLContext,
        app_port: int,
        headers: Headers,
    ) -> None:
        self.headers = headers  # replaced whole by set_edge_headers; read once per response
        self._socks = (https_sock, http_sock)
        self._tls = tls
        self._app_port = app_port
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="rollout-demo-edge", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def wait_started(self) -> None:
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"the demo edge did not start in {START_TIMEOUT}s")
        if self._error is not None:
            raise RuntimeError(f"the demo edge did not start: {self._error}") from self._error

    def stop(self) -> None:
        if self.thread.is_alive():
            self._ready.wait(START_TIMEOUT)  # the loop and its stop event exist from then on
            loop, stopping = self._loop, self._stopping
            if loop is not None and stopping is not None:
                with suppress(RuntimeError):  # the loop closed on its own meanwhile
                    loop.call_soon_threadsafe(stopping.set)
            self.thread.join(STOP_TIMEOUT)
        for sock in self._socks:  # aiohttp closed them, unless it never got that far
            sock.close()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        runners: list[web.AppRunner] = []
        try:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    # Under uvicorn's 5 s keep-alive, so a pooled connection is never
                    # reused just as the app closes it (aiohttp retries only GET-likes).
                    keepalive_timeout=2.0,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),  # a proxy keeps no client's cookies
                auto_decompress=False,  # bodies pass through as the app encoded them
                skip_auto_headers=(  # forward what the client sent, not aiohttp defaults
                    "User-Agent",
                    "Accept",
                    "Accept-Encoding",
                    "Content-Type",
                ),
                timeout=aiohttp.ClientTimeout(total=30),
            )
            for handler, sock, tls in (
                (self._proxy, self._socks[0], self._tls),
                (self._redirect, self._socks[1], None),
            ):
                app = web.Application()
                app.router.add_route("*", "/{tail:.*}", handler)
                runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
                await runner.setup()
                runners.append(runner)
                await web.SockSite(runner, sock, ssl_context=tls).start()
        except Exception as exc:
            self._error = exc
        else:
            self._ready.set()
            await self._stopping.wait()
        finally:
            for runner in reversed(runners):
                await runner.cleanup()
            if self._session is not None:
                await self._session.close()
            self._ready.set()

    def _added(self, *, https: bool) -> Headers:
        return self.headers if https else tuple(h for h in self.headers if h[0].lower() != HSTS)

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        # A client's own X-Forwarded-Proto goes: only this proxy may tell the app it is https.
        forward: CIMultiDict[str] = CIMultiDict(
            (n, v)
            for n, v in _end_to_end(request.headers.items())
            if n.lower() != "x-forwarded-proto"
        )
        forward["X-Forwarded-Proto"] = "https"  # what makes the app send HSTS
        target = URL.build(
            scheme="http",
            host="127.0.0.1",
            port=self._app_port,
            path=request.rel_url.raw_path,
            query_string=request.rel_url.raw_query_string,
            encoded=True,
        )
        try:
            body = await request.read()
        except web.HTTPException as exc:  # past client_max_size: still an edge answer
            return self._error_response(exc.status, f"{exc.reason}\n")
        try:
            async with self._session.request(
                request.method,
                target,
                headers=forward,
                data=body or None,
                allow_redirects=False,
            ) as upstream:
                content = await upstream.read()
                lines = [
                    (n.decode("latin-1"), v.decode("latin-1")) for n, v in upstream.raw_headers
                ]
                status, reason = upstream.status, upstream.reason
        except TimeoutError:
            return self._error_response(504, "gateway timeout\n")
        except aiohttp.ClientError:
            return self._error_response(502, "bad gateway\n")
        # A HEAD answer has no body to count, so keep the length the app gave.
        keep = ("content-length",) if request.method == "HEAD" else ()
        out: CIMultiDict[str] = CIMultiDict(_end_to_end(lines, keep=keep))
        for name, value in self._added(https=True):
            out.add(name, value)
        return web.Response(status=status, reason=reason, body=content, headers=out)

    def _error_response(self, status: int, text: str) -> web.Response:
        out: CIMultiDict[str] = CIMultiDict(self._added(https=True))
        return web.Response(status=status, text=text, headers=out)

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        location = f"https://{_hostname(request.host)}{request.rel_url.raw_path_qs}"
        out: CIMultiDict[str] = CIMultiDict(self._added(https=False))
        out["Location"] = location
        return web.Response(status=301, text="moved to https\n", headers=out)


def _end_to_end(
    lines: Iterable[tuple[str, str]], keep: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The header lines a proxy forwards: no hop-by-hop ones, nor any Connection names."""
    pairs = list(lines)
    listed = {
        t.strip().lower() for n, v in pairs if n.lower() == "connection" for t in v.split(",")
    }
    drop = (_HOP_BY_HOP | listed) - set(keep)
    return [(n, v) for n, v in pairs if n.lower() not in drop]


def _hostname(host: str) -> str:
    """A Host header's host without its port ([v6] kept in brackets)."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0]
