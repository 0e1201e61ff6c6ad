"""The Django middleware, sync and async, alone and next to Django's SecurityMiddleware."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
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
urlpatterns: list[Any] = []

from asgiref.sync import iscoroutinefunction  # noqa: E402  (needs configured settings)
from django.http import HttpResponse, StreamingHttpResponse  # noqa: E402
from django.middleware.security import SecurityMiddleware  # noqa: E402
from django.test import AsyncRequestFactory, RequestFactory, override_settings  # noqa: E402
from middleware_support import (  # noqa: E402
    APP,
    BAD_VERSIONS,
    write_bad_stage_file,
    write_stage_file,
)

from rollout.middleware.django import SecurityHeadersMiddleware  # noqa: E402


def view(request: Any) -> HttpResponse:
    """A plain page."""
    return HttpResponse("ok")


async def async_view(request: Any) -> HttpResponse:
    """The same page from an async view."""
    return HttpResponse("ok")


@pytest.fixture
def configured(stage_file: Path) -> Iterator[Path]:
    """Django settings pointing the middleware at the stage file."""
    with override_settings(ROLLOUT_SETTINGS=str(stage_file), ROLLOUT_TRUSTED_PROXIES=["10.0.0.1"]):
        yield stage_file


def test_sync_view_gets_every_app_owned_header(configured: Path) -> None:
    """A secure request through a sync view carries each app-owned header once."""
    response = SecurityHeadersMiddleware(view)(RequestFactory().get("/", secure=True))
    for name, value in APP.items():
        assert response.headers[name] == value
    assert "X-Content-Type-Options" not in response.headers  # edge-owned


def test_async_view_gets_the_headers(configured: Path) -> None:
    """In an async stack the middleware is a coroutine function and still stamps."""
    middleware = SecurityHeadersMiddleware(async_view)
    assert iscoroutinefunction(middleware)
    response = asyncio.run(middleware(AsyncRequestFactory().get("/", secure=True)))
    assert response.headers["Strict-Transport-Security"] == "max-age=300"


def test_sync_stack_stays_sync(configured: Path) -> None:
    """With a sync get_response the middleware is not a coroutine function."""
    assert not iscoroutinefunction(SecurityHeadersMiddleware(view))


def test_no_hsts_over_plain_http(configured: Path) -> None:
    """An insecure request gets no HSTS but the other app-owned headers."""
    response = SecurityHeadersMiddleware(view)(RequestFactory().get("/"))
    assert "Strict-Transport-Security" not in response.headers
    assert response.headers["X-Frame-Options"] == "DENY"


def test_trusted_proxy_forwarded_proto_counts_as_secure(configured: Path) -> None:
    """X-Forwarded-Proto: https from ROLLOUT_TRUSTED_PROXIES gets HSTS; from others it does not."""
    middleware = SecurityHeadersMiddleware(view)
    trusted = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_PROTO="https")
    other = RequestFactory().get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_PROTO="https")
    assert middleware(trusted).headers["Strict-Transport-Security"] == "max-age=300"
    assert "Strict-Transport-Security" not in middleware(other).headers


def test_view_header_is_kept(configured: Path) -> None:
    """A header the view set is never replaced."""

    def framing(request: Any) -> HttpResponse:
        response = HttpResponse("ok")
        response["x-frame-options"] = "SAMEORIGIN"
        return response

    response = SecurityHeadersMiddleware(framing)(RequestFactory().get("/", secure=True))
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_streaming_response_gets_the_headers(configured: Path) -> None:
    """A streaming response is stamped without consuming its body."""

    def stream(request: Any) -> StreamingHttpResponse:
        return StreamingHttpResponse(iter([b"a", b"b"]))

    response = SecurityHeadersMiddleware(stream)(RequestFactory().get("/", secure=True))
    assert response.headers["Permissions-Policy"] == "geolocation=(), camera=()"
    assert b"".join(response.streaming_content) == b"ab"


def test_inside_securitymiddleware_the_stage_file_wins(configured: Path) -> None:
    """Under SecurityMiddleware our value is set first and Django's setdefault keeps it."""
    with override_settings(
        SECURE_HSTS_SECONDS=31536000,
        SECURE_REFERRER_POLICY="no-referrer",
        SECURE_CONTENT_TYPE_NOSNIFF=True,
    ):
        stack = SecurityMiddleware(SecurityHeadersMiddleware(view))
        response = stack(RequestFactory().get("/", secure=True))
    assert response.headers["Strict-Transport-Security"] == "max-age=300"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"  # Django's, not doubled
    assert [k for k in response.headers if k.lower() == "strict-transport-security"] == [
        "Strict-Transport-Security"
    ]


