"""The `rollout_headers` pytest fixture, run by pytester on real Starlette and Django apps."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import tomli_w

from rollout import ladder, settings, store
from rollout.plan import load_plan

pytest_plugins = ["pytester"]

PLAN = """\
[policy]
content-security-policy = "default-src 'self'; object-src 'none'"
referrer-policy = "no-referrer"
x-frame-options = "DENY"
x-content-type-options = "nosniff"

[environments.production]
urls = ["https://www.example.test/"]
edge = ["x-content-type-options"]
"""

INI = """\
[pytest]
rollout_plan = stages/plan.toml
rollout_env = production
filterwarnings = error
"""

STARLETTE_APP = """\
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from rollout.middleware.asgi import SecurityHeaders

STAGE = Path(__file__).parent / "stages" / "production.toml"


async def home(request):
    return PlainTextResponse("home")


bare = Starlette(routes=[Route("/", home), Route("/login", home)])
app = SecurityHeaders(bare, settings=STAGE, check_interval=0)
"""

DJANGO_CONFTEST = """\
from pathlib import Path

import django
from django.conf import settings

STAGE = Path(__file__).parent / "stages" / "production.toml"


def pytest_configure(config):
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF="urls",
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
            "rollout.middleware.django.SecurityHeadersMiddleware",
        ],
        SECURE_CONTENT_TYPE_NOSNIFF=False,  # the edge owns nosniff
        ROLLOUT_SETTINGS=str(STAGE),
        TEMPLATES=[],
    )
    django.setup()
"""

DJANGO_URLS = """\
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("", lambda request: HttpResponse("home"))]
"""


def _project(pytester: pytest.Pytester, stage: int | None) -> Path:
    """A plan in stages/, the environment's stage file at `stage`, and the ini naming them."""
    folder = pytester.path / "stages"
    folder.mkdir()
    (folder / "plan.toml").write_text(PLAN)
    plan = load_plan(folder / "plan.toml")
    if stage is not None:
        store.write_settings(plan, ladder.settings_for(plan, "production", stage))
    pytester.makeini(INI)
    return folder


