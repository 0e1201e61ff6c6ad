"""A Django site under uvicorn (ASGI, TLS) with the rendered settings and our middleware."""

from __future__ import annotations

import os
import secrets
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from rollout_itest import (
    HOST,
    Ports,
    explain,
    failures,
    free_port,
    ladder_stages,
    load_during_swap,
    set_stage,
    verify_until,
    wait_for_port,
    write_plan,
)

from rollout import ladder, store
from rollout.plan import Plan
from rollout.render import render
from rollout.verify import verify

pytestmark = pytest.mark.integration

ENV = "staging"
OURS = "rollout.middleware.django.SecurityHeadersMiddleware"
CSP_MIDDLEWARE = "django.middleware.csp.ContentSecurityPolicyMiddleware"
# Django 6 needs Python >= 3.12; point this at such an interpreter with django>=6 and
# uvicorn installed to run every Django test against Django 6 too.
DJANGO6_PYTHON = os.environ.get("ROLLOUT_DJANGO6_PYTHON")
BEFORE_OURS = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

BASE_SETTINGS = """\
SECRET_KEY = {secret!r}
DEBUG = False
ALLOWED_HOSTS = ["app.test", "api.app.test", "127.0.0.1"]
ROOT_URLCONF = "djsite.urls"
INSTALLED_APPS = []
MIDDLEWARE = {middleware!r}
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
"""

URLS = """\
from django.http import HttpResponse
from django.urls import path


def home(request):
    return HttpResponse("hello")


async def async_home(request):
    return HttpResponse("hello, async")


def embed(request):
    response = HttpResponse("embeddable")
    response["X-Frame-Options"] = "SAMEORIGIN"
    return response


urlpatterns = [path("", home), path("async", async_home), path("embed", embed)]
"""

SERVE = """\
import asyncio
import os
import sys

import uvicorn

os.environ["DJANGO_SETTINGS_MODULE"] = "djsite.settings"


async def main():
    from django.core.asgi import get_asgi_application

    app = get_asgi_application()
    https, http, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    common = dict(host="127.0.0.1", log_level="warning", lifespan="off")
    servers = [
        uvicorn.Server(
            uvicorn.Config(app, port=https, ssl_certfile=cert, ssl_keyfile=key, **common)
        ),
        uvicorn.Server(uvicorn.Config(app, port=http, **common)),
    ]
    await asyncio.gather(*(s.serve() for s in servers))


asyncio.run(main())
"""


