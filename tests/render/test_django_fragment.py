"""The rendered Django fragment run for real: Django sends no header the app does not own."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django
import pytest
import tomli_w
from django.conf import settings as django_settings

if not django_settings.configured:
    django_settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="rollout-tests-only-" + "x" * 40,
        MIDDLEWARE=[],
    )
    django.setup()

# Imported only now: they need configured settings.
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.utils.module_loading import import_string

from rollout.render import render
from rollout.render.django import XFO_MIDDLEWARE
from rollout.settings import StageSettings, dumps

VERSION = 6 if django.VERSION[0] >= 6 else 5
# Every header Django's own middlewares can add.
DJANGO_SENDS = {
    "strict-transport-security",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "x-frame-options",
    "content-security-policy",
    "content-security-policy-report-only",
}
CSP_RO = "default-src 'self'; report-uri /csp"
OFF = StageSettings(
    "production",
    None,
    "off",
    {},
    {
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
    },
)
EDGE_XFO_REFERRER = StageSettings(
    "production",
    1,
    "hsts-5m",
    {"strict-transport-security": "max-age=300", "content-security-policy-report-only": CSP_RO},
    {"x-frame-options": "SAMEORIGIN", "referrer-policy": "no-referrer"},
)
APP_OWNS_ALL = StageSettings(
    "staging",
    1,
    "hsts-5m",
    {
        "strict-transport-security": "max-age=300",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "SAMEORIGIN",
        "cross-origin-opener-policy": "same-origin-allow-popups",
    },
)


def listed_middleware(fragment: str) -> list[str]:
    """The MIDDLEWARE entries the fragment's comment tells users to list, in order."""
    return re.findall(r'^#\s+"([\w.]+)",$', fragment, flags=re.MULTILINE)


def fragment_settings(fragment: str) -> dict[str, Any]:
    """The settings the fragment defines when appended to settings.py."""
    namespace: dict[str, Any] = {}
    exec(compile(fragment, "settings.py", "exec"), namespace)
    return {k: v for k, v in namespace.items() if k.isupper()}


def site(tmp_path: Path, stage: StageSettings) -> tuple[str, Callable[[Any], HttpResponse]]:
    """The fragment for stage and a request handler built the way the fragment says."""
    path = tmp_path / f"{stage.environment}.toml"
    path.write_text(tomli_w.dumps(dumps(stage)))
    fragment = render(stage, "django", django=VERSION, settings_path=path)

    def view(request: Any) -> HttpResponse:
        return HttpResponse("ok")

    handler: Callable[[Any], HttpResponse] = view
    with override_settings(**fragment_settings(fragment)):
        for dotted in reversed(listed_middleware(fragment)):
            handler = import_string(dotted)(handler)
    return fragment, handler


def sent(handler: Callable[[Any], HttpResponse]) -> dict[str, str]:
    """The headers Django answers an https GET / with, by lower-case name."""
    response = handler(RequestFactory().get("/", secure=True))
    return {name.lower(): value for name, value in response.headers.items()}


@pytest.mark.parametrize("stage", [OFF, EDGE_XFO_REFERRER], ids=["stage-off", "edge-xfo-referrer"])
def test_app_sends_no_header_it_does_not_own(tmp_path: Path, stage: StageSettings) -> None:
    """Set up as the fragment says, Django sends exactly the app-owned headers: none of
    the edge's, and nothing of its own defaults (DENY, same-origin, nosniff) either."""
    fragment, handler = site(tmp_path, stage)
    headers = sent(handler)
    managed = DJANGO_SENDS - {"cross-origin-opener-policy"}
    assert {n for n in headers if n in managed} == set(stage.app)
    for name, value in stage.app.items():
        assert headers[name] == value
    assert XFO_MIDDLEWARE not in listed_middleware(fragment)
    # COOP is not a plan header: rollout leaves Django's default alone.
    assert headers["cross-origin-opener-policy"] == "same-origin"


@pytest.mark.parametrize("stage", [OFF, EDGE_XFO_REFERRER], ids=["stage-off", "edge-xfo-referrer"])
def test_fragment_says_to_remove_the_xfo_middleware(stage: StageSettings) -> None:
    """When the app does not own X-Frame-Options, the fragment opens by saying to remove
    Django's XFrameOptionsMiddleware, which has no setting that turns it off."""
    fragment = render(stage, "django", django=VERSION)
    assert f'# !!! REMOVE "{XFO_MIDDLEWARE}" FROM MIDDLEWARE !!!' in fragment.splitlines()[:6]
    s = fragment_settings(fragment)
    assert "X_FRAME_OPTIONS" not in s
    assert s["SECURE_REFERRER_POLICY"] is None
    # The plan does not manage COOP, so Django keeps its own default for it.
    assert "SECURE_CROSS_ORIGIN_OPENER_POLICY" not in s
    if stage is OFF:
        assert s["SECURE_CONTENT_TYPE_NOSNIFF"] is False


def test_app_owning_everything_gets_each_header_once(tmp_path: Path) -> None:
    """When the app owns X-Frame-Options the fragment lists Django's middleware for it and
    every app-owned header, COOP included, goes out with the stage's value."""
    fragment, handler = site(tmp_path, APP_OWNS_ALL)
    assert "REMOVE" not in fragment
    assert XFO_MIDDLEWARE in listed_middleware(fragment)
    assert fragment_settings(fragment)["SECURE_CROSS_ORIGIN_OPENER_POLICY"] == (
        "same-origin-allow-popups"
    )
    headers = sent(handler)
    assert {n for n in headers if n in DJANGO_SENDS} == set(APP_OWNS_ALL.app)
    for name, value in APP_OWNS_ALL.app.items():
        assert headers[name] == value


def test_django_default_would_leak_without_the_fragment_advice(tmp_path: Path) -> None:
    """Keeping XFrameOptionsMiddleware at stage off makes the app send DENY: why the
    fragment says to remove it."""
    fragment, _ = site(tmp_path, OFF)
    with override_settings(**fragment_settings(fragment)):
        handler = import_string(XFO_MIDDLEWARE)(lambda request: HttpResponse("ok"))
    assert sent(handler)["x-frame-options"] == "DENY"
