"""The embedded local environment: real TLS on loopback, proven by rollout's own verify."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rollout import ladder, store
from rollout.addresses import parse_connect_to
from rollout.demo.servers import LocalEnvironment, start
from rollout.plan import Plan, load_plan
from rollout.probe import ProbeOptions, Prober, Result
from rollout.settings import StageSettings
from rollout.verify import Report, verify

pytestmark = pytest.mark.integration

ENV = "production"
EDGE = ("x-content-type-options", "referrer-policy")

POLICY = """\
[policy]
content-security-policy = "default-src 'self'; object-src 'none'; frame-ancestors 'none'"
permissions-policy = "geolocation=(), camera=(), microphone=()"
referrer-policy = "strict-origin-when-cross-origin"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
csp-report-uri = "https://csp.example.test/report"
"""


@dataclass
class Demo:
    """A running local environment and a plan whose environment points at it."""

    env: LocalEnvironment
    plan: Plan

    def set_stage(self, stage: int | None) -> StageSettings:
        """Write the stage file for stage and give the edge that stage's edge headers."""
        settings = store.write_settings(self.plan, ladder.settings_for(self.plan, ENV, stage))
        self.env.set_edge_headers(settings.edge)
        return settings

    def verify(self, expected: StageSettings) -> Report:
        """One verify of the environment against expected."""
        return verify(self.plan.environment(ENV), expected, options=ProbeOptions(timeout=5.0))

    def verify_until_ok(self, expected: StageSettings, timeout: float = 5.0) -> Report:
        """Verify until it passes (the app looks at its file every 0.2 s) or timeout passes."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.verify(expected)
            if report.ok or time.monotonic() > deadline:
                return report
            time.sleep(0.1)


def write_plan(folder: Path, env: LocalEnvironment) -> Plan:
    """A plan whose environment reaches the local environment's host and subdomain."""
    urls = [f"https://{env.host}/", f"https://{env.host}/account"]
    text = (
        POLICY
        + f"\n[environments.{ENV}]\n"
        + f"urls = {urls!r}\n".replace("'", '"')
        + f"edge = {list(EDGE)!r}\n".replace("'", '"')
        + f'subdomains = ["{env.subdomain}"]\n'
        + f"connect-to = {env.connect_to()!r}\n".replace("'", '"')
        + f'cacert = "{env.ca_path}"\n'
    )
    path = folder / "plan.toml"
    path.write_text(text)
    return load_plan(path)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """The local environment at stage off (no stage file, no edge headers) and its plan."""
    stages = tmp_path / "stages"
    stages.mkdir()
    with start(tmp_path / "demo", stages / f"{ENV}.toml", {}) as env:
        plan = write_plan(stages, env)
        assert store.settings_path(plan, ENV) == stages / f"{ENV}.toml"
        yield Demo(env, plan)


def explain(report: Report) -> str:
    """The failed checks, one line each, for assertion messages."""
    return "\n".join(f"{c.probe} {c.url} {c.header}: {c.message}" for c in report.failures)


def fetch_all(env: LocalEnvironment, urls: list[str]) -> list[Result]:
    """GET each URL through the environment's connect-to entries, trusting its CA."""
    options = ProbeOptions(
        connect_to=[parse_connect_to(e) for e in env.connect_to()],
        cacert=env.ca_path,
        timeout=5.0,
    )

    async def run() -> list[Result]:
        async with Prober(options) as prober:
            return [await prober.fetch(url) for url in urls]

    return asyncio.run(run())


@pytest.mark.parametrize("which", ["first", "top"])
def test_stage_verifies(demo: Demo, which: str) -> None:
    """Stage 0 and the top stage (includeSubDomains, so subdomain probes too) verify ok."""
    top = len(ladder.build(demo.plan)) - 1
    stage = 0 if which == "first" else top
    expected = demo.set_stage(stage)
    report = demo.verify_until_ok(expected)
    assert report.ok, explain(report)
    assert report.stage == stage
    assert report.warnings == []
    probes = {c.probe for c in report.checks}
    assert {"page", "404", "http"} <= probes
    assert ("subdomain" in probes) == (which == "top")


def test_edge_headers_once_and_redirects(demo: Demo) -> None:
    """The edge adds each header once on pages and 404s; the redirector sends http to https."""
    host, sub = demo.env.host, demo.env.subdomain
    demo.env.set_edge_headers({"Strict-Transport-Security": "max-age=30", "X-Demo": "edge"})
    page, missing, subpage, plain, subplain = fetch_all(
        demo.env,
        [
            f"https://{host}/account",
            f"https://{host}/no-such-page?x=1",
            f"https://{sub}/",
            f"http://{host}/some/path?q=1",
            f"http://{sub}/",
        ],
    )
    assert (page.status, missing.status, subpage.status) == (200, 404, 200)
    for result in (page, missing, subpage):
        assert result.get_all("strict-transport-security") == ["max-age=30"], result
        assert result.get_all("x-demo") == ["edge"], result
    assert (plain.status, plain.location) == (301, f"https://{host}/some/path?q=1")
    assert (subplain.status, subplain.location) == (301, f"https://{sub}/")
    for result in (plain, subplain):
        assert result.get_all("x-demo") == ["edge"], result
        assert result.get_all("strict-transport-security") == [], result


def test_removed_edge_header_fails_verify(demo: Demo) -> None:
    """An edge that stops adding one header fails verify on exactly that header."""
    expected = demo.set_stage(0)
    assert demo.verify_until_ok(expected).ok
    demo.env.set_edge_headers({"x-content-type-options": "nosniff"})
    report = demo.verify(expected)
    assert not report.ok
    failed = {(c.probe, c.header) for c in report.failures}
    assert failed == {("page", "referrer-policy"), ("404", "referrer-policy")}, explain(report)


def test_unreachable_app_answers_502(demo: Demo) -> None:
    """With the app gone, the edge answers 502 and still adds its headers."""
    demo.env.set_edge_headers({"X-Demo": "edge"})
    demo.env._app.stop()
    (result,) = fetch_all(demo.env, [f"https://{demo.env.host}/"])
    assert result.status == 502
    assert result.get_all("x-demo") == ["edge"]


def test_stop_frees_ports_and_is_idempotent(demo: Demo) -> None:
    """After stop() the ports refuse connections and no thread is left; stop() again is a no-op."""
    env = demo.env
    env.stop()
    env.stop()
    for port in (env.https_port, env.http_port, env.app_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert [t.name for t in threading.enumerate() if t.name.startswith("rollout-demo")] == []