@dataclass
class Site:
    """A Django project in a temporary folder, served over https and http by uvicorn."""

    root: Path
    plan: Plan
    ports: Ports
    django: int  # the major version the settings are rendered for
    python: str  # an interpreter with that Django and uvicorn
    proc: subprocess.Popen[bytes] | None = None

    @property
    def middleware(self) -> list[str]:
        """The MIDDLEWARE list the guide recommends for this Django version."""
        csp = [CSP_MIDDLEWARE] if self.django >= 6 else []
        return [*BEFORE_OURS, *csp, OURS]

    def write_settings(self, stage: int | None, middleware: list[str] | None = None) -> None:
        """settings.py: the base, then `rollout render staging --format django --django N`."""
        fragment = render(
            ladder.settings_for(self.plan, ENV, stage),
            "django",
            django=self.django,
            settings_path=store.settings_path(self.plan, ENV),
        )
        middleware = self.middleware if middleware is None else middleware
        base = BASE_SETTINGS.format(secret=secrets.token_urlsafe(50), middleware=middleware)
        (self.root / "djsite" / "settings.py").write_text(base + "\n" + fragment)

    def start(self) -> None:
        """(Re)start the server with the current settings.py."""
        self.stop()
        ports = [str(self.ports.https), str(self.ports.http)]
        tls = [str(self.root / "cert.pem"), str(self.root / "key.pem")]
        self.proc = subprocess.Popen(
            [self.python, "serve.py", *ports, *tls],
            cwd=self.root,
            env=_env(self.root),
        )
        wait_for_port(self.ports.https, proc=self.proc)
        wait_for_port(self.ports.http, proc=self.proc)

    def stop(self) -> None:
        """Stop the server process this test started."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def deploy(self, stage: int | None, middleware: list[str] | None = None) -> Any:
        """Write the stage file and the rendered settings, restart: what `apply` would do."""
        expected = set_stage(self.plan, ENV, stage)
        self.write_settings(stage, middleware)
        self.start()
        return expected


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(Path.cwd())])}


@pytest.fixture(params=[5, 6], ids=["django5", "django6"])
def site(
    request: pytest.FixtureRequest, tmp_path: Path, server_cert: Any, cacert: Path
) -> Iterator[Site]:
    """An empty Django site with a preload-enabled plan (so the top stage preloads)."""
    version: int = request.param
    python = sys.executable if version == 5 else DJANGO6_PYTHON
    if python is None:
        pytest.skip("Django 6 needs Python >= 3.12: set ROLLOUT_DJANGO6_PYTHON to run it")
    root = tmp_path / "site"
    (root / "djsite").mkdir(parents=True)
    (root / "djsite" / "__init__.py").write_text("")
    (root / "djsite" / "urls.py").write_text(URLS)
    (root / "serve.py").write_text(SERVE)
    server_cert.private_key_pem.write_to_path(str(root / "key.pem"))
    server_cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    stages = tmp_path / "stages"
    stages.mkdir()
    ports = Ports(https=free_port(), http=free_port())
    preload = "\n[ladder]\npreload = true\n"
    plan = write_plan(stages, ENV, ports, cacert, paths=("/", "/async"), ladder_keys=preload)
    s = Site(root, plan, ports, version, python)
    try:
        yield s
    finally:
        s.stop()


def test_every_stage_verifies(site: Site) -> None:
    """Off, every HSTS stage and the preload stage pass verify, sync and async views alike."""
    stages = ladder_stages(site.plan)
    assert len(stages) == 9  # off + 7 + preload
    for stage in stages:
        expected = site.deploy(stage)
        report = verify_until(site.plan, ENV, expected)
        assert report.ok, f"stage {stage}:\n{explain(report)}"


def test_check_deploy_is_clean_at_the_top_stage(site: Site) -> None:
    """`manage.py check --deploy` with the rendered top-stage settings has none of the
    HSTS, nosniff, SSL-redirect, framing, preload or referrer warnings."""
    top = ladder_stages(site.plan)[-1]
    site.write_settings(top)
    result = subprocess.run(
        [site.python, "-m", "django", "check", "--deploy", "--settings", "djsite.settings"],
        cwd=site.root,
        env=_env(site.root),
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for code in ("W004", "W005", "W006", "W008", "W019", "W021", "W022"):
        assert f"security.{code}" not in output, output


def test_middleware_removed_is_reported(site: Site) -> None:
    """Without our middleware nothing sends Permissions-Policy (nor CSP on Django 5)."""
    without = [m for m in site.middleware if m != OURS]
    expected = site.deploy(3, middleware=without)
    found = failures(verify(site.plan.environment(ENV), expected))
    csp_missing = ("page", "content-security-policy-report-only") in found
    assert csp_missing == (site.django == 5)  # Django 6 sends it from SECURE_CSP_REPORT_ONLY
    assert ("page", "permissions-policy") in found
    assert ("404", "permissions-policy") in found
    assert ("page", "strict-transport-security") not in found  # Django's own settings


def test_route_override_is_reported(site: Site) -> None:
    """A view that sets its own X-Frame-Options keeps it, and verify names page and header."""
    expected = site.deploy(3)
    env = site.plan.environment(ENV)
    embed = env.model_copy(update={"urls": [f"https://{HOST}/embed"]})
    report = verify(embed, expected)
    assert failures(report) == [("page", "x-frame-options")], explain(report)


def test_hot_reload_under_load(site: Site, ca: trustme.CA) -> None:
    """Rewriting the stage file under load changes every response within 1.5 s, none lost."""
    site.deploy(3)
    old = ladder.settings_for(site.plan, ENV, 3).app
    new = ladder.settings_for(site.plan, ENV, 4).app
    context = ssl.create_default_context()
    ca.configure_trust(context)
    url = f"https://127.0.0.1:{site.ports.https}/async"
    names = (
        "strict-transport-security",
        "content-security-policy",
        "content-security-policy-report-only",
    )
    # no restart: only the stage file changes
    load = load_during_swap(url, context, HOST, names, lambda: set_stage(site.plan, ENV, 4))

    assert load.errors == []
    assert load.results and all(status == 200 for _, status, _ in load.results)
    before = (old["strict-transport-security"], None, old["content-security-policy-report-only"])
    after = (new["strict-transport-security"], new["content-security-policy"], None)
    for started, _, headers in load.results:
        assert headers in (before, after)
        if started > load.swapped + 1.5:
            assert headers == after
    assert any(started > load.swapped + 1.5 for started, *_ in load.results)
