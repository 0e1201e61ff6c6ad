"""The report endpoint as an ASGI app of its own, for apps that cannot take the middleware.

    ROLLOUT_SETTINGS=stages/production.toml uvicorn rollout.reports.app:app

or, in code, `create_app("stages/production.toml", store=...)`. It reads the stage file
(re-read as the middlewares do) to know the environment, the stage and the policies it
sends, answers POSTs on the path of the CSP's report-uri whatever the host (it is the
report host), answers the CORS preflight browsers send before a cross-origin Reporting
API upload, and 404s everything else. It sees no page views: where the gate should count
them, wrap the app in the middleware with the same store (a PostgreSQL URL across hosts).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from rollout.middleware.watch import SettingsWatcher
from rollout.reports.endpoint import (
    DEFAULT_LIMITS,
    STORE_ENV,
    Receive,
    ReportEndpoint,
    Scope,
    Send,
    respond,
)
from rollout.reports.limits import Limits
from rollout.reports.writer import Route

SETTINGS_ENV = "ROLLOUT_SETTINGS"
PROXIES_ENV = "ROLLOUT_TRUSTED_PROXIES"  # comma-separated, e.g. "127.0.0.1,10.0.0.2"
_CORS = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST"),
    (b"access-control-allow-headers", b"content-type"),
    (b"access-control-max-age", b"86400"),
)


class ReportApp:
    """Answers CSP report POSTs for one stage file; nothing else."""

    def __init__(
        self,
        settings: str | os.PathLike[str],
        *,
        store: str | os.PathLike[str] | None = None,
        trusted_proxies: Iterable[str] = (),
        limits: Limits = DEFAULT_LIMITS,
        check_interval: float = 1.0,
    ) -> None:
        self.watcher = SettingsWatcher(settings, interval=check_interval)
        self.endpoint = ReportEndpoint(
            settings, store=store, trusted_proxies=trusted_proxies, limits=limits
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        found = self.endpoint.route(self.watcher.current().settings)
        if found is None or scope.get("path") != found.path:
            await respond(send, 404)
            return
        route = Route(found.environment, found.stage, found.path, "", found.policies)
        if scope.get("method") == "OPTIONS":
            await respond(send, 204, _CORS)
        elif self.endpoint.is_report(route, scope):
            status = await self.endpoint.take(route, scope, receive)
            await respond(send, status, _CORS[:1])
        else:
            await respond(send, 404)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.endpoint.collector.close()  # what is queued is written first
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(
    settings: str | os.PathLike[str],
    *,
    store: str | os.PathLike[str] | None = None,
    trusted_proxies: Iterable[str] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> ReportApp:
    """The endpoint for a stage file: reports kept in `store` (default: beside the file,
    or $ROLLOUT_REPORTS_STORE)."""
    return ReportApp(settings, store=store, trusted_proxies=trusted_proxies, limits=limits)


class _FromEnvironment:
    """`rollout.reports.app:app`: built on first use from $ROLLOUT_SETTINGS."""

    def __init__(self) -> None:
        self._app: ReportApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            proxies = [p.strip() for p in os.environ.get(PROXIES_ENV, "").split(",") if p.strip()]
            self._app = create_app(
                os.environ.get(SETTINGS_ENV, "stages/production.toml"),
                store=os.environ.get(STORE_ENV) or None,
                trusted_proxies=proxies,
            )
        await self._app(scope, receive, send)


app = _FromEnvironment()
