"""advance and revert end to end: real loopback servers over TLS, the real CLI, real files.

The environment is `rollout.demo.servers`: uvicorn serving a page app wrapped in rollout's
ASGI middleware, behind an aiohttp TLS edge that owns two headers, with an http redirector
and a subdomain. Every assertion is on what a user sees: exit codes, printed lines, the
stage file, the history, and the live headers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollout import history, orchestrate, settings, store
from rollout.demo.servers import LocalEnvironment, start
from rollout.plan import Plan, load_plan
from rollout.probe import ProbeOptions
from tests.conftest import Result

pytestmark = pytest.mark.integration

ENV = "staging"
HOST = "shop.demo.test"
EDGE = {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}
OPTIONS = ProbeOptions(timeout=5.0)

POLICY = """\
[policy]
content-security-policy = "default-src 'self'; object-src 'none'; frame-ancestors 'none'"
permissions-policy = "geolocation=(), camera=()"
referrer-policy = "strict-origin-when-cross-origin"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
csp-report-uri = "/csp-report"
"""


@dataclass
class Site:
    """A running local environment and the folder its plan lives in."""

    local: LocalEnvironment
    folder: Path

    def write_plan(self, env_extra: str = "", ladder_keys: str = "", extra: str = "") -> Path:
        connect = ", ".join(f'"{c}"' for c in self.local.connect_to())
        text = (
            POLICY
            + (f"[ladder]\n{ladder_keys}\n" if ladder_keys else "")
            + f"[environments.{ENV}]\n"
            + f'urls = ["https://{HOST}/", "https://{HOST}/account"]\n'
            + 'edge = ["x-content-type-options", "x-frame-options"]\n'
            + f'subdomains = ["api.{HOST}"]\n'
            + f"connect-to = [{connect}]\n"
            + 'cacert = "ca.pem"\n'
            + 'soak = "0s"\n'
            + env_extra
            + extra
        )
        path = self.folder / "plan.toml"
        path.write_text(text)
        return path

    @property
    def plan(self) -> Plan:
        return load_plan(self.folder / "plan.toml")

    def stage(self) -> int | None:
        current = store.read_settings(self.plan, ENV)
        return None if current is None else current.stage

    def records(self, env: str = ENV) -> list[tuple[str, object, object, bool]]:
        return [(r.action, r.from_, r.to, r.verified) for r in history.read(self.plan, env)]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A fresh local environment whose app watches <folder>/staging.toml."""
    folder = tmp_path / "stages"
    with start(folder, folder / f"{ENV}.toml", EDGE) as local:
        yield Site(local, folder)


Run = Callable[..., Result]


def advance(rollout: Run, plan: Path, *args: str) -> Result:
    return rollout("advance", ENV, "--plan", str(plan), "--settle", "5", *args)


def climb(rollout: Run, plan: Path, to: int) -> None:
    """Advance from off up to stage `to`, each step proven live."""
    for _ in range(to + 1):
        result = advance(rollout, plan)
        assert result.code == 0, result.out + result.err


# advance ------------------------------------------------------------------------------


def test_advance_from_off_writes_stage_0_and_proves_it(site: Site, rollout: Run) -> None:
    """From stage off, advance verifies off, writes stage 0, and proves it live."""
    plan = site.write_plan()
    result = advance(rollout, plan)
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert lines[0] == "→ verify stage off live (the current stage)"
    assert "  ✓ verified  all 8 checks passed live" in lines
    assert "  app  strict-transport-security: (none) -> max-age=30" in lines
    assert lines[-1] == "✓ staging is at stage 0 (hsts-30s), verified live"
    assert site.stage() == 0
    assert site.records() == [
        ("verify", None, None, True),
        ("advance", None, 0, False),
        ("verify", 0, 0, True),
    ]
    status = json.loads(rollout("status", ENV, "--json", "--plan", str(plan)).out)
    assert status["command"] == "rollout advance staging"
    assert status["interrupted"] is None


