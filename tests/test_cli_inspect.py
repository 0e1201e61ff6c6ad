"""`rollout plan`, `rollout status` and `rollout history` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rollout import history, ladder, store
from rollout.plan import load_plan

if TYPE_CHECKING:
    from conftest import Result

REPO = Path(__file__).resolve().parent.parent
Run = Callable[..., "Result"]


def test_plan_prints_the_ladder_table(write_plan: Callable[..., Path], rollout: Run) -> None:
    """`rollout plan` prints one row per stage with its HSTS value, CSP mode and gates."""
    plan = write_plan()
    result = rollout("plan", "--plan", str(plan))
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == f"Ladder of {plan}: 7 stages"
    assert lines[2].split() == [
        "#",
        "name",
        "strict-transport-security",
        "csp",
        "gate",
        "to",
        "enter",
        "it",
    ]
    assert lines[3].split() == ["off", "off", "-", "-", "-"]
    assert lines[4].split() == [
        "0",
        "hsts-30s",
        "max-age=30",
        "report-only",
        "current",
        "stage",
        "verified",
    ]
    assert " ".join(lines[9].split()) == (
        "5 hsts-30d max-age=2592000; includeSubDomains enforcing verified, soak, subdomain checks"
    )
    assert "  x-frame-options: DENY" in lines


def test_plan_for_an_environment_marks_owners(
    write_plan: Callable[..., Path], rollout: Run
) -> None:
    """`rollout plan ENV` marks each header app or edge and adds the after gate."""
    plan = write_plan()
    result = rollout("plan", "production", "--plan", str(plan))
    assert result.code == 0
    assert "max-age=30 (edge)" in result.out
    assert "report-only (app)" in result.out
    assert "verified, soak, after, subdomain checks" in result.out
    assert "  x-content-type-options (edge): nosniff" in result.out
    assert result.out.rstrip().endswith(
        "At stage off the app sends nothing and the edge sends: x-content-type-options"
    )


def test_plan_json(write_plan: Callable[..., Path], rollout: Run) -> None:
    """`rollout plan ENV --json` lists stage off and every stage with its app and edge headers."""
    plan = write_plan()
    out = json.loads(rollout("plan", "production", "--json", "--plan", str(plan)).out)
    assert out["environment"] == "production"
    assert [s["stage"] for s in out["stages"]] == ["off", 0, 1, 2, 3, 4, 5, 6]
    assert out["stages"][0] == {
        "stage": "off",
        "name": "off",
        "app": {},
        "edge": {"x-content-type-options": "nosniff"},
        "gates": [],
    }
    assert out["stages"][1]["edge"]["strict-transport-security"] == "max-age=30"
    assert out["stages"][1]["gates"] == ["verified", "after"]


def test_plan_reads_rollout_plan_from_the_environment(
    write_plan: Callable[..., Path], rollout: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ROLLOUT_PLAN names the plan when --plan is not given."""
    monkeypatch.setenv("ROLLOUT_PLAN", str(write_plan()))
    assert json.loads(rollout("plan", "--json").out)["stages"][7]["name"] == "hsts-1y"


def test_status_of_a_fresh_plan(write_plan: Callable[..., Path], rollout: Run) -> None:
    """Before anything is written every environment is off, never verified, and writes nothing."""
    plan = write_plan()
    result = rollout("status", "--plan", str(plan))
    assert result.code == 0
    assert result.out.splitlines() == [
        "staging: stage off",
        "  (no headers)",
        "  last verify: never",
        "  next: stage 0 hsts-30s",
        "  run: rollout advance staging",
        "",
        "production: stage off",
        "  edge  x-content-type-options: nosniff",
        "  last verify: never",
        "  next: stage 0 hsts-30s",
        "  run: wait for staging to reach and verify stage 0, then rollout advance production",
    ]
    assert [p.name for p in plan.parent.iterdir()] == ["plan.toml"]