def test_hot_reload_and_bad_file(configured: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A rewrite takes effect at the next check; a corrupt one logs once and changes nothing."""
    with override_settings(ROLLOUT_CHECK_INTERVAL=0):
        middleware = SecurityHeadersMiddleware(view)
    write_stage_file(configured, app={**APP, "x-frame-options": "SAMEORIGIN"})
    request = RequestFactory().get("/", secure=True)
    assert middleware(request).headers["X-Frame-Options"] == "SAMEORIGIN"
    configured.write_text("not toml [\n[edge]\n")
    with caplog.at_level(logging.ERROR, logger="rollout.middleware"):
        for _ in range(3):
            response = middleware(request)
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_missing_file_is_stage_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A relative ROLLOUT_SETTINGS that resolves to nothing from the working folder means
    stage off, and one warning names the absolute path watched and that it is absent."""
    monkeypatch.chdir(tmp_path)
    with (
        override_settings(ROLLOUT_SETTINGS="stages/production.toml"),
        caplog.at_level(logging.INFO, "rollout.middleware"),
    ):
        response = SecurityHeadersMiddleware(view)(RequestFactory().get("/", secure=True))
    assert "Strict-Transport-Security" not in response.headers
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'stages' / 'production.toml'} ('stages/production.toml' from {tmp_path}): "
        "does not exist; stage off, no app-owned headers until it appears"
    ]
    assert caplog.records[0].levelno == logging.WARNING


def test_django6_csp_middleware_is_told_to_skip_the_other_csp_header(configured: Path) -> None:
    """An enforcing stage switches off Django 6's report-only copy; a report-only stage its
    enforcing copy; a view's own csp_override choice stays."""
    enforcing = {
        "strict-transport-security": "max-age=604800",
        "content-security-policy": "default-src 'self'",
    }
    write_stage_file(configured, app=enforcing, stage=4, name="hsts-1w")
    response = SecurityHeadersMiddleware(view)(RequestFactory().get("/", secure=True))
    assert response._csp_ro_config == {}
    assert not hasattr(response, "_csp_config")

    write_stage_file(configured)  # report-only
    response = SecurityHeadersMiddleware(view)(RequestFactory().get("/", secure=True))
    assert response._csp_config == {}

    def chose(request: Any) -> HttpResponse:
        response = HttpResponse("ok")
        response._csp_config = {"default-src": ["'none'"]}
        return response

    response = SecurityHeadersMiddleware(chose)(RequestFactory().get("/", secure=True))
    assert response._csp_config == {"default-src": ["'none'"]}


@pytest.mark.parametrize("bad_value", BAD_VERSIONS.values(), ids=BAD_VERSIONS.keys())
def test_bad_file_at_start_up_or_later_never_breaks_the_stack(
    tmp_path: Path, bad_value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad file at start-up means stage off with one error; a bad rewrite keeps the last
    good headers; no header value ever carries a line break."""
    path = write_bad_stage_file(tmp_path / "staging.toml", bad_value)
    request = RequestFactory().get("/", secure=True)
    settings = {"ROLLOUT_SETTINGS": str(path), "ROLLOUT_CHECK_INTERVAL": 0}
    with override_settings(**settings), caplog.at_level(logging.ERROR, "rollout.middleware"):
        middleware = SecurityHeadersMiddleware(view)
        for _ in range(3):
            assert "X-Frame-Options" not in middleware(request).headers
        write_stage_file(path)
        assert middleware(request).headers["X-Frame-Options"] == "DENY"
        write_bad_stage_file(path, bad_value)
        for _ in range(3):
            response = middleware(request)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Strict-Transport-Security"] == "max-age=300"
    assert all("\n" not in value for value in response.headers.values())
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "stage off" in errors[0] and "last good" in errors[1]