def test_climbing_enforces_csp_and_adds_subdomains_on_the_ladder(site: Site, rollout: Run) -> None:
    """Through stage 5 the CSP turns enforcing and includeSubDomains needs the subdomain gate."""
    plan = site.write_plan()
    climb(rollout, plan, 4)
    result = advance(rollout, plan, "--json")
    out = json.loads(result.out)
    assert result.code == 0
    assert [(g["name"], g["ok"]) for g in out["gates"]] == [
        ("verified", True),
        ("soak", True),
        ("subdomains", True),
    ]
    assert (out["from"], out["to"], out["stage"]) == (4, 5, 5)
    assert {c["probe"] for c in out["checks"]} >= {"page", "404", "http", "subdomain"}
    assert store.read_settings(site.plan, ENV).app["strict-transport-security"] == (  # type: ignore[union-attr]
        "max-age=2592000; includeSubDomains"
    )


def test_dry_run_prints_gates_and_diff_and_writes_nothing(site: Site, rollout: Run) -> None:
    """--dry-run judges the gates live and prints the diff, but no file changes."""
    plan = site.write_plan()
    climb(rollout, plan, 3)
    before = {p.name: p.read_bytes() for p in site.folder.iterdir() if p.is_file()}
    result = advance(rollout, plan, "--dry-run", "--json")
    assert result.code == 0
    out = json.loads(result.out)
    assert out["dry_run"] is True and out["stage"] == 3 and out["to"] == 4
    assert {"owner": "app", "header": "content-security-policy", "before": None,
            "after": out["changes"][0]["after"]} in out["changes"]  # fmt: skip
    assert [g["name"] for g in out["gates"]] == ["verified", "soak"]
    after = {p.name: p.read_bytes() for p in site.folder.iterdir() if p.is_file()}
    assert after == before


def test_soak_gate_refuses_and_names_the_time_left(site: Site, rollout: Run) -> None:
    """With soak = "1h" a second advance is refused, saying how long is left; nothing written."""
    plan = site.write_plan(extra="")
    plan.write_text(plan.read_text().replace('soak = "0s"', 'soak = "1h"'))
    assert advance(rollout, plan).code == 0  # off -> 0 has no soak gate
    result = advance(rollout, plan)
    assert result.code == 1
    soak = next(line for line in result.out.splitlines() if "soak" in line and "left" in line)
    assert soak.startswith("  ✗ soak      59m") or soak.startswith("  ✗ soak      1h")
    assert "of 1h (the plan's soak); over at " in soak
    assert result.out.splitlines()[-1].startswith(
        "✗ staging stays at stage 0 (hsts-30s): gate soak"
    )
    assert site.stage() == 0


def test_soak_gate_with_a_clock_passes_once_the_soak_is_over(site: Site) -> None:
    """The soak gate reads the time it is given: an hour later the same advance passes."""
    site.write_plan()
    plan = load_plan(site.folder / "plan.toml")
    text = plan.path.read_text().replace('soak = "0s"', 'soak = "1h"')
    plan.path.write_text(text)
    plan = load_plan(plan.path)
    env = plan.environment(ENV)
    assert orchestrate.advance(plan, env, options=OPTIONS, settle=5).ok
    later = datetime.now(UTC) + timedelta(hours=1, seconds=5)
    early = orchestrate.advance(plan, env, options=OPTIONS, dry_run=True)
    late = orchestrate.advance(plan, env, options=OPTIONS, dry_run=True, now=lambda: later)
    assert [(g.name, g.ok) for g in early.gates] == [("verified", True), ("soak", False)]
    assert [(g.name, g.ok) for g in late.gates] == [("verified", True), ("soak", True)]


def test_force_skips_soak_with_a_reason_history_keeps(site: Site, rollout: Run) -> None:
    """--force --reason passes a soak gate; the gate shows as skipped and history says so."""
    plan = site.write_plan()
    plan.write_text(plan.read_text().replace('soak = "0s"', 'soak = "1h"'))
    assert advance(rollout, plan).code == 0
    bare = advance(rollout, plan, "--force")
    assert bare.code == 2
    assert bare.err == (
        "rollout: --force needs --reason TEXT: the history keeps why gates were skipped\n"
    )
    result = advance(rollout, plan, "--force", "--reason", "CHG-7 approved")
    assert result.code == 0, result.out
    assert "  - soak      skipped (forced): " in result.out
    last_advance = [r for r in history.read(site.plan, ENV) if r.action == "advance"][-1]
    assert last_advance.reason == "forced (gates skipped: soak): CHG-7 approved"
    assert site.stage() == 1


