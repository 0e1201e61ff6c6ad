"""`rollout reports`: what it prints, its JSON, its exit codes, and that nothing a report
holds can forge a line or drive the terminal."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rollout import ladder, store
from rollout.plan import load_plan
from rollout.reports.fingerprint import policy_id
from rollout.reports.store import ViewCount, ViolationCount, open_store
from tests.conftest import Result

PLAN = """\
[policy]
content-security-policy = "default-src 'self'; script-src 'self'"
csp-report-uri = "/csp-report"

[environments.staging]
urls = ["https://shop.example.test/"]
csp-violations = 0
"""


@pytest.fixture
def staged(write_plan: Callable[..., Path]) -> Path:
    """A plan and staging's stage file at stage 1 (report-only), written just now."""
    path = write_plan(PLAN)
    plan = load_plan(path)
    store.write_settings(plan, ladder.settings_for(plan, "staging", 1))
    return path


def add(path: Path, *rows: tuple[str, str, str, int, str], views: int = 0, ago: float = 0) -> None:
    """Store violations (directive, blocked, document, count, sample) of the live policy."""
    plan = load_plan(path)
    live = store.read_settings(plan, "staging")
    assert live is not None
    pid = policy_id(live.app["content-security-policy-report-only"])
    when = time.time() - ago
    hour = int(when // 3600) * 3600
    reports = open_store(path.parent / "staging.reports.sqlite3")
    reports.add(
        [ViolationCount("staging", pid, "1", "report", d, b, doc, "https://shop.example.test",
                        "", hour, n, when, when, s) for d, b, doc, n, s in rows],
        [ViewCount("staging", pid, "1", hour, views, when, when)] if views else [],
    )  # fmt: skip
    reports.close()


def test_violations_most_frequent_first_with_advice(
    staged: Path, rollout: Callable[..., Result]
) -> None:
    """Each distinct violation, most frequent first, with the smallest change; exit 1 over
    the budget."""
    add(
        staged,
        ("img-src", "data", "/a", 2, ""),
        ("script-src-elem", "https://cdn.example.test", "/", 9, ""),
        views=12,
    )
    result = rollout("--plan", str(staged), "reports", "staging")
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[0].startswith("staging at stage 1 (hsts-5m); reports since ")
    assert lines[0].endswith("(the current stage began)")
    assert lines[2:8] == [
        "report-only policy (content-security-policy-report-only): 11 reports, 12 page views",
        "  ✗ 2 distinct violations (csp-violations = 0)",
        "         9  script-src-elem  https://cdn.example.test  on /",
        "      → add https://cdn.example.test to script-src",
        "         2  img-src  data  on /a",
        "      → add `img-src 'self' data:` (default-src's sources plus data:)",
    ]
    assert lines[-1].startswith("rollout never widens a policy: edit the plan")


def test_json_has_the_design_fields(staged: Path, rollout: Callable[..., Result]) -> None:
    """--json: environment, stage, ok, reports and violations with DESIGN.md's fields."""
    add(staged, ("script-src-elem", "inline", "/", 3, "go()"), views=1)
    out = json.loads(rollout("--plan", str(staged), "reports", "staging", "--json").out)
    assert {k: out[k] for k in ("environment", "stage", "ok", "reports")} == {
        "environment": "staging", "stage": 1, "ok": False, "reports": 3,
    }  # fmt: skip
    [v] = out["violations"]
    assert set(v) >= {"directive", "blocked", "document", "count", "first_seen", "last_seen"}
    assert (v["directive"], v["blocked"], v["document"], v["count"]) == (
        "script-src-elem", "inline", "/", 3,
    )  # fmt: skip
    assert v["advice"].startswith("add 'sha256-")
    assert (out["policy"], out["page_views"], out["budget"], out["next"]) == (
        "report-only", 1, 0, None,
    )  # fmt: skip


def test_a_clean_window_exits_0(staged: Path, rollout: Callable[..., Result]) -> None:
    """No violation: a check mark and exit 0."""
    add(staged, views=4)
    result = rollout("--plan", str(staged), "reports", "staging")
    assert result.code == 0
    assert "  ✓ 0 distinct violations (csp-violations = 0)" in result.out


def test_since_looks_back_a_duration(staged: Path, rollout: Callable[..., Result]) -> None:
    """--since 30m leaves out what was last seen earlier; a bad duration is exit 2."""
    add(staged, ("img-src", "https://old.example.test", "/", 1, ""), ago=7200)
    add(staged, ("img-src", "https://new.example.test", "/", 1, ""))
    out = json.loads(
        rollout("--plan", str(staged), "reports", "staging", "--since", "30m", "--json").out
    )
    assert [v["blocked"] for v in out["violations"]] == ["https://new.example.test"]
    wide = json.loads(
        rollout("--plan", str(staged), "reports", "staging", "--since", "1d", "--json").out
    )
    assert len(wide["violations"]) == 2
    bad = rollout("--plan", str(staged), "reports", "staging", "--since", "yesterday")
    assert bad.code == 2
    assert bad.err == "rollout: --since: 'yesterday' is not a duration like 30m, 24h, 7d\n"


def test_report_contents_cannot_drive_the_terminal(
    staged: Path, rollout: Callable[..., Result]
) -> None:
    """Escape sequences, CR and LF in a stored sample are shown escaped, on one line."""
    hostile = "\x1b[2J\x1b]0;owned\x07\r\nrollout: all clean"
    add(staged, ("script-src-elem", "inline", "/", 1, hostile))
    result = rollout("--plan", str(staged), "reports", "staging")
    assert "\x1b" not in result.out and "\r" not in result.out and "\x07" not in result.out
    assert not any(line.startswith("rollout: all clean") for line in result.out.splitlines())
    assert "\\x1b[2J\\x1b]0;owned\\x07\\r\\nrollout: all clean" in result.out


def test_stage_off_has_nothing_to_report(
    write_plan: Callable[..., Path], rollout: Callable[..., Result]
) -> None:
    """Before stage 0 no CSP is sent, so there is nothing to report (exit 0)."""
    path = write_plan(PLAN)
    result = rollout("--plan", str(path), "reports", "staging")
    assert result.code == 0
    assert result.out.splitlines()[-1] == "  no CSP is sent at this stage: nothing to report"
    assert not (path.parent / "staging.reports.sqlite3").exists()
