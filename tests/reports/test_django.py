"""The report endpoint in the Django middleware: in a sync stack, and in Django's ASGI
handler under uvicorn, as an app would run it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import httpx
import pytest
from django.conf import settings as django_settings

if not django_settings.configured:
    django_settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="rollout-tests-only-" + "x" * 40,
        MIDDLEWARE=[],
        ROOT_URLCONF=__name__,
    )
    django.setup()

from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import path as url_path

from rollout.middleware.django import SecurityHeadersMiddleware
from rollout.reports.fingerprint import policy_id
from rollout.reports.limits import Limits, RateLimiter
from rollout.reports.store import open_store
from tests.reports.support import Served

RO = "default-src 'self'; report-uri /csp-report; report-to rollout-csp"
STAGE_FILE = f"""\
environment = "staging"
stage = 1
name = "hsts-5m"
[app]
"strict-transport-security" = "max-age=300"
"content-security-policy-report-only" = "{RO}"
"reporting-endpoints" = 'rollout-csp="/csp-report"'

[edge]
"""
REPORT = json.dumps(
    {"csp-report": {"document-uri": "https://shop.example.test/", "blocked-uri": "eval",
                    "effective-directive": "script-src", "original-policy": RO}}
).encode()  # fmt: skip


def page(request: Any) -> HttpResponse:
    """An HTML page."""
    return HttpResponse("<!doctype html><title>x</title>")


urlpatterns = [url_path("", page)]


@pytest.fixture
def stage_file(tmp_path: Path) -> Iterator[Path]:
    """The stage file, named by ROLLOUT_SETTINGS; this module is the URLconf."""
    path = tmp_path / "staging.toml"
    path.write_text(STAGE_FILE)
    with override_settings(ROLLOUT_SETTINGS=str(path), ROOT_URLCONF=__name__):
        yield path


def rows(middleware: SecurityHeadersMiddleware, stage_file: Path) -> list[Any]:
    """The stored violations of the stage's policy, after the writer wrote."""
    assert middleware.reports.collector.flush()
    store = open_store(stage_file.with_name("staging.reports.sqlite3"), create=False)
    return store.rows("staging", [policy_id(RO)], 0.0)


def test_sync_stack_answers_reports_and_counts_views(stage_file: Path) -> None:
    """In a sync stack a report POST is answered 204 without reaching the view, bad ones
    get their 4xx, and a browser's navigation to the page counts as a view."""
    middleware = SecurityHeadersMiddleware(page)
    factory = RequestFactory()
    ok = middleware(factory.post("/csp-report", REPORT, content_type="application/csp-report"))
    assert ok.status_code == 204
    bad = middleware(factory.post("/csp-report", b"{", content_type="application/csp-report"))
    assert bad.status_code == 400
    big = middleware(
        factory.post("/csp-report", b"x" * 70000, content_type="application/csp-report")
    )
    assert big.status_code == 413
    typed = middleware(factory.post("/csp-report", REPORT, content_type="text/plain"))
    assert typed.status_code == 415
    assert b"x" * 10 not in big.content and b"eval" not in ok.content
    middleware(factory.get("/", HTTP_SEC_FETCH_DEST="document"))
    middleware(factory.get("/"))
    [row] = rows(middleware, stage_file)
    assert (row.directive, row.blocked, row.count) == ("script-src", "eval", 1)
    store = open_store(stage_file.with_name("staging.reports.sqlite3"), create=False)
    assert store.page_views("staging", [policy_id(RO)], 0.0) == 1


def test_django_asgi_under_uvicorn(stage_file: Path) -> None:
    """Django's own ASGI handler with the middleware, under uvicorn: reports are stored, the
    page keeps its headers, a flood is answered 429."""
    from django.core.asgi import get_asgi_application

    with override_settings(MIDDLEWARE=["rollout.middleware.django.SecurityHeadersMiddleware"]):
        application = get_asgi_application()
        middleware = application._middleware_chain  # the one instance Django built
        while not isinstance(middleware, SecurityHeadersMiddleware):
            middleware = middleware.__wrapped__  # Django's exception-to-response wrapper
        middleware.reports.limiter = RateLimiter(Limits(burst=60, per_second=0.0))
        with Served(application) as server:
            posted = httpx.post(
                f"{server.url}/csp-report",
                content=REPORT,
                headers={"content-type": "application/csp-report"},
                timeout=10,
            )
            assert posted.status_code == 204
            got = httpx.get(f"{server.url}/", headers={"sec-fetch-dest": "document"}, timeout=10)
            assert got.headers["content-security-policy-report-only"] == RO
            flood = [
                httpx.post(
                    f"{server.url}/csp-report", content=REPORT,
                    headers={"content-type": "application/csp-report"}, timeout=10,
                ).status_code
                for _ in range(70)
            ]  # fmt: skip
            assert flood == [204] * 59 + [429] * 11
    [row] = rows(middleware, stage_file)
    assert row.count == 1 + flood.count(204)