def test_verified_gate_fails_on_a_broken_edge(site: Site, rollout: Run) -> None:
    """When the live site does not hold its current stage, advance refuses and writes nothing."""
    plan = site.write_plan()
    climb(rollout, plan, 0)
    site.local.set_edge_headers({"x-content-type-options": "nosniff"})  # XFO dropped
    result = advance(rollout, plan)
    assert result.code == 1
    assert "  ✗ verified  " in result.out
    assert "x-frame-options" in result.out
    assert site.stage() == 0
    assert site.records()[-1] == ("verify", 0, 0, False)


def test_subdomain_gate_fails_and_force_does_not_skip_it(site: Site, rollout: Run) -> None:
    """A subdomain without a valid certificate blocks includeSubDomains, --force or not."""
    plan = site.write_plan()
    # other.demo.test reaches the same edge, whose certificate does not name it.
    text = plan.read_text().replace(
        f'subdomains = ["api.{HOST}"]', 'subdomains = ["other.demo.test"]'
    )
    port = site.local.https_port
    text = text.replace("connect-to = [", f'connect-to = ["other.demo.test:443:127.0.0.1:{port}", ')
    plan.write_text(text)
    climb(rollout, plan, 4)
    result = advance(rollout, plan, "--force", "--reason", "try")
    assert result.code == 1
    gate = next(line for line in result.out.splitlines() if "subdomains" in line)
    assert gate.startswith("  ✗ subdomains  ")
    assert "subdomain.E001" in gate
    assert site.stage() == 4


def test_after_gate_waits_for_the_other_environment(site: Site, rollout: Run) -> None:
    """production after staging may not enter stage 0 until staging reached and verified it."""
    plan = site.write_plan()
    connect = ", ".join(f'"{c}"' for c in site.local.connect_to())
    plan.write_text(
        plan.read_text()
        + "\n[environments.production]\n"
        + 'after = "staging"\n'
        + f'urls = ["https://{HOST}/"]\n'
        + 'edge = ["x-content-type-options", "x-frame-options"]\n'
        + f"connect-to = [{connect}]\n"
        + 'cacert = "ca.pem"\n'
    )
    waiting = rollout("advance", "production", "--plan", str(plan), "--dry-run")
    assert waiting.code == 1
    assert "  ✗ after     staging has reached and verified no stage; it must reach 0" in (
        waiting.out.splitlines()
    )
    climb(rollout, plan, 0)
    ready = rollout("advance", "production", "--plan", str(plan), "--dry-run")
    assert "  ✓ after     staging has reached and verified stage 0" in ready.out.splitlines()


def test_preload_gate_checks_hstspreload_rules_and_is_never_forced(
    site: Site, rollout: Run
) -> None:
    """Entering preload needs every origin to redirect http to https first, even forced."""
    plan = site.write_plan(ladder_keys="preload = true")
    climb(rollout, plan, 6)
    # Now plain http stops redirecting: point port 80 at a port that refuses connections.
    text = plan.read_text().replace(f":80:127.0.0.1:{site.local.http_port}", ":80:127.0.0.1:1")
    plan.write_text(text)
    result = advance(rollout, plan, "--force", "--reason", "go", "--json")
    assert result.code == 1
    gates = {g["name"]: g for g in json.loads(result.out)["gates"]}
    assert gates["verified"]["skipped"] is True
    assert gates["preload"]["ok"] is False
    assert "http://shop.demo.test/" in gates["preload"]["reason"]
    assert site.stage() == 6


def test_advance_rolls_back_when_the_app_ignores_the_new_file(tmp_path: Path, rollout: Run) -> None:
    """An app that watches another file never shows the new stage: advance puts off back, exit 1."""
    folder = tmp_path / "stages"
    with start(folder, tmp_path / "elsewhere.toml", EDGE) as local:
        plan = Site(local, folder).write_plan()
        result = rollout("advance", ENV, "--plan", str(plan), "--settle", "1")
        site = Site(local, folder)
        assert result.code == 1
        lines = result.out.splitlines()
        assert any(
            line.startswith("→ roll back to stage off: stage 0 (hsts-30s) failed its live check")
            for line in lines
        )
        assert lines[-1].startswith("✗ staging rolled back to stage off: ")
        assert "failed checks:" in lines
        assert any(
            line.lstrip().startswith("curl -sS -o /dev/null -D - --max-time 10 --connect-to")
            for line in lines
        )
        assert site.stage() is None
        assert site.records() == [
            ("verify", None, None, True),
            ("advance", None, 0, False),
            ("verify", 0, 0, False),
            ("rollback", 0, None, False),
            ("verify", None, None, True),
        ]


