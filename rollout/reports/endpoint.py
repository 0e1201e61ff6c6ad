"""The report endpoint the middlewares answer, and the page views they count.

Where: the path of the `report-uri` in the CSP the stage file sends (app- or edge-owned),
when it is a path (`/csp-report`) or a URL on the request's own host. What a POST there
gets, checked in this order, each before any work that grows with the input:

    429  the client posted more than its share (a token bucket per client and process),
         or the writer's queue is full
    415  the content type is neither application/csp-report nor application/reports+json
    413  the body is larger than Limits.max_body (by Content-Length, or while reading)
    400  the body is not a report a browser would send
    204  the reports were queued for the store (rollout.reports.writer)

No answer echoes anything the client sent, none is a 5xx, and nothing is written on the
request path. Page views: a response to a browser's navigation (`Sec-Fetch-Dest:
document`) that is a 2xx HTML page adds one to an in-memory counter; `rollout verify`,
curl and most bots send no Sec-Fetch-Dest, so they are not counted.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from rollout.names import CSP, CSP_RO
from rollout.reports.limits import Limits, RateLimiter
from rollout.reports.parse import Malformed, UnsupportedType, media_type, parse_body
from rollout.reports.store import default_location
from rollout.reports.writer import Collector, Route
from rollout.settings import StageSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

STORE_ENV = "ROLLOUT_REPORTS_STORE"
DEFAULT_LIMITS = Limits()
_CSP_NAMES = frozenset({CSP.encode(), CSP_RO.encode()})
_TEXT = {
    204: b"",
    400: b"not a CSP violation report\n",
    404: b"not found\n",
    413: b"report too large\n",
    415: b"send application/csp-report or application/reports+json\n",
    429: b"too many reports; try later\n",
}


def route_for(settings: StageSettings | None) -> Route | None:
    """Where a stage's reports go and which policies it sends; None without a report-uri."""
    if settings is None:
        return None
    headers = settings.headers()
    policies = tuple(
        (disposition, headers[name])
        for disposition, name in (("enforce", CSP), ("report", CSP_RO))
        if name in headers
    )
    uri = next((u for _, value in policies if (u := report_uri(value))), "")
    if not uri:
        return None
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    return Route(
        environment=settings.environment,
        stage=settings.label,
        path=parts.path or "/",
        host=parts.netloc.lower() if parts.scheme else "",
        policies=policies,
    )


def report_uri(policy: str) -> str:
    """The first report-uri in a CSP header value, or ""."""
    for directive in policy.replace(",", ";").split(";"):
        words = directive.split()
        if len(words) > 1 and words[0].lower() == "report-uri":
            return words[1]
    return ""


