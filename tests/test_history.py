"""What the history tells: verified, reached, when a stage began, revert's target, crashes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rollout import history
from rollout.errors import SettingsError
from rollout.history import HistoryRecord
from rollout.plan import Plan, load_plan


def rec(
    action: str, from_: int | None, to: int | None, ok: bool = False, t: int = 0
) -> HistoryRecord:
    return HistoryRecord(f"2026-01-01T00:{t:02d}:00Z", action, from_, to, verified=ok)


CLIMB = [
    rec("verify", None, None, True, 0),
    rec("advance", None, 0, t=1),
    rec("verify", 0, 0, True, 2),
    rec("advance", 0, 1, t=3),
    rec("verify", 1, 1, True, 4),
    rec("advance", 1, 2, t=5),
    rec("verify", 2, 2, False, 6),
]


def test_verified_is_the_last_check_since_entering_the_stage() -> None:
    """A stage counts as verified only by a passing check after the move into it."""
    assert history.verified(CLIMB[:5], 1) is True
    assert history.verified(CLIMB, 2) is False
    assert history.verified(CLIMB[:6], 2) is False  # moved, not checked yet
    assert history.verified(CLIMB[:5], 0) is False  # verified once, but no longer there


def test_reached_is_the_highest_verified_stage() -> None:
    """An unverified current stage means the one below it is the highest reached."""
    assert history.reached(2, CLIMB) == 1
    assert history.reached(1, CLIMB[:5]) == 1
    assert history.reached(0, CLIMB[:2]) is None
    assert history.reached(None, CLIMB) is None


def test_revert_target_is_the_latest_verified_stage_below() -> None:
    """Revert goes to the latest stage below the current one that verified; never back up."""
    assert history.last_verified_below(CLIMB, 2) == 1
    after_revert = [*CLIMB, rec("revert", 2, 1, t=7), rec("verify", 1, 1, True, 8)]
    assert history.last_verified_below(after_revert, 1) == 0
    assert history.last_verified_below(CLIMB[:3], 0) is None
    assert history.last_verified_below(CLIMB, None) is None


def test_entered_skips_a_rollback_pair() -> None:
    """A failed advance that rolled back does not restart the old stage's soak."""
    log = [*CLIMB[:5], rec("advance", 1, 2, t=5), rec("rollback", 2, 1, t=6)]
    assert history.entered(log, 1) == datetime(2026, 1, 1, 0, 3, tzinfo=UTC)
    assert history.entered(CLIMB, 2) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert history.entered(CLIMB, 1) is None


def test_interrupted_names_a_file_ahead_of_its_history() -> None:
    """A stage file one transition ahead of the history is reported, agreeing ones are not."""
    assert history.interrupted(CLIMB, 2) is None
    assert history.interrupted(CLIMB, 3) == (
        "the stage file says stage 3 but the last transition recorded "
        "(advance at 2026-01-01T00:05:00Z) went to 2"
    )
    assert history.interrupted([], None) is None
    assert history.interrupted([], 0) == (
        "the stage file says stage 0 but the history records no transition"
    )


def test_hsts_horizon_is_the_latest_future_one() -> None:
    """The rollback horizon is the latest recorded time still ahead."""
    now = datetime(2026, 6, 1, tzinfo=UTC)
    log = [
        HistoryRecord("t", "revert", 3, 2, hsts_until="2026-06-02T00:00:00Z"),
        HistoryRecord("t", "revert", 2, 1, hsts_until="2026-05-01T00:00:00Z"),
    ]
    assert history.hsts_horizon(log, now) == datetime(2026, 6, 2, tzinfo=UTC)
    assert history.hsts_horizon(log, datetime(2026, 7, 1, tzinfo=UTC)) is None
    assert history.horizon_after(now, 86400) == "2026-06-02T00:00:00Z"


@pytest.fixture
def plan(write_plan: Callable[..., Path]) -> Plan:
    return load_plan(write_plan())


def test_a_torn_record_is_skipped_and_the_next_append_starts_a_new_line(plan: Plan) -> None:
    """A record cut short by a crash is skipped and counted; the next one lands on its own line."""
    path = history.path(plan, "staging")
    path.write_text(
        '{"time": "2026-01-01T00:00:00Z", "action": "verify", "from": 0, "to": 0}\n'
        '{"time": "2026-01-0'
    )
    history.append(plan, "staging", history.new_record("advance", 0, 1))
    log = history.load(plan, "staging")
    assert [r.action for r in log.records] == ["verify", "advance"]
    assert log.torn == [2]
    assert path.read_text().splitlines()[1] == '{"time": "2026-01-0'


def test_a_line_rollout_never_wrote_is_refused(plan: Plan) -> None:
    """Anything else that is not JSON is refused, naming the file and line."""
    path = history.path(plan, "staging")
    path.write_text("hello\n")
    with pytest.raises(SettingsError, match=r"staging\.history\.jsonl:1: not a JSON object"):
        history.load(plan, "staging")


T0 = '"time": "2026-01-01T00:00:00Z"'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param(
            "{" + T0 + ', "action": "explode", "from": 0, "to": 0}',
            "action: 'explode' is not one of advance, revert, rollback, verify",
            id="unknown-action",
        ),
        pytest.param(
            '{"time": "yesterday", "action": "verify", "from": 0, "to": 0}',
            "time: 'yesterday' is not a time like 2026-11-21T23:59:00Z",
            id="time-not-a-time",
        ),
        pytest.param(
            '{"action": "verify", "from": 0, "to": 0}',
            "time: None is not a time like 2026-11-21T23:59:00Z",
            id="time-missing",
        ),
        pytest.param(
            "{" + T0 + ', "action": "verify", "from": 0, "to": 0, "to": 5}',
            "to: repeated in one record",
            id="repeated-key",
        ),
    ],
)
def test_a_record_rollout_never_writes_is_refused(plan: Plan, line: str, message: str) -> None:
    """A well-formed JSON line that rollout could not have written (an action it has no
    word for, no time or a time that is none, a key given twice) is refused by line."""
    history.path(plan, "staging").write_text(line + "\n")
    with pytest.raises(SettingsError) as caught:
        history.load(plan, "staging")
    assert str(caught.value).startswith(f"{history.path(plan, 'staging')}:1: {message}")


def test_a_symlinked_history_is_named_as_one(plan: Plan, tmp_path: Path) -> None:
    """Reading through a planted symlink is refused with words about the symlink, not the
    kernel's "Too many levels of symbolic links"."""
    victim = tmp_path / "victim"
    victim.write_text("")
    history.path(plan, "staging").symlink_to(victim)
    with pytest.raises(SettingsError, match=r"cannot read: is a symbolic link; rollout reads"):
        history.load(plan, "staging")


def test_append_refuses_a_symlink(plan: Plan, tmp_path: Path) -> None:
    """A symlink planted at the history path is refused; its target is left untouched."""
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    history.path(plan, "staging").symlink_to(victim)
    with pytest.raises(SettingsError, match=r"cannot append"):
        history.append(plan, "staging", history.new_record("verify", 0, 0))
    assert victim.read_text() == "keep\n"


def test_extras_round_trip(plan: Plan) -> None:
    """The rollback horizon and a failing apply's output are written and read back."""
    record = history.new_record("revert", 3, 1, hsts_until="2027-01-01T00:00:00Z", apply_output="x")
    history.append(plan, "staging", record)
    assert history.read(plan, "staging") == [record]
