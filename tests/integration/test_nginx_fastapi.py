"""FastAPI + SecurityHeaders under uvicorn, behind a real nginx over TLS, proven by verify."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from fastapi import FastAPI, Response
from rollout_itest import (
    HOST,
    Nginx,
    UvicornThread,
    explain,
    failures,
    find_nginx,
    ladder_stages,
    load_during_swap,
    set_stage,
    verify_until,
    write_plan,
)

from rollout import ladder, store
from rollout.middleware.asgi import SecurityHeaders
from rollout.plan import Plan
from rollout.render import render
from rollout.settings import StageSettings
from rollout.verify import verify

pytestmark = [pytest.mark.integration, pytest.mark.nginx]

ENV = "production"
EDGE = 'edge = ["strict-transport-security", "x-content-type-options"]\n'


def make_api() -> FastAPI:
    """A small FastAPI app: a page, and a page that sets its own X-Frame-Options."""
    api = FastAPI()

    @api.get("/")
    def home() -> dict[str, str]:
        return {"hello": "world"}

    @api.get("/embed")
    def embed(response: Response) -> dict[str, str]:
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return {"embeddable": "yes"}

    return api


class Switch:
    """An ASGI app that forwards to whichever app the test chooses (to remove a layer)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@dataclass
class Stack:
    """The plan, nginx in front, and the app behind it."""

    plan: Plan
    nginx: Nginx
    switch: Switch
    bare: FastAPI
    tmp: Path

    def current(self) -> StageSettings:
        """The stage file's settings (stage 3 unless a test moved it)."""
        settings = store.read_settings(self.plan, ENV)
        assert settings is not None
        return settings

    def edge_conf(self, stage: int | None) -> str:
        """`rollout render production --format nginx` for stage."""
        return render(ladder.settings_for(self.plan, ENV, stage), "nginx")


@pytest.fixture
def stack(tmp_path: Path, server_cert: Any, cacert: Path) -> Iterator[Stack]:
    """nginx (TLS, http->https, the rendered snippet) in front of uvicorn + FastAPI, stage 3."""
    binary = find_nginx()
    stages = tmp_path / "stages"
    stages.mkdir()
    nginx_tmp = tmp_path / "nginx"
    nginx_tmp.mkdir()
    bare = make_api()
    switch = Switch(None)
    with UvicornThread(switch) as app_server:
        nginx = Nginx(binary, nginx_tmp, server_cert, app_server.port)
        plan = write_plan(stages, ENV, nginx.ports, cacert, extra=EDGE)
        set_stage(plan, ENV, 3)  # before the middleware starts: it loads it at once
        stage_file = store.settings_path(plan, ENV)
        switch.app = SecurityHeaders(bare, settings=stage_file, trusted_proxies=["127.0.0.1"])
        try:
            yield Stack(plan, nginx, switch, bare, tmp_path)
        finally:
            nginx.stop()


def test_every_stage_verifies(stack: Stack) -> None:
    """Each stage, off to the top, passes verify once the edge and the app both have it."""
    for stage in ladder_stages(stack.plan):
        expected = set_stage(stack.plan, ENV, stage)
        stack.nginx.start(stack.edge_conf(stage))
        report = verify_until(stack.plan, ENV, expected)
        assert report.ok, f"stage {stage}:\n{explain(report)}"
        assert report.stage == stage


def test_add_header_without_always_loses_the_404(stack: Stack) -> None:
    """Without `always`, nginx drops the edge headers on the 404, and verify says so."""
    expected = stack.current()
    stack.nginx.start(stack.edge_conf(3).replace(" always;", ";"))
    report = verify(stack.plan.environment(ENV), expected)
    found = failures(report)
    assert ("404", "strict-transport-security") in found
    assert ("404", "x-content-type-options") in found
    assert ("page", "strict-transport-security") not in found


def test_middleware_removed(stack: Stack) -> None:
    """Without the middleware the app-owned headers are missing on pages and 404s."""
    expected = stack.current()
    stack.nginx.start(stack.edge_conf(3))
    stack.switch.app = stack.bare
    report = verify(stack.plan.environment(ENV), expected)
    found = failures(report)
    for header in ("x-frame-options", "permissions-policy", "content-security-policy-report-only"):
        assert ("page", header) in found
        assert ("404", header) in found
    assert ("page", "strict-transport-security") not in found  # the edge still sends it


def test_location_with_its_own_add_header_drops_the_edge_headers(stack: Stack) -> None:
    """A location with one add_header of its own silently loses every inherited one."""
    expected = stack.current()
    stack.nginx.start(stack.edge_conf(3), location_extra='add_header X-Served-By "nginx";')
    report = verify(stack.plan.environment(ENV), expected)
    found = failures(report)
    assert ("page", "strict-transport-security") in found
    assert ("page", "x-content-type-options") in found
    assert ("page", "x-frame-options") not in found, explain(report)  # the app's are fine


def test_route_override_is_reported(stack: Stack) -> None:
    """A route that sets its own X-Frame-Options fails verify on that page and header."""
    expected = stack.current()
    stack.nginx.start(stack.edge_conf(3))
    env = stack.plan.environment(ENV)
    embed = env.model_copy(update={"urls": [f"https://{HOST}/embed"]})
    plan = stack.plan.model_copy(update={"environments": {ENV: embed}})
    report = verify(plan.environment(ENV), expected)
    assert failures(report) == [("page", "x-frame-options")], explain(report)


def test_hot_reload_under_load(stack: Stack, ca: trustme.CA) -> None:
    """Rewriting the stage file under load switches every response within 1.5 s, none lost."""
    stack.nginx.start(stack.edge_conf(3))
    old = ladder.settings_for(stack.plan, ENV, 3).app
    new = ladder.settings_for(stack.plan, ENV, 4).app
    context = ssl.create_default_context()
    ca.configure_trust(context)
    url = f"https://127.0.0.1:{stack.nginx.ports.https}/"
    names = ("content-security-policy", "content-security-policy-report-only")
    # report-only CSP -> enforcing
    load = load_during_swap(url, context, HOST, names, lambda: set_stage(stack.plan, ENV, 4))

    assert load.errors == []
    assert load.results and all(status == 200 for _, status, _ in load.results)
    csp_old = old["content-security-policy-report-only"]
    csp_new = new["content-security-policy"]
    for started, _, (enforcing, report_only) in load.results:
        # Every response is wholly one stage or the other, never without its CSP.
        assert (enforcing, report_only) in ((None, csp_old), (csp_new, None))
        if started > load.swapped + 1.5:
            assert enforcing == csp_new
    assert any(started > load.swapped + 1.5 for started, *_ in load.results)