def test_advance_rolls_back_when_apply_fails(site: Site, rollout: Run) -> None:
    """A failing apply command rolls the advance back; its output is kept in the history."""
    # Reloading fails for stage 1 only, so the rollback's own apply (stage 0) works.
    script = (
        "import os, sys\n"
        "if os.environ['ROLLOUT_STAGE'] == '1':\n"
        "    print('reload failed: no such unit'); sys.exit(3)"
    )
    argv = json.dumps([sys.executable, "-c", script])
    plan = site.write_plan(extra=f"apply = {argv}\n")
    climb(rollout, plan, 0)
    result = advance(rollout, plan)
    assert result.code == 1
    assert result.out.splitlines()[-1] == (
        "✗ staging rolled back to stage 0 (hsts-30s): apply failed for stage 1 (hsts-5m): "
        "exited with 3 / reload failed: no such unit"
    )
    rollback = history.read(site.plan, ENV)[-2]
    assert (rollback.action, rollback.from_, rollback.to) == ("rollback", 1, 0)
    assert rollback.apply_output == "exited with 3\nreload failed: no such unit\n"
    assert site.records()[-1] == ("verify", 0, 0, True)
    assert site.stage() == 0


def test_apply_runs_with_the_stage_in_its_environment(site: Site, rollout: Run) -> None:
    """apply runs as argv in the plan's folder, told the environment, stage and settings path."""
    script = (
        "import os, pathlib; pathlib.Path('applied.txt').write_text("
        "os.environ['ROLLOUT_ENVIRONMENT'] + ' ' + os.environ['ROLLOUT_STAGE'] + ' ' + "
        "os.environ['ROLLOUT_SETTINGS'])"
    )
    plan = site.write_plan(extra=f"apply = {json.dumps([sys.executable, '-c', script])}\n")
    assert advance(rollout, plan).code == 0
    assert (site.folder / "applied.txt").read_text() == (
        f"staging 0 {(site.folder / 'staging.toml').absolute()}"
    )


def test_advance_at_the_top_does_nothing(site: Site, rollout: Run) -> None:
    """At the last stage advance says there is nothing to do and exits 0."""
    plan = site.write_plan(ladder_keys="hsts = [30, 300]")
    climb(rollout, plan, 1)
    result = advance(rollout, plan)
    assert result.code == 0
    assert result.out.splitlines()[-1] == (
        "✓ staging is at the top of the ladder (stage 1 (hsts-5m)); nothing to do"
    )


# revert -------------------------------------------------------------------------------


def revert(rollout: Run, plan: Path, *args: str) -> Result:
    return rollout("revert", ENV, "--plan", str(plan), "--settle", "5", *args)


def test_revert_goes_to_the_last_verified_stage_and_confirms_the_edge(
    site: Site, rollout: Run
) -> None:
    """revert writes the stage below that last verified and proves both edge headers survived."""
    plan = site.write_plan()
    climb(rollout, plan, 2)
    result = revert(rollout, plan, "--reason", "INC-1", "--json")
    assert result.code == 0, result.out
    out = json.loads(result.out)
    assert (out["from"], out["to"], out["stage"], out["ok"]) == (2, 1, 1, True)
    edge = [c for c in out["checks"] if c["probe"] == "edge"]
    # Two edge headers on two pages and one 404 probe.
    assert len(edge) == 6 and all(c["ok"] for c in edge)
    assert {c["header"] for c in edge} == set(EDGE)
    assert site.stage() == 1
    assert site.records()[-2:] == [("revert", 2, 1, False), ("verify", 1, 1, True)]
    assert history.read(site.plan, ENV)[-2].reason == "INC-1"
    # max-age went down: the rollback horizon is recorded and shown.
    assert out["hsts_until"]
    status = json.loads(rollout("status", ENV, "--json", "--plan", str(plan)).out)
    assert status["hsts_until"] == out["hsts_until"]