def _seen(result: pytest.RunResult, pytester: pytest.Pytester) -> list[str]:
    """The run's output lines, with the 404 probe's random path and the temp folder fixed."""
    return [
        re.sub(r"rollout-404-probe-[0-9a-f]{32}", "rollout-404-probe-TOKEN", line).replace(
            str(pytester.path), "TMP"
        )
        for line in result.outlines
    ]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # A subprocess, as a user's own pytest run loads the plugin: from its entry point.
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_starlette_app_with_the_middleware_passes(pytester: pytest.Pytester) -> None:
    """A Starlette app behind rollout's middleware passes on its page, a second page and a 404."""
    _project(pytester, 3)
    pytester.makepyfile(app=STARLETTE_APP)
    pytester.makepyfile(
        test_headers="""
        from starlette.testclient import TestClient
        from app import app

        def test_home(rollout_headers):
            checks = rollout_headers.check(TestClient(app))
            assert {c.probe for c in checks} == {"page", "404"}
            assert all(c.ok for c in checks)

        def test_login(rollout_headers):
            rollout_headers.check(TestClient(app), "/login")
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=2)


def test_starlette_app_without_the_middleware_fails_with_what_is_missing(
    pytester: pytest.Pytester,
) -> None:
    """The bare app fails, naming the stage, each missing header with its id, and the 404."""
    _project(pytester, 3)
    pytester.makepyfile(app=STARLETTE_APP)
    pytester.makepyfile(
        test_headers="""
        from starlette.testclient import TestClient
        from app import bare

        def test_home(rollout_headers):
            rollout_headers.check(TestClient(bare))
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    lines = _seen(result, pytester)
    for want in [
        "the app does not serve stage 3 (hsts-1d) of TMP/stages/production.toml:",
        "  ✗ page /  strict-transport-security: expected max-age=86400, got nothing: "
        "strict-transport-security is missing [hsts.E001]",
        "  ✗ page /  content-security-policy-report-only: expected default-src 'self'; "
        "object-src 'none', got nothing: content-security-policy-report-only is missing "
        "[header.E001]",
        "  ✗ 404 /rollout-404-probe-TOKEN  x-frame-options: expected DENY, got nothing: "
        "x-frame-options is missing [header.E001]",
        "8 of 8 checks failed (answers: 200, 404)",
    ]:
        assert want in lines, want
    assert "Traceback" not in result.stdout.str()


def test_asgi_transport_in_a_sync_and_an_async_test(pytester: pytest.Pytester) -> None:
    """An httpx ASGITransport works from a sync test, and with `await acheck` from a loop."""
    _project(pytester, 5)
    pytester.makepyfile(app=STARLETTE_APP)
    pytester.makepyfile(
        test_headers="""
        import asyncio
        import httpx
        from app import app

        def test_sync(rollout_headers):
            rollout_headers.check(httpx.ASGITransport(app=app))

        def test_async(rollout_headers):
            async def main():
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://testserver"
                ) as client:
                    await rollout_headers.acheck(client, "/login")
            asyncio.run(main())
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=2)


def test_a_stale_csp_mode_fails(pytester: pytest.Pytester) -> None:
    """An app whose route still sends an enforcing CSP at a report-only stage fails csp.E001."""
    _project(pytester, 1)
    pytester.makepyfile(app=STARLETTE_APP)
    pytester.makepyfile(
        test_headers="""
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
        from starlette.testclient import TestClient
        from rollout.middleware.asgi import SecurityHeaders
        from app import STAGE

        async def home(request):
            return PlainTextResponse("home", headers={"Content-Security-Policy": "default-src *"})

        app = SecurityHeaders(Starlette(routes=[Route("/", home)]), settings=STAGE)

        def test_home(rollout_headers):
            rollout_headers.check(TestClient(app))
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    lines = _seen(result, pytester)
    for want in [
        "  ✗ page /  content-security-policy: an enforcing policy is sent during a "
        "report-only stage (sent: default-src *) [csp.E001]",
        "1 of 9 checks failed (answers: 200, 404)",
    ]:
        assert want in lines, want


def test_django_client_passes_with_rollouts_middleware(pytester: pytest.Pytester) -> None:
    """A Django site with rollout's middleware passes through the test Client and AsyncClient."""
    _project(pytester, 4)
    pytester.makeconftest(DJANGO_CONFTEST)
    pytester.makepyfile(urls=DJANGO_URLS)
    pytester.makepyfile(
        test_headers="""
        import asyncio
        from django.test import AsyncClient, Client

        def test_sync(rollout_headers):
            rollout_headers.check(Client())

        def test_async(rollout_headers):
            asyncio.run(rollout_headers.acheck(AsyncClient()))
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=2)


def test_django_at_stage_off_still_sending_x_frame_options_fails(
    pytester: pytest.Pytester,
) -> None:
    """After a revert to off, Django's XFrameOptionsMiddleware still sends DENY: revert.E001."""
    _project(pytester, None)  # no stage file: the environment is at stage off
    pytester.makeconftest(DJANGO_CONFTEST)
    pytester.makepyfile(urls=DJANGO_URLS)
    pytester.makepyfile(
        test_headers="""
        from django.test import Client

        def test_home(rollout_headers):
            rollout_headers.check(Client())
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    lines = _seen(result, pytester)
    for want in [
        "the app does not serve off of TMP/stages/production.toml:",
        "  ✗ page /  x-frame-options: x-frame-options is sent, but this stage leaves it "
        "out (sent: DENY) [revert.E001]",
        "  ✗ 404 /rollout-404-probe-TOKEN  x-frame-options: x-frame-options is sent, but "
        "this stage leaves it out (sent: DENY) [revert.E001]",
    ]:
        assert want in lines, want


def test_the_command_line_names_another_stage_file(pytester: pytest.Pytester) -> None:
    """--rollout-stage FILE overrides the ini: the same app fails against a later stage."""
    folder = _project(pytester, 3)
    plan = load_plan(folder / "plan.toml")
    later = ladder.settings_for(plan, "production", 6)
    other = pytester.path / "later.toml"
    other.write_text(tomli_w.dumps(settings.dumps(later)))
    pytester.makepyfile(app=STARLETTE_APP)
    pytester.makepyfile(
        test_headers="""
        from starlette.testclient import TestClient
        from app import app

        def test_home(rollout_headers):
            rollout_headers.check(TestClient(app))
        """
    )
    result = _run(pytester, f"--rollout-stage={other}")
    result.assert_outcomes(failed=1)
    assert (
        "  ✗ page /  strict-transport-security: expected max-age=31536000; includeSubDomains, "
        "got max-age=86400: max-age is 86400, the stage wants 31536000; includeSubDomains "
        "is missing, the stage wants it [hsts.E002]"
    ) in _seen(result, pytester)


def test_unconfigured_fixture_fails_only_the_tests_using_it(pytester: pytest.Pytester) -> None:
    """Without a stage or plan, a test using the fixture fails in one line; others pass."""
    pytester.makepyfile(
        test_headers="""
        def test_uses_it(rollout_headers):
            pass

        def test_does_not():
            pass
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    assert any(
        line.startswith("E   Failed: rollout_headers: nothing configured: set rollout_stage")
        or line.startswith("rollout_headers: nothing configured: set rollout_stage")
        for line in result.outlines
    ), result.outlines


def test_the_plugin_loads_nothing_for_runs_that_do_not_use_it(pytester: pytest.Pytester) -> None:
    """A run whose tests never ask for the fixture imports no rollout module past the plugin,
    no aiohttp, no httpx, no Starlette and no Django."""
    pytester.makepyfile(
        test_plain="""
        import sys

        def test_nothing_heavy_loaded():
            loaded = sorted(
                name for name in sys.modules
                if name.split(".")[0] in {"aiohttp", "httpx", "httpx2", "starlette", "django"}
                or (name.startswith("rollout.") and name != "rollout.pytest_plugin")
            )
            assert loaded == []
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    assert "rollout" in _run(pytester, "--help").stdout.str()
    assert sys.modules.get("rollout.pytest_plugin") is not None  # and it is active here too
