"""The csp-reports gate and the policy steps, end to end: real loopback servers over TLS
(rollout.demo.servers), the real CLI, reports through the app's own endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rollout import history, store
from rollout.demo.browser import Visit, visit
from rollout.demo.servers import LocalEnvironment, start
from rollout.plan import load_plan
from rollout.reports.fingerprint import policy_id
from rollout.reports.store import ViolationCount, open_store
from tests.conftest import Result

pytestmark = pytest.mark.integration

ENV = "staging"
HOST = "shop.demo.test"
CDN = "https://cdn.demo.test"
CSP = "default-src 'self'; object-src 'none'"
# Two report-only stages, then CSP enforces: the gate sits on entering stage 2.
LADDER = "[ladder]\nhsts = [30, 300, 604800]\ncsp-enforce-from = 604800\n"


@dataclass
class Site:
    """A running environment, its plan folder and the CLI."""

    local: LocalEnvironment
    folder: Path
    run: Callable[..., Result]

    def plan(
        self,
        csp: str = CSP,
        env: str = "csp-violations = 0\n",
        policy: str = "",
    ) -> Path:
        """Write the plan: the policy, a short ladder, the environment (soak 0s)."""
        connect = ", ".join(json.dumps(c) for c in self.local.connect_to())
        text = (
            f'[policy]\ncontent-security-policy = "{csp}"\ncsp-report-uri = "/csp-report"\n'
            f"{policy}{LADDER}[environments.{ENV}]\n"
            f'urls = ["https://{HOST}/"]\nsubdomains = ["api.{HOST}"]\n'
            f'connect-to = [{connect}]\ncacert = "ca.pem"\nsoak = "0s"\n{env}'
        )
        path = self.folder / "plan.toml"
        path.write_text(text)
        return path

    def rollout(self, *args: str) -> Result:
        """`rollout --plan PLAN ARGS...`."""
        return self.run("--plan", str(self.folder / "plan.toml"), *args)

    def advance(self, *args: str) -> Result:
        """`rollout advance staging ARGS...` with a short settle."""
        return self.rollout("advance", ENV, "--settle", "5", *args)

    def gate(self) -> dict[str, Any]:
        """The csp-reports gate as `advance --dry-run --json` lists it."""
        result = self.advance("--dry-run", "--json")
        gates = json.loads(result.out)["gates"]
        return next(g for g in gates if g["name"] == "csp-reports")

    def visit(self, *scripts: str) -> Visit:
        """A browser's visit to the home page (a page view, and reports for what the
        report-only policy blocks), written to the store."""
        seen = visit(self.local, "/", scripts)
        assert self.local.flush_reports()
        return seen

    def settings(self) -> Any:
        """The stage file as rollout reads it."""
        return store.read_settings(load_plan(self.folder / "plan.toml"), ENV)

    def inject(self, directive: str, blocked: str, count: int = 1) -> None:
        """Store a violation of the live report-only policy as if a browser reported it."""
        live = self.settings()
        pid = policy_id(live.app["content-security-policy-report-only"])
        when = time.time()
        hour = int(when // 3600) * 3600
        found = ViolationCount(
            ENV, pid, live.label, "report", directive, blocked, "/", f"https://{HOST}", "",
            hour, count, when, when, "",
        )  # fmt: skip
        reports = open_store(self.folder / f"{ENV}.reports.sqlite3")
        reports.add([found], [])
        reports.close()


@pytest.fixture
def site(tmp_path: Path, rollout: Callable[..., Result]) -> Iterator[Site]:
    """The demo's servers (an app with rollout's middleware behind a TLS edge)."""
    folder = tmp_path / "stages"
    local = start(folder, folder / f"{ENV}.toml", {}, host=HOST, subdomain=f"api.{HOST}")
    try:
        yield Site(local, folder, rollout)
    finally:
        local.stop()


def test_plan_lists_the_gate_on_the_step_that_enforces(site: Site) -> None:
    """`rollout plan ENV` names the CSP reports gate where CSP turns enforcing, only there."""
    site.plan()
    out = site.rollout("plan", ENV).out
    rows = [line for line in out.splitlines() if line.startswith(("0 ", "1 ", "2 "))]
    assert "CSP reports" in rows[2] and "CSP reports" not in rows[0] + rows[1]
    site.plan(env="")
    assert "CSP reports" not in site.rollout("plan", ENV).out


def test_no_data_is_not_a_pass(site: Site) -> None:
    """With no page view and no report during the soak the gate holds, and says why."""
    site.plan()
    for _ in range(2):
        assert site.advance().code == 0
    gate = site.gate()
    assert gate["ok"] is False
    assert "no data is not a pass" in gate["reason"]
    assert (gate["violations"], gate["page_views"], gate["reports"]) == (0, 0, 0)
    result = site.advance()
    assert result.code == 1
    assert site.settings().stage == 1


def test_violations_hold_the_gate_and_a_fixed_policy_opens_it(site: Site) -> None:
    """A reported violation holds the gate; after the plan allows the source, advance first
    sends the fixed policy report-only (a new soak), and a clean visit opens the gate."""
    site.plan()
    for _ in range(2):
        site.advance()
    seen = site.visit(f"{CDN}/w.js")
    assert seen.report_status == 204
    gate = site.gate()
    assert (gate["ok"], gate["violations"], gate["page_views"], gate["reports"]) == (
        False, 1, 1, 1,
    )  # fmt: skip
    assert f"script-src-elem {CDN}" in gate["reason"]
    reports = json.loads(site.rollout("reports", ENV, "--json").out)
    assert reports["violations"][0]["advice"].startswith(f"add `script-src 'self' {CDN}`")

    site.plan(csp=f"{CSP}; script-src 'self' {CDN}")
    staged = site.advance("--json")
    assert staged.code == 0
    out = json.loads(staged.out)
    assert (out["policy_step"], out["from"], out["to"]) == ("stage-policy", 1, 1)
    assert [g["name"] for g in out["gates"]] == ["verified"]
    live = site.settings().app["content-security-policy-report-only"]
    assert CDN in live
    assert site.gate()["reason"].startswith("no page view and no report")  # a new soak

    assert site.visit(f"{CDN}/w.js").blocked == []
    gate = site.gate()
    assert (gate["ok"], gate["violations"], gate["page_views"]) == (True, 0, 1)
    assert site.advance().code == 0
    now = site.settings()
    assert now.stage == 2 and CDN in now.app["content-security-policy"]
    records = history.read(load_plan(site.folder / "plan.toml"), ENV)
    moves = [(r.from_, r.to, r.reason) for r in records if r.action == "advance"]
    assert moves[-2:] == [
        (1, 1, "send the plan's new CSP report-only: every gate passed"),
        (1, 2, "every gate passed"),
    ]


def test_a_budget_and_a_minimum_of_page_views(site: Site) -> None:
    """csp-violations = 1 lets one distinct violation through; csp-min-page-views asks for
    that many views before silence counts."""
    site.plan(env="csp-violations = 1\ncsp-min-page-views = 3\n")
    for _ in range(2):
        site.advance()
    site.visit(f"{CDN}/w.js")
    site.visit(f"{CDN}/w.js")
    gate = site.gate()
    assert (gate["ok"], gate["violations"], gate["page_views"], gate["min_page_views"]) == (
        False, 1, 2, 3,
    )  # fmt: skip
    assert "csp-min-page-views = 3" in gate["reason"]
    site.visit()
    assert site.gate()["ok"] is True


def test_noise_does_not_count(site: Site) -> None:
    """An extension's violation is kept apart as noise: it neither holds the gate nor counts
    as a violation; `rollout reports` lists it under noise."""
    site.plan()
    for _ in range(2):
        site.advance()
    site.visit()
    site.inject("script-src-elem", "chrome-extension://abcdef", count=5)
    gate = site.gate()
    assert (gate["ok"], gate["violations"], gate["noise"]) == (True, 0, 1)
    out = site.rollout("reports", ENV).out
    assert "noise, not counted (1):" in out
    assert "chrome-extension://abcdef  on /  (a browser extension or the browser itself)" in out


def test_force_passes_the_gate_and_history_says_so(site: Site) -> None:
    """--force --reason enters the enforcing stage despite the gate; history records it."""
    site.plan()
    for _ in range(2):
        site.advance()
    assert site.advance().code == 1
    forced = site.advance("--force", "--reason", "CHG-7 accepted")
    assert forced.code == 0
    assert "- csp-reports" in forced.out
    last = [
        r for r in history.read(load_plan(site.folder / "plan.toml"), ENV) if r.action == "advance"
    ][-1]
    assert last.to == 2
    assert last.reason == "forced (gates skipped: csp-reports): CHG-7 accepted"


def test_without_the_key_csp_enforces_as_before(site: Site) -> None:
    """Without csp-violations a changed policy goes straight to the next stage, ungated."""
    site.plan(env="")
    for _ in range(2):
        site.advance()
    site.plan(csp=f"{CSP}; script-src 'self' {CDN}", env="")
    result = site.advance("--json")
    out = json.loads(result.out)
    assert result.code == 0 and out["to"] == 2 and "policy_step" not in out
    assert [g["name"] for g in out["gates"]] == ["verified", "soak"]


def test_the_next_policy_goes_report_only_beside_the_enforcing_one(site: Site) -> None:
    """Once enforcing, content-security-policy-next is staged report-only beside the
    enforcing policy; verify checks both; its reports are kept apart; moving it into
    content-security-policy promotes it under the same gate."""
    site.plan(env="csp-violations = 0\n")
    for _ in range(2):
        site.advance()
    site.visit()
    assert site.advance().code == 0  # stage 2: enforcing
    tighter = "default-src 'self'; object-src 'none'; img-src 'none'"
    site.plan(policy=f'content-security-policy-next = "{tighter}"\n')
    staged = json.loads(site.advance("--json").out)
    assert staged["policy_step"] == "stage-policy" and staged["to"] == 2
    app = site.settings().app
    assert "img-src 'none'" in app["content-security-policy-report-only"]
    assert "img-src" not in app["content-security-policy"]
    verified = site.rollout("verify", ENV, "--json")
    assert verified.code == 0
    checked = {c["header"] for c in json.loads(verified.out)["checks"] if c["probe"] == "page"}
    assert {"content-security-policy", "content-security-policy-report-only"} <= checked

    # The next policy draws a report (an image it would block); the enforcing one none.
    site.inject("img-src", "https://img.demo.test")
    site.visit()
    found = json.loads(site.rollout("reports", ENV, "--json").out)
    assert found["policy"] == "enforcing" and found["violations"] == []
    assert [v["blocked"] for v in found["next"]["violations"]] == ["https://img.demo.test"]
    assert found["ok"] is False

    # Promote: the plan now enforces the tighter policy; the gate judges its reports.
    site.plan(csp=tighter)
    held = json.loads(site.advance("--json").out)
    assert held["policy_step"] == "promote-policy" and held["ok"] is False
    assert [g["name"] for g in held["gates"]] == ["verified", "soak", "csp-reports"]
    assert held["gates"][2]["violations"] == 1
    forced = site.advance("--force", "--reason", "accept img-src 'none'", "--json")
    assert json.loads(forced.out)["ok"] is True
    app = site.settings().app
    assert "img-src 'none'" in app["content-security-policy"]
    assert "content-security-policy-report-only" not in app


def test_status_shows_the_gate_with_its_figures(site: Site) -> None:
    """`rollout status` shows the csp-reports gate ahead, in text and JSON."""
    site.plan()
    for _ in range(2):
        site.advance()
    site.visit(f"{CDN}/w.js")
    status = json.loads(site.rollout("status", ENV, "--json").out)
    assert status["csp_reports"]["ok"] is False
    assert status["csp_reports"]["violations"] == 1
    assert "csp-reports" in status["next"]["waiting_for"]
    text = site.rollout("status", ENV).out
    assert "  csp-reports: ✗ 1 distinct violation" in text
    assert f"clean CSP reports (rollout reports {ENV})" in text


def test_an_unreachable_store_fails_the_gate_in_one_line(site: Site) -> None:
    """A PostgreSQL store nobody answers on makes the gate fail with its reason, exit 1."""
    from tests.reports.support import free_port

    url = f"postgresql://rollout@127.0.0.1:{free_port()}/none"
    site.plan(env=f'csp-violations = 0\nreports-store = "{url}"\n')
    for _ in range(2):
        site.advance()
    result = site.advance()
    assert result.code == 1
    assert "cannot open the report store" in result.out
    assert "Traceback" not in result.out + result.err