def test_status_after_an_advance_and_a_verify(
    write_plan: Callable[..., Path], rollout: Run
) -> None:
    """Status shows the stage, its headers by owner, the last verify and the soak end."""
    path = write_plan()
    plan = load_plan(path)
    store.write_settings(plan, ladder.settings_for(plan, "staging", 2))
    history.append(
        plan,
        "staging",
        history.HistoryRecord("2026-01-01T00:00:00Z", "advance", 1, 2, "", "ann", True),
    )
    history.append(
        plan,
        "staging",
        history.HistoryRecord("2026-01-01T00:10:00Z", "verify", 2, 2, "", "ann", True),
    )
    out = json.loads(rollout("status", "staging", "--json", "--plan", str(path)).out)
    assert {k: out[k] for k in ("environment", "stage", "name", "ok", "since")} == {
        "environment": "staging",
        "stage": 2,
        "name": "hsts-1h",
        "ok": True,
        "since": "2026-01-01T00:00:00Z",
    }
    assert out["app"]["strict-transport-security"] == "max-age=3600"
    assert out["edge"] == {}
    assert out["last_verify"] == {
        "time": "2026-01-01T00:10:00Z",
        "stage": 2,
        "ok": True,
        "insecure": False,
    }
    assert out["next"] == {
        "stage": 3,
        "name": "hsts-1d",
        "gates": ["verified", "soak"],
        "may_advance_at": "2026-01-01T01:00:00Z",
        "waiting_for": [],
    }
    text = rollout("status", "staging", "--plan", str(path)).out.splitlines()
    assert text[0] == "staging: stage 2 hsts-1h, since 2026-01-01T00:00:00Z"
    assert "  app   strict-transport-security: max-age=3600" in text
    assert "  last verify: ✓ passed at stage 2, 2026-01-01T00:10:00Z" in text
    assert text[-2:] == [
        "  next: stage 3 hsts-1d, soak over at 2026-01-01T01:00:00Z",
        "  run: rollout advance staging",
    ]


def test_status_all_environments_json(write_plan: Callable[..., Path], rollout: Run) -> None:
    """`status --json` without ENV lists every environment under "environments"."""
    path = write_plan()
    plan = load_plan(path)
    store.write_settings(plan, ladder.settings_for(plan, "staging", 0))
    history.append(plan, "staging", history.new_record("verify", 0, 0, verified=False))
    out = json.loads(rollout("status", "--json", "--plan", str(path)).out)
    assert out["ok"] is False
    assert [(e["environment"], e["stage"], e["ok"]) for e in out["environments"]] == [
        ("staging", 0, False),
        ("production", "off", False),
    ]
    assert out["environments"][0]["last_verify"]["ok"] is False
    # advance verifies live itself, so a failed last verify is no reason to wait.
    assert out["environments"][1]["next"]["waiting_for"] == ["after"]
    # A stage file no transition record explains: a command died between the two writes.
    assert out["environments"][0]["interrupted"] == (
        "the stage file says stage 0 but the history records no transition"
    )
    assert out["environments"][0]["command"] == (
        "rollout verify staging, then rollout advance staging or rollout revert staging"
    )


def test_status_at_the_top_of_the_ladder(write_plan: Callable[..., Path], rollout: Run) -> None:
    """At the last stage there is no next stage."""
    path = write_plan()
    plan = load_plan(path)
    store.write_settings(plan, ladder.settings_for(plan, "staging", 6))
    out = json.loads(rollout("status", "staging", "--json", "--plan", str(path)).out)
    assert out["next"] is None
    assert (
        "  next: none, the top of the ladder"
        in rollout("status", "staging", "--plan", str(path)).out
    )


def test_history_lists_records(write_plan: Callable[..., Path], rollout: Run) -> None:
    """`rollout history ENV` shows when, what, from, to, verified, who and why."""
    path = write_plan()
    plan = load_plan(path)
    assert rollout("history", "staging", "--plan", str(path)).out == "staging: no history yet\n"
    record = history.HistoryRecord(
        "2026-01-01T00:00:00Z", "advance", None, 0, "first step", "ann", True
    )
    history.append(plan, "staging", record)
    lines = rollout("history", "staging", "--plan", str(path)).out.splitlines()
    assert lines[0].split() == ["time", "action", "from", "to", "verified", "user", "reason"]
    assert lines[1].split() == [
        "2026-01-01T00:00:00Z",
        "advance",
        "off",
        "0",
        "yes",
        "ann",
        "first",
        "step",
    ]
    out = json.loads(rollout("history", "staging", "--json", "--plan", str(path)).out)
    assert out == {
        "environment": "staging",
        "ok": True,
        "history": [
            {
                "time": "2026-01-01T00:00:00Z",
                "action": "advance",
                "from": "off",
                "to": 0,
                "reason": "first step",
                "user": "ann",
                "verified": True,
            }
        ],
        "torn_history_lines": [],
    }