class ReportEndpoint:
    """What a middleware delegates to: the route per stage-file version, the answers to
    report POSTs, the page-view count."""

    def __init__(
        self,
        settings: str | os.PathLike[str],
        *,
        store: str | os.PathLike[str] | None = None,
        trusted_proxies: Iterable[str] = (),
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        location = store or os.environ.get(STORE_ENV) or default_location(settings)
        self.limits = limits
        self.collector = Collector(location, max_pending=limits.max_pending)
        self.limiter = RateLimiter(limits)
        proxies = frozenset(trusted_proxies)
        self._trust_all = "*" in proxies
        self._trusted = proxies
        self._settings: StageSettings | None = None
        self._route: Route | None = None

    def route(self, settings: StageSettings | None) -> Route | None:
        """The route for a stage-file version (computed once per version)."""
        if settings is not self._settings:
            self._route, self._settings = route_for(settings), settings
        return self._route

    def stats(self) -> dict[str, int]:
        """How many answers of each kind this process gave, and views counted."""
        return dict(self.collector.stats)

    # ASGI ---------------------------------------------------------------------------

    def is_report(self, route: Route, scope: Scope) -> bool:
        """Whether this request is a POST to the report path on this host."""
        if scope.get("method") != "POST" or scope.get("path") != route.path:
            return False
        return not route.host or _header(scope, b"host").decode("latin-1").lower() == route.host

    async def answer(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        """Read, check and queue a report POST; answer with its status."""
        await respond(send, await self.take(route, scope, receive))

    async def take(self, route: Route, scope: Scope, receive: Receive) -> int:
        """Read, check and queue a report POST; the status to answer."""
        status = await self._take(route, scope, receive)
        self.collector.stats[str(status)] += 1
        return status

    async def _take(self, route: Route, scope: Scope, receive: Receive) -> int:
        client = self._client(scope, _header(scope, b"x-forwarded-for"))
        if not self.limiter.allow(client):
            return 429
        kind = _header(scope, b"content-type").decode("latin-1")
        length = _header(scope, b"content-length")
        if length and (not length.isdigit() or int(length) > self.limits.max_body):
            return 413 if length.isdigit() else 400
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return 400  # the client went away
            body += message.get("body", b"")
            if len(body) > self.limits.max_body:
                return 413
            more = message.get("more_body", False)
        return self._store(route, kind, bytes(body))

    def count_views(self, route: Route, scope: Scope, send: Send) -> Send:
        """send, counting the response as a page view if a browser navigated to an HTML page."""
        if scope.get("method") != "GET":
            return send
        for name, value in scope.get("headers") or ():
            if name == b"sec-fetch-dest":
                if value != b"document":
                    return send
                break
        else:
            return send  # not a browser's navigation: the common case, one pass, no wrapper
        collector = self.collector

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                html = False
                for name, value in message.get("headers") or ():
                    name = name.lower()
                    if name == b"content-type":
                        html = value[:9].lower() == b"text/html"
                    elif name in _CSP_NAMES and value not in route.sent:
                        break  # the route sent a policy of its own: not a view of ours
                else:
                    if html:
                        collector.view(route)
            await send(message)

        return counting

    # Django -------------------------------------------------------------------------

    def is_django_report(self, route: Route, request: Any) -> bool:
        """Whether a Django request is a POST to the report path on this host."""
        if request.method != "POST" or request.path_info != route.path:
            return False
        return not route.host or request.META.get("HTTP_HOST", "").lower() == route.host

    def django_answer(self, route: Route, request: Any) -> Any:
        """The Django response to a report POST."""
        from django.http import HttpResponse

        meta = request.META
        client = self._client(
            {"client": (meta.get("REMOTE_ADDR", ""), 0)},
            meta.get("HTTP_X_FORWARDED_FOR", "").encode("latin-1", "replace"),
        )
        status = 429
        if self.limiter.allow(client):
            length = str(meta.get("CONTENT_LENGTH") or "")
            if length and (not length.isdigit() or int(length) > self.limits.max_body):
                status = 413 if length.isdigit() else 400
            else:
                body = request.read(self.limits.max_body + 1)
                too_big = len(body) > self.limits.max_body
                status = 413 if too_big else self._store(route, meta.get("CONTENT_TYPE", ""), body)
        self.collector.stats[str(status)] += 1
        response = HttpResponse(_TEXT[status], status=status, content_type="text/plain")
        response.headers["Cache-Control"] = "no-store"
        if status == 429:
            response.headers["Retry-After"] = "60"
        return response

    def django_count(self, route: Route, request: Any, response: Any) -> None:
        """Count a Django response as a page view if a browser navigated to an HTML page."""
        if request.method != "GET" or request.META.get("HTTP_SEC_FETCH_DEST") != "document":
            return
        kind = response.get("Content-Type", "")
        if not (200 <= response.status_code < 300 and kind[:9].lower() == "text/html"):
            return
        own = (response.get(name) for name in (CSP, CSP_RO))
        if all(v is None or v.encode("latin-1") in route.sent for v in own):
            self.collector.view(route)

    # shared -------------------------------------------------------------------------

    def _store(self, route: Route, content_type: str, body: bytes) -> int:
        try:
            reports = parse_body(content_type, body)
        except UnsupportedType:
            return 415
        except Malformed:
            return 400
        if reports and not self.collector.submit(route, reports):
            return 429
        self.collector.stats[media_type(content_type)] += 1
        return 204

    def _client(self, scope: Scope, forwarded: bytes) -> str:
        peer = (scope.get("client") or ("",))[0] or ""
        if forwarded and (self._trust_all or peer in self._trusted):
            # The nearest proxy appends last: its word is the last element.
            return forwarded.rsplit(b",", 1)[-1].strip().decode("latin-1")[:64]
        return str(peer)


async def respond(send: Send, status: int, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """A short text answer (nothing from the request in it)."""
    body = _TEXT[status]
    headers = [(b"cache-control", b"no-store"), *extra]
    if body:
        headers += [(b"content-type", b"text/plain; charset=utf-8")]
    headers.append((b"content-length", str(len(body)).encode()))
    if status == 429:
        headers.append((b"retry-after", b"60"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes:
    """The last value of a (lower-case) request header, or b""."""
    found = b""
    for key, value in scope.get("headers") or ():
        if key == name:
            found = value
    return bytes(found)
