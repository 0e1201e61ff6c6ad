"""Pure ASGI middleware that stamps a stage file's app-owned headers on every HTTP response.

Wrap the whole application object, outside everything the framework adds, so the
headers also reach the 500 that Starlette's ServerErrorMiddleware sends for an unhandled
exception:

    app = SecurityHeaders(FastAPI(), settings="stages/production.toml")

Only `http.response.start` is touched: bodies (streaming ones too) pass straight through,
and websocket and lifespan scopes never reach the wrapper. A stage file that is bad at
start-up logs one error and means stage off until a good version appears; constructing the
middleware never fails because of the file.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from time import monotonic
from typing import Any

from rollout.middleware.watch import SettingsWatcher, Snapshot
from rollout.reports.endpoint import ReportEndpoint
from rollout.reports.writer import Route

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_TRUSTED_PROXIES = ("127.0.0.1", "::1")


class SecurityHeaders:
    """Adds the app-owned headers of a stage file to responses that do not set them."""

    def __init__(
        self,
        app: ASGIApp,
        settings: str | os.PathLike[str] = "stages/production.toml",
        trusted_proxies: Iterable[str] = DEFAULT_TRUSTED_PROXIES,
        *,
        check_interval: float = 1.0,
        reports_store: str | os.PathLike[str] | None = None,
    ) -> None:
        self.app = app
        self.watcher = SettingsWatcher(settings, interval=check_interval)
        proxies = frozenset(trusted_proxies)
        # CSP reports: the endpoint on the report-uri's path, page views (docs/reports.md).
        self.reports = ReportEndpoint(settings, store=reports_store, trusted_proxies=proxies)
        self._trust_all = "*" in proxies
        self._trusted = proxies
        self._seen: Snapshot | None = None
        self._route: Route | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watcher = self.watcher
        if monotonic() >= watcher.next_check:
            watcher.refresh()
        snapshot = watcher.snapshot
        if snapshot is not self._seen:  # a new version: its report route, once
            self._seen, self._route = snapshot, self.reports.route(snapshot.settings)
        route = self._route
        if route is not None:
            if self.reports.is_report(route, scope):
                await self.reports.answer(route, scope, receive, send)
                return
            send = self.reports.count_views(route, scope, send)
        if not snapshot.https:  # stage off, or nothing app-owned: cost nothing
            await self.app(scope, receive, send)
            return
        if scope.get("scheme") == "https" or self._forwarded_https(scope):
            extra, names = snapshot.https, snapshot.https_names
        else:
            extra, names = snapshot.http, snapshot.http_names

        # A plain function handing back send's awaitable: no coroutine of our own for the
        # start message and every body chunk (about 2,000 CPU instructions a request, 2%
        # of a bare Starlette route's; bench/middleware_speed.py counts them).
        def send_with_headers(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                headers = message.get("headers") or ()
                extra_now = extra
                for name, _ in headers:
                    # Exact bytes first: servers and Starlette send lower-case names, so
                    # only a mixed-case one (Django's ASGI handler) pays for lower().
                    if name in names or (not name.islower() and name.lower() in names):
                        # The route set one of ours: keep it.
                        extra_now = tuple(h for h in extra if not _has(headers, h[0]))
                        break
                # A new list (the app may reuse its own, e.g. a module-level Response); the
                # message dict is built per send, so replacing its key is safe, as
                # Starlette's own middlewares do.
                message["headers"] = [*headers, *extra_now]
            return send(message)

        await self.app(scope, receive, send_with_headers)

    def _forwarded_https(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not (self._trust_all or client[0] in self._trusted):
            return False
        proto = None
        for name, value in scope.get("headers", ()):
            if name.lower() == b"x-forwarded-proto":
                proto = value
        # The nearest proxy appends last, so its word is the last element.
        return proto is not None and proto.rsplit(b",", 1)[-1].strip().lower() == b"https"


def _has(headers: Iterable[tuple[bytes, bytes]], lower_name: bytes) -> bool:
    return any(name.lower() == lower_name for name, _ in headers)