def test_revert_says_what_hsts_makes_impossible(site: Site, rollout: Run) -> None:
    """Lowering max-age prints the rollback horizon and how only max-age=0 makes browsers forget."""
    plan = site.write_plan()
    climb(rollout, plan, 1)
    result = revert(rollout, plan)
    assert result.code == 0
    notes = [line for line in result.out.splitlines() if line.startswith("! ")]
    assert notes[0].startswith("! max-age goes down from 300 to 30: browsers keep the longest")
    assert notes[1] == "! only max-age=0 makes browsers forget it, and only those that visit"
    assert notes[2] == (
        "! to make visiting browsers forget it: rollout revert staging --to 0 --clear-hsts"
    )


def test_revert_fails_when_the_edge_breaks(site: Site) -> None:
    """An edge header that changes during the revert fails it (exit 1) naming header and probe."""
    site.write_plan()
    plan = site.plan
    env = plan.environment(ENV)
    for _ in range(2):
        assert orchestrate.advance(plan, env, options=OPTIONS, settle=5).ok

    def meddle(step: str) -> None:
        if step.startswith("write "):  # as if a proxy reload lost one header
            site.local.set_edge_headers({"x-content-type-options": "nosniff"})

    outcome = orchestrate.revert(plan, env, options=OPTIONS, settle=2, say=meddle)
    assert not outcome.ok
    lost = [c for c in outcome.checks if c.failed]
    assert {(c.probe, c.header, c.id) for c in lost} == {("edge", "x-frame-options", "edge.E001")}
    assert all(c.message == "is missing after the revert" for c in lost)
    assert outcome.message.startswith("staging reverted to stage 0 (hsts-30s), NOT confirmed: edge")
    # The written revert stays in place.
    assert store.read_settings(plan, ENV).stage == 0  # type: ignore[union-attr]


def test_revert_exits_1_when_the_edge_was_already_broken(site: Site, rollout: Run) -> None:
    """An edge header missing before the revert cannot be confirmed: exit 1, edge.E002."""
    plan = site.write_plan()
    climb(rollout, plan, 1)
    site.local.set_edge_headers({"x-frame-options": "DENY"})
    result = revert(rollout, plan)
    assert result.code == 1
    assert "edge.E002" in result.out
    assert site.stage() == 0


def test_incident_revert_to_off_clears_hsts(site: Site, rollout: Run) -> None:
    """--to off --clear-hsts sends only max-age=0 from the app; every other app header goes."""
    plan = site.write_plan()
    climb(rollout, plan, 4)
    result = revert(rollout, plan, "--to", "off", "--clear-hsts", "--reason", "INC-2")
    assert result.code == 0, result.out
    written = settings.load(site.folder / "staging.toml")
    assert written is not None and written.stage is None
    assert dict(written.app) == {"strict-transport-security": "max-age=0"}
    assert dict(written.edge) == EDGE
    assert "! max-age=0 makes browsers that visit forget the policy" in result.out
    # What the app sends now: exactly the cleared HSTS, plus the edge's headers.
    verify = rollout("verify", ENV, "--plan", str(plan), "--json")
    assert verify.code == 0, verify.out
    page = [
        c for c in json.loads(verify.out)["checks"] if c["header"] == "strict-transport-security"
    ]
    assert page and all(c["actual"] == ["max-age=0"] for c in page if c["probe"] == "page")


def test_revert_dry_run_lists_target_diff_and_steps(site: Site, rollout: Run) -> None:
    """--dry-run prints the target, the header diff and the steps, and writes nothing."""
    plan = site.write_plan()
    climb(rollout, plan, 1)
    before = (site.folder / "staging.toml").read_bytes()
    result = revert(rollout, plan, "--dry-run")
    assert result.code == 0
    lines = result.out.splitlines()
    assert "  app  strict-transport-security: max-age=300 -> max-age=30" in lines
    assert "steps:" in lines
    assert any(line.startswith("  1. capture the live edge-owned headers") for line in lines)
    assert lines[-1] == "✓ staging would revert to stage 0 (hsts-30s); nothing written (dry run)"
    assert (site.folder / "staging.toml").read_bytes() == before