@pytest.mark.parametrize(
    "args", [["plan"], ["plan", "production"], ["status"], ["history", "staging"]]
)
def test_shipped_plan_works_from_the_repo(args: list[str]) -> None:
    """Every inspect command accepts the shipped stages/plan.toml, run as the console script."""
    out = subprocess.run(
        [sys.executable, "-m", "rollout", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout


def test_status_shows_drift_after_a_policy_edit(
    write_plan: Callable[..., Path], rollout: Run
) -> None:
    """After an edit to [policy], status lists what the rolled-out file still sends."""
    path = write_plan()
    store.write_settings(load_plan(path), ladder.settings_for(load_plan(path), "staging", 1))
    path.write_text(
        path.read_text().replace('x-frame-options = "DENY"', 'x-frame-options = "SAMEORIGIN"')
    )
    result = rollout("status", "staging", "--json", "--plan", str(path))
    assert result.code == 0, result.err
    assert json.loads(result.out)["drift"] == [
        "app.x-frame-options: X-Frame-Options is DENY, the plan wants SAMEORIGIN"
    ]
    text = rollout("status", "staging", "--plan", str(path)).out
    assert "  drift app.x-frame-options: X-Frame-Options is DENY, the plan wants SAMEORIGIN" in text


def test_plan_says_what_unreached_defaults_did(
    write_plan: Callable[..., Path], rollout: Run
) -> None:
    """A short ramp is no refusal: `rollout plan` says CSP never enforces on it."""
    from tests.conftest import PLAN

    text = PLAN.replace(
        "[environments.staging]", "[ladder]\nhsts = [30, 3600]\n\n[environments.staging]"
    )
    path = write_plan(text)
    result = rollout("plan", "--plan", str(path))
    assert result.code == 0
    assert (
        "Note: csp-enforce-from is not set and its default (604800) is above the ramp's top "
        "(3600): CSP stays report-only at every stage; set it to enforce"
    ) in result.out.splitlines()


def test_history_shows_control_characters_instead_of_obeying_them(
    write_plan: Callable[..., Path], rollout: Run
) -> None:
    """A reason holding a newline or an escape sequence prints as one visible line."""
    path = write_plan()
    plan = load_plan(path)
    forged = "ok\n2026-01-01T00:00:00Z  advance  5  6  yes  root  \x1b[2Jforged"
    history.append(plan, "staging", history.new_record("verify", 0, 0, reason=forged))
    lines = rollout("history", "staging", "--plan", str(path)).out.splitlines()
    assert len(lines) == 2
    assert lines[1].endswith(
        "ok\\x0a2026-01-01T00:00:00Z  advance  5  6  yes  root  \\x1b[2Jforged"
    )
    assert "\x1b" not in lines[1]


def test_status_says_an_insecure_verify_is_not_counted(
    write_plan: Callable[..., Path], rollout: Run
) -> None:
    """After a verify made with --insecure passes, status says it was not counted."""
    path = write_plan()
    plan = load_plan(path)
    reason = f"all checks passed {history.NOT_COUNTED}"
    history.append(plan, "staging", history.new_record("verify", None, None, reason=reason))
    out = rollout("status", "staging", "--plan", str(path)).out.splitlines()
    assert (
        "  last verify: ! made without certificate checks, not counted at stage off, "
        in (
            out[2][
                : len(
                    "  last verify: ! made without certificate checks, not counted at stage off, "
                )
            ]
        )
    )


def test_history_names_the_torn_lines_it_skipped(
    write_plan: Callable[..., Path], rollout: Callable[..., Result]
) -> None:
    """A history whose only line was cut short by a crash (ending in a NUL, say) is not
    shown as "no history yet" alone: the skipped line is named, in text and JSON."""
    plan = write_plan()
    (plan.parent / "staging.history.jsonl").write_bytes(b'{"time": "2026-01-01T00:00:00Z\x00')
    text = rollout("history", "staging", "--plan", str(plan))
    assert text.code == 0, text
    assert text.out == (
        "staging: no readable history yet\n! torn line(s) 1 skipped (a crash mid-append)\n"
    )
    as_json = rollout("history", "staging", "--json", "--plan", str(plan))
    assert json.loads(as_json.out)["torn_history_lines"] == [1]
