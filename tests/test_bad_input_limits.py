"""Bad input at the limits: deep nesting, huge numbers, non-ASCII digits, far-off times.

Each of these once ended in a traceback (RecursionError, ValueError, OverflowError) or was
silently accepted; each is now one line naming the file and key, exit 2, nothing written.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rollout import ladder, store
from rollout.plan import load_plan
from tests.conftest import Result
from tests.test_bad_input import AT0, E, P, env, lad, refused, snapshot

DEEP = "[" * 50_000 + "]" * 50_000
BIG = "9" * 5_000
RAMP_65 = "hsts = [" + ", ".join(str(30 + i) for i in range(65)) + "]"


BAD_PLANS = [
    pytest.param(
        P + E + f"deep = {DEEP}\n",
        ":6: environments.staging.deep: arrays or tables nested too deeply",
        id="plan-deep-nesting",
    ),
    pytest.param(
        env('soak = "999999999w"'),
        ": environments.staging.soak: '999999999w' is longer than 10y, the longest soak",
        id="soak-huge",
    ),
    pytest.param(
        env('soak = "3651d"'),
        ": environments.staging.soak: '3651d' is longer than 10y, the longest soak",
        id="soak-just-past-10y",
    ),
    pytest.param(
        env('soak = "١h"'),
        ": environments.staging.soak: '١h' is not a duration like 30s, 15m, 24h, 7d, 1y or "
        '"max-age"',
        id="soak-arabic-indic-digit",
    ),
    pytest.param(
        env('soak = "²m"'),
        ": environments.staging.soak: '²m' is not a duration like 30s, 15m, 24h, 7d, 1y or "
        '"max-age"',
        id="soak-superscript-digit",
    ),
    pytest.param(
        lad("hsts = [1000000000000]"),
        ": ladder.hsts[0]: 1000000000000 is above 10000000000 seconds; browsers keep at most "
        "31536000 (1y), so end the ramp there",
        id="hsts-huge",
    ),
    pytest.param(
        lad("hsts = [30, 10000000001]"),
        ": ladder.hsts[1]: 10000000001 is above 10000000000 seconds; browsers keep at most "
        "31536000 (1y), so end the ramp there",
        id="hsts-just-past-the-bound",
    ),
    pytest.param(
        lad(RAMP_65), ": ladder.hsts: 65 max-ages; a ramp holds at most 64", id="ramp-too-long"
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_PLANS)
def test_plan_at_the_limits_is_refused(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], text: str, message: str
) -> None:
    """A plan nested 50,000 deep, a soak or max-age past its bound, or non-ASCII digits: one
    line naming the file and key, exit 2, nothing written."""
    plan = write_plan(text)
    before = snapshot(plan.parent)
    refused(rollout("status", "--plan", str(plan)), f"{plan}{message}")
    assert snapshot(plan.parent) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(env('soak = "10y"'), id="soak-10y"),
        pytest.param(env('soak = "520w"'), id="soak-520w"),
        pytest.param(lad("hsts = [30, 10000000000]\ncsp-enforce-from = 30"), id="hsts-bound"),
        pytest.param(lad(RAMP_65.replace(", 94]", "]") + "\ncsp-enforce-from = 30"), id="ramp-64"),
    ],
)
def test_values_at_the_bound_are_accepted(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], body: str
) -> None:
    """The bounds themselves are allowed: a 10-year soak, max-age=10**10, 64 max-ages."""
    result = rollout("plan", "--plan", str(write_plan(body)))
    assert (result.code, result.err) == (0, "")


STAGE_99 = 'environment = "staging"\nstage = 99\nname = "hsts-30s"\n'
HSTS_30 = '[app]\n"strict-transport-security" = "max-age=30"\n'
BY_HAND = "this file is written by rollout, not by hand"

BAD_SETTINGS = [
    pytest.param(
        AT0 + f"deep = {DEEP}\n",
        "deep: arrays or tables nested too deeply (line 4)",
        id="settings-deep-nesting",
    ),
    pytest.param(
        AT0 + f'[app]\n"x-frame-options" = {DEEP}\n',
        'app."x-frame-options": arrays or tables nested too deeply (line 5)',
        id="settings-deep-nesting-in-a-table",
    ),
    pytest.param(
        STAGE_99 + HSTS_30,
        f"stage: 99 is no ladder's stage (a ladder has at most 65); {BY_HAND}",
        id="stage-99-named-hsts-30s",
    ),
    pytest.param(
        STAGE_99.replace("99", str(2**70)) + HSTS_30,
        f"stage: a 22-digit number is no ladder's stage (a ladder has at most 65); {BY_HAND}",
        id="stage-2**70",
    ),
    pytest.param(
        AT0.replace('name = "hsts-30s"\n', 'name = "hsts-30s"\nupdated = "9999-12-31T23:59:59Z"\n')
        + HSTS_30,
        f"updated: '9999-12-31T23:59:59Z' is past the year 9000; {BY_HAND}",
        id="updated-year-9999",
    ),
]


@pytest.mark.parametrize(("content", "message"), BAD_SETTINGS)
def test_stage_file_at_the_limits_is_refused(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], content: str, message: str
) -> None:
    """A stage file nested 50,000 deep, at stage 99 (or 2**70) under stage 0's name, or
    updated in year 9999: one line naming the file and key, exit 2, nothing written."""
    plan = write_plan()
    settings = plan.parent / "staging.toml"
    settings.write_text(content)
    before = snapshot(plan.parent)
    refused(rollout("status", "staging", "--plan", str(plan)), f"{settings}: {message}")
    assert snapshot(plan.parent) == before


def record(**fields: object) -> str:
    """One history line as rollout writes it, with these fields replaced."""
    base: dict[str, object] = {
        "time": "2026-01-01T00:00:00Z",
        "action": "advance",
        "from": "off",
        "to": 0,
        "reason": "",
        "user": "u",
        "verified": True,
    }
    return json.dumps({**base, **fields})


BAD_HISTORY = [
    pytest.param(
        '{"time": "2026-01-01T00:00:00Z", "x": ' + DEEP + "}",
        "1: nested too deeply; this file is written by rollout only",
        id="history-deep-nesting",
    ),
    pytest.param(
        record(time="9999-12-31T23:59:59Z"),
        "1: time: '9999-12-31T23:59:59Z' is past the year 9000; this file is written by "
        "rollout only",
        id="history-year-9999",
    ),
    pytest.param(
        record(hsts_until="9999-12-31T23:59:59Z"),
        "1: hsts_until: '9999-12-31T23:59:59Z' is past the year 9000; this file is written by "
        "rollout only",
        id="history-horizon-year-9999",
    ),
    pytest.param(
        record(to=2**70),
        '1: to: a huge number is not a stage number or "off"',
        id="history-stage-2**70",
    ),
]


@pytest.mark.parametrize("command", ["status", "history"])
@pytest.mark.parametrize(("line", "message"), BAD_HISTORY)
def test_history_at_the_limits_is_refused(
    write_plan: Callable[..., Path],
    rollout: Callable[..., Result],
    command: str,
    line: str,
    message: str,
) -> None:
    """A history line nested 50,000 deep, dated in year 9999 or at stage 2**70: one line
    naming the file and line, exit 2, nothing written."""
    plan = write_plan()
    store.write_settings(load_plan(plan), ladder.settings_for(load_plan(plan), "staging", 0))
    history = plan.parent / "staging.history.jsonl"
    history.write_text(line + "\n")
    before = snapshot(plan.parent)
    refused(rollout(command, "staging", "--plan", str(plan)), f"{history}:{message}")
    assert snapshot(plan.parent) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["verify", "staging", "--stage", "²"],
            "--stage: '²' is not a stage number or \"off\"",
            id="superscript-two",
        ),
        pytest.param(
            ["verify", "staging", "--stage", "٣"],
            "--stage: '٣' is not a stage number or \"off\"",
            id="arabic-indic-three",
        ),
        pytest.param(
            ["verify", "staging", "--stage", BIG],
            "--stage: there is no stage 999999999… (5000 digits); a ladder has at most 65 stages",
            id="5000-digits",
        ),
        pytest.param(
            ["render", "staging", "--format", "headers", "--stage", "0" * 20 + BIG],
            "--stage: there is no stage 999999999… (5000 digits); a ladder has at most 65 stages",
            id="5000-digits-zero-padded",
        ),
        pytest.param(
            ["revert", "staging", "--dry-run", "--to", "٣"],
            "--to: '٣' is not a stage number or \"off\"",
            id="revert-to-arabic-indic",
        ),
    ],
)
def test_stage_flag_at_the_limits_is_refused(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], args: list[str], message: str
) -> None:
    """Non-ASCII digits and 5,000-digit numbers after --stage or --to: one line, exit 2."""
    plan = write_plan()
    before = snapshot(plan.parent)
    refused(rollout(*args, "--plan", str(plan)), message)
    assert snapshot(plan.parent) == before


def test_stage_follows_its_name_when_the_ladder_shrinks(
    write_plan: Callable[..., Path],
) -> None:
    """A number the new ladder lacks (5, on a 4-stage ladder) still follows its name: only
    one no ladder can have (65 and up) is taken for a hand edit."""
    plan = load_plan(write_plan())
    store.write_settings(plan, ladder.settings_for(plan, "staging", 5))
    text = plan.path.read_text().replace(
        "[environments.staging]",
        "[ladder]\nhsts = [30, 86400, 2592000, 31536000]\ncsp-enforce-from = 86400\n\n"
        "[environments.staging]",
    )
    current = store.read_settings(load_plan(write_plan(text)), "staging")
    assert current is not None
    assert (current.stage, current.name) == (2, "hsts-30d")


@pytest.fixture
def held_by_pid_2_70(write_plan: Callable[..., Path]) -> Iterator[Path]:
    """The plan, with staging's lock held by a record claiming pid 2**70."""
    plan = write_plan()
    fd = os.open(plan.parent / "staging.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"pid": 2**70, "user": "u", "host": "h", "command": "x"}).encode())
    try:
        yield plan
    finally:
        os.close(fd)


def test_status_names_a_holder_with_a_huge_pid(
    held_by_pid_2_70: Path, rollout: Callable[..., Result]
) -> None:
    """A lock record with pid 2**70 is shown as written, never a crash."""
    result = rollout("status", "staging", "--plan", str(held_by_pid_2_70))
    assert result.code == 0, result.err
    assert f"in progress: pid {2**70} running x" in result.out


def test_lock_timeout_names_a_holder_with_a_huge_pid(
    held_by_pid_2_70: Path, rollout: Callable[..., Result]
) -> None:
    """Giving up on a lock held under pid 2**70 is the usual one line, exit 1."""
    lock = held_by_pid_2_70.parent / "staging.lock"
    result = rollout("advance", "staging", "--lock-timeout", "0", "--plan", str(held_by_pid_2_70))
    assert result.code == 1
    assert result.err == (
        f"rollout: staging: another command holds the lock: pid {2**70} (u@h) running `x`; "
        f"gave up after 0s (lock file {lock})\n"
    )
    assert "Traceback" not in result.out + result.err
