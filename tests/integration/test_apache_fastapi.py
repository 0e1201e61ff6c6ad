"""FastAPI + SecurityHeaders under uvicorn, behind a real Apache httpd over TLS, verified."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from rollout_itest import (
    Apache,
    UvicornThread,
    explain,
    failures,
    ladder_stages,
    set_stage,
    verify_until,
    write_plan,
)

from rollout import ladder, store
from rollout.middleware.asgi import SecurityHeaders
from rollout.plan import Plan
from rollout.render import render
from rollout.verify import verify

pytestmark = [pytest.mark.integration, pytest.mark.apache]

ENV = "production"
EDGE = 'edge = ["strict-transport-security", "x-content-type-options"]\n'


@dataclass
class Stack:
    """The plan, Apache in front, and the app behind it."""

    plan: Plan
    apache: Apache
    holder: dict[str, Any]

    def edge_conf(self, stage: int | None) -> str:
        """`rollout render production --format apache` for stage."""
        return render(ladder.settings_for(self.plan, ENV, stage), "apache")


@pytest.fixture
def stack(tmp_path: Path, server_cert: Any, cacert: Path) -> Iterator[Stack]:
    """httpd (TLS, http->https, the rendered snippet) in front of uvicorn + FastAPI."""
    stages = tmp_path / "stages"
    stages.mkdir()
    httpd_tmp = tmp_path / "httpd"
    httpd_tmp.mkdir()
    httpd_tmp.chmod(0o755)  # its one process serves as nobody when started as root
    api = FastAPI()

    @api.get("/")
    def home() -> dict[str, str]:
        return {"hello": "world"}

    holder: dict[str, Any] = {"own_nosniff": False}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def send_own(message: Any) -> None:
            if message["type"] == "http.response.start" and holder["own_nosniff"]:
                message["headers"] = [*message["headers"], (b"x-content-type-options", b"nosniff")]
            await send(message)

        await holder["app"](scope, receive, send_own)

    with UvicornThread(app) as app_server:
        apache = Apache(httpd_tmp, server_cert, app_server.port)
        plan = write_plan(stages, ENV, apache.ports, cacert, extra=EDGE)
        set_stage(plan, ENV, 3)  # before the middleware starts: it loads it at once
        stage_file = store.settings_path(plan, ENV)
        holder["app"] = SecurityHeaders(api, settings=stage_file, trusted_proxies=["127.0.0.1"])
        try:
            yield Stack(plan, apache, holder)
        finally:
            apache.stop()


def test_every_stage_verifies(stack: Stack) -> None:
    """Each stage, off to the top, passes verify through Apache: the edge's headers once on
    pages and on the app's 404, the app's own through the proxy, http redirected."""
    for stage in ladder_stages(stack.plan):
        expected = set_stage(stack.plan, ENV, stage)
        stack.apache.start(stack.edge_conf(stage))
        report = verify_until(stack.plan, ENV, expected)
        assert report.ok, f"stage {stage}:\n{explain(report)}"


def test_the_apps_own_copy_is_never_doubled(stack: Stack) -> None:
    """An app that sends nosniff itself (as Django's SecurityMiddleware does by default):
    the snippet's `Header onsuccess unset` drops that copy, so verify sees one header; the
    same snippet without those lines doubles it on pages and 404s alike."""
    stack.holder["own_nosniff"] = True
    expected = set_stage(stack.plan, ENV, 3)
    rendered = stack.edge_conf(3)
    stack.apache.start(rendered)
    report = verify_until(stack.plan, ENV, expected)
    assert report.ok, explain(report)
    without_unset = "\n".join(
        line for line in rendered.splitlines() if not line.startswith("Header onsuccess unset")
    )
    stack.apache.start(without_unset + "\n")
    found = failures(verify(stack.plan.environment(ENV), expected))
    assert ("page", "x-content-type-options") in found
    assert ("404", "x-content-type-options") in found
    assert ("page", "strict-transport-security") not in found  # the app sends none of it