def test_revert_to_the_stage_in_place_is_a_no_op(site: Site, rollout: Run) -> None:
    """Reverting to the current stage changes nothing and exits 0."""
    plan = site.write_plan()
    climb(rollout, plan, 1)
    count = len(site.records())
    result = revert(rollout, plan, "--to", "1")
    assert result.code == 0
    assert result.out.splitlines()[-1] == (
        "✓ staging is already at stage 1 (hsts-5m); nothing to revert"
    )
    assert len(site.records()) == count


def test_revert_clear_hsts_is_refused_when_the_edge_owns_hsts(site: Site, rollout: Run) -> None:
    """max-age=0 from the app cannot clear an edge's HSTS: exit 2, one line, nothing written."""
    plan = site.write_plan()
    plan.write_text(
        plan.read_text().replace(
            'edge = ["x-content-type-options", "x-frame-options"]',
            'edge = ["x-content-type-options", "x-frame-options", "strict-transport-security"]',
        )
    )
    result = revert(rollout, plan, "--clear-hsts")
    assert result.code == 2
    assert result.err == (
        "rollout: staging: the edge owns strict-transport-security, so clearing it (max-age=0) "
        "has to happen in the proxy or CDN configuration; rollout does not change the edge\n"
    )
    assert not (site.folder / "staging.toml").exists()


def test_revert_to_a_stage_the_ladder_lacks_is_bad_input(site: Site, rollout: Run) -> None:
    """--to 9 on a seven-stage ladder is refused with exit 2 and nothing written."""
    plan = site.write_plan()
    result = revert(rollout, plan, "--to", "9")
    assert result.code == 2
    assert "there is no stage 9" in result.err
    bad = revert(rollout, plan, "--to", "top")
    assert (bad.code, bad.err) == (2, "rollout: --to: 'top' is not a stage number or \"off\"\n")


def test_revert_from_preload_warns_and_checks_the_preload_list(site: Site, rollout: Run) -> None:
    """Leaving a preload stage says preload lists take months and checks Chromium's list."""
    plan = site.write_plan(ladder_keys="preload = true")
    climb(rollout, plan, 7)
    result = revert(rollout, plan)
    assert result.code == 0, result.out
    notes = [line for line in result.out.splitlines() if line.startswith("! ")]
    assert notes[0].startswith("! the stage had preload: leaving browsers' preload lists takes")
    assert notes[1].startswith("! shop.demo.test is not on Chromium's preload list (hstspreload ")
    assert site.stage() == 6


def test_preload_list_lookup_knows_a_preloaded_domain() -> None:
    """The list the hstspreload package ships names well-known preloaded domains."""
    from rollout.cli.orchestrate import _preload_list

    assert _preload_list("github.com").startswith("github.com is on Chromium's preload list")
    assert _preload_list("example.com").startswith("example.com is not on")


def test_revert_never_climbs(site: Site, rollout: Run) -> None:
    """--to a stage above the current one is refused: climbing goes through advance's gates."""
    plan = site.write_plan()
    climb(rollout, plan, 0)
    result = revert(rollout, plan, "--to", "5")
    assert (result.code, result.err) == (
        2,
        "rollout: staging: stage 5 is above the current stage 0 (hsts-30s); a revert only "
        "goes down (advance climbs, through the gates)\n",
    )
    assert site.stage() == 0


def test_revert_runs_when_the_plan_changed_under_the_stage_file(site: Site, rollout: Run) -> None:
    """A plan edited since the last transition does not block the incident command."""
    plan = site.write_plan()
    climb(rollout, plan, 1)
    # The plan now gives referrer-policy to the edge, which the file still has in [app].
    plan.write_text(
        plan.read_text().replace('"x-frame-options"]', '"x-frame-options", "referrer-policy"]')
    )
    assert rollout("status", ENV, "--plan", str(plan)).code == 2
    result = revert(rollout, plan)
    assert result.code == 0, result.out
    assert "! the stage file did not fit the plan (" in result.out
    assert site.stage() == 0
