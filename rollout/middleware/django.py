"""Django middleware that stamps a stage file's app-owned headers, sync and async alike.

    MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",  # if the app owns XFO
        "django.middleware.csp.ContentSecurityPolicyMiddleware",  # Django 6
        "rollout.middleware.django.SecurityHeadersMiddleware",
        ...
    ]
    ROLLOUT_SETTINGS = "stages/production.toml"
    ROLLOUT_TRUSTED_PROXIES = ["127.0.0.1"]   # may set X-Forwarded-Proto (optional)

Listed after Django's header middlewares it runs before them on the way out, so the
hot-reloaded values win and Django's, which only fill in a missing header, find them
present; nothing is ever doubled.

A stage file that is unreadable or invalid at start-up never breaks the middleware stack:
the middleware logs one error and runs as stage off (no headers, as for a missing file)
until a good version appears, as the ASGI one does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings as django_settings

from rollout.middleware.watch import SettingsWatcher
from rollout.reports.endpoint import ReportEndpoint

DEFAULT_SETTINGS = "stages/production.toml"


class SecurityHeadersMiddleware:
    """Adds the app-owned headers of `ROLLOUT_SETTINGS` to responses that do not set them."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        path = getattr(django_settings, "ROLLOUT_SETTINGS", DEFAULT_SETTINGS)
        interval = float(getattr(django_settings, "ROLLOUT_CHECK_INTERVAL", 1.0))
        self.watcher = SettingsWatcher(path, interval=interval)
        proxies = frozenset(getattr(django_settings, "ROLLOUT_TRUSTED_PROXIES", ()))
        self._trust_all = "*" in proxies
        self._trusted = proxies
        # CSP reports: the endpoint on the report-uri's path, page views (docs/reports.md).
        store = getattr(django_settings, "ROLLOUT_REPORTS_STORE", None)
        self.reports = ReportEndpoint(path, store=store, trusted_proxies=proxies)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            # Tell Django this instance is a coroutine function, as MiddlewareMixin does.
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        return self._report(request) or self.process_response(request, self.get_response(request))

    async def __acall__(self, request: Any) -> Any:
        get_response: Callable[[Any], Awaitable[Any]] = self.get_response
        return self._report(request) or self.process_response(request, await get_response(request))

    def _report(self, request: Any) -> Any:
        """The answer to a CSP report POST (no I/O: queued for a thread), else None."""
        route = self.reports.route(self.watcher.current().settings)
        if route is not None and self.reports.is_django_report(route, request):
            return self.reports.django_answer(route, request)
        return None

    def process_response(self, request: Any, response: Any) -> Any:
        """Fill in every app-owned header the view (or an inner middleware) did not set."""
        snapshot = self.watcher.current()
        route = self.reports.route(snapshot.settings)
        if route is not None:
            self.reports.django_count(route, request, response)
        pairs = snapshot.https_str if self._is_secure(request) else snapshot.http_str
        headers = response.headers
        for name, value in pairs:
            if name not in headers:  # case-insensitive: Django's ResponseHeaders
                headers[name] = value
        if snapshot.csp_enforcing is not None:
            # Django 6's CSP middleware adds whichever CSP header is missing from its
            # settings, which lag behind the stage file until the next render + restart:
            # right after report-only -> enforcing it would add a stale report-only
            # header next to ours. Switch off its copy of the header the stage does not
            # send, through the attribute its csp_override decorators set (unless a view
            # already chose).
            other = "_csp_ro_config" if snapshot.csp_enforcing else "_csp_config"
            if not hasattr(response, other):
                setattr(response, other, {})
        return response

    def _is_secure(self, request: Any) -> bool:
        if request.is_secure():  # honours SECURE_PROXY_SSL_HEADER
            return True
        if not (self._trust_all or request.META.get("REMOTE_ADDR") in self._trusted):
            return False
        proto = request.META.get("HTTP_X_FORWARDED_PROTO", "")
        return bool(proto) and proto.rsplit(",", 1)[-1].strip().lower() == "https"
