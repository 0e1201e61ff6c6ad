"""An environment's history, `stages/<env>.history.jsonl`: records, and what they tell.

One JSON object per line, appended and never rewritten. A transition (`advance`,
`rollback`, `revert`) is appended right after the stage file it describes was replaced,
and a `verify` record after each live check, so the last transition's `to` always names
the stage file's stage unless a command died between the two writes: `interrupted` tells.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rollout import lockfile, store
from rollout.errors import SettingsError
from rollout.names import MAX_STAGES, OFF, Stage, stage_label
from rollout.settings import LATEST_YEAR, past_latest

if TYPE_CHECKING:
    # Annotations only: `rollout status` reads a cached, validated plan without pydantic.
    from rollout.plan import Plan

# Ends the reason of a verify record made without certificate checks (never counted).
NOT_COUNTED = "without certificate checks; not counted as verified"

VERIFY = "verify"
ADVANCE = "advance"
ROLLBACK = "rollback"  # an advance that failed its live check, undone by itself
REVERT = "revert"
TRANSITIONS = frozenset({ADVANCE, ROLLBACK, REVERT})
ACTIONS = TRANSITIONS | {VERIFY}
_TIME = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class HistoryRecord:
    """One line of the history: a transition, or a verify result."""

    time: str
    action: str
    from_: Stage
    to: Stage
    reason: str = ""
    user: str = ""
    verified: bool = False
    # Until when some browsers may still enforce a longer max-age than the one now sent
    # (a revert that lowered max-age); "" when nothing was lowered.
    hsts_until: str = ""
    # What a failing `apply` command printed, kept for the post-mortem.
    apply_output: str = ""

    def to_json(self) -> dict[str, object]:
        """The record as written: stages are numbers or "off"; empty extras left out."""
        out: dict[str, object] = {
            "time": self.time,
            "action": self.action,
            "from": stage_label(self.from_),
            "to": stage_label(self.to),
            "reason": self.reason,
            "user": self.user,
            "verified": self.verified,
        }
        if self.hsts_until:
            out["hsts_until"] = self.hsts_until
        if self.apply_output:
            out["apply_output"] = self.apply_output
        return out


@dataclass(frozen=True)
class History:
    """Every readable record, oldest first, and the line numbers of torn ones skipped."""

    records: list[HistoryRecord] = field(default_factory=list)
    torn: list[int] = field(default_factory=list)


def format_time(when: datetime) -> str:
    """A time as rollout writes it: 2026-11-21T23:59:00Z."""
    return when.astimezone(UTC).strftime(_TIME)


def parse_time(text: str) -> datetime | None:
    """A time rollout wrote, or None when text is not one (nor one past LATEST_YEAR)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.year >= LATEST_YEAR:  # adding a soak or a max-age would overflow
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def new_record(
    action: str,
    from_: Stage,
    to: Stage,
    *,
    reason: str = "",
    verified: bool = False,
    hsts_until: str = "",
    apply_output: str = "",
) -> HistoryRecord:
    """A history record made now by the current user."""
    return HistoryRecord(
        lockfile.now(), action, from_, to, reason, lockfile.user(), verified, hsts_until,
        apply_output,
    )  # fmt: skip


def path(plan: Plan, env_name: str) -> Path:
    """`stages/<env>.history.jsonl`, in the plan's folder."""
    return plan.folder / f"{plan.environment(env_name).name}.history.jsonl"


def append(plan: Plan, env_name: str, record: HistoryRecord) -> None:
    """Append one record (one write, O_APPEND, fsync), on a fresh line, never via a symlink."""
    target = path(plan, env_name)
    line = (json.dumps(record.to_json(), ensure_ascii=False) + "\n").encode()
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(target, flags, 0o644)
    except OSError as exc:
        raise SettingsError(f"{target}: cannot append: {_why(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SettingsError(f"{target}: is not a regular file; rollout appends only to one")
        # A crash mid-append leaves a line without its newline: start after it, so that
        # one torn record never glues itself to the next.
        if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
        if not st.st_size:  # the first record: make the file's folder entry durable too
            store.fsync_folder(target.parent)
    except OSError as exc:
        raise SettingsError(f"{target}: cannot append: {_why(exc)}") from None
    finally:
        os.close(fd)


def load(plan: Plan, env_name: str) -> History:
    """Every record, oldest first; lines torn by a crash mid-append are skipped and counted."""
    source = path(plan, env_name)
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return History()
    except OSError as exc:
        raise SettingsError(f"{source}: cannot read: {_why(exc)}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SettingsError(f"{source}: is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            text = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise SettingsError(f"{source}: cannot read: {_why(exc)}") from None
    finally:
        os.close(fd)
    out = History()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            out.records.append(_parse(line))
        except _Torn:
            out.torn.append(number)
        except ValueError as exc:
            raise SettingsError(f"{source}:{number}: {exc}") from None
    return out


def read(plan: Plan, env_name: str) -> list[HistoryRecord]:
    """Every readable record, oldest first."""
    return load(plan, env_name).records


class _Torn(ValueError):
    """A record cut short: what a crash (or power loss) mid-append leaves."""


# Every record rollout writes starts so; a cut-short one is a prefix of such a line.
_RECORD_START = '{"time": "'


def _parse(line: str) -> HistoryRecord:
    try:
        obj = json.loads(line, object_pairs_hook=_no_repeats)
    except _Repeated as exc:
        raise ValueError(
            f"{exc}: repeated in one record; this file is written by rollout only"
        ) from None
    except RecursionError:
        raise ValueError("nested too deeply; this file is written by rollout only") from None
    except ValueError:
        start = line[: len(_RECORD_START)]
        if _RECORD_START.startswith(start) or line.startswith(_RECORD_START):
            raise _Torn(line) from None
        raise ValueError("not a JSON object; this file is written by rollout only") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object; this file is written by rollout only")
    keys = ("time", "action", "reason", "user", "hsts_until", "apply_output")
    for key in keys:
        if not isinstance(obj.get(key, ""), str):
            raise ValueError(f"{key}: {obj.get(key)!r} is not a string")
    if not isinstance(obj.get("verified", False), bool):
        raise ValueError(f"verified: {obj.get('verified')!r} is not true or false")
    action = obj.get("action", "")
    if action not in ACTIONS:
        known = ", ".join(sorted(ACTIONS))
        raise ValueError(
            f"action: {action!r} is not one of {known}; this file is written by rollout only"
        )
    if "time" not in obj or (parse_time(obj["time"]) is None and not past_latest(obj["time"])):
        raise ValueError(
            f"time: {obj.get('time')!r} is not a time like 2026-11-21T23:59:00Z; this file "
            "is written by rollout only"
        )
    for key in ("time", "hsts_until"):
        if past_latest(obj.get(key, "")):
            raise ValueError(
                f"{key}: {obj[key]!r} is past the year {LATEST_YEAR}; this file is written "
                "by rollout only"
            )
    return HistoryRecord(
        time=obj.get("time", ""),
        action=action,
        from_=_stage(obj.get("from"), "from"),
        to=_stage(obj.get("to"), "to"),
        reason=obj.get("reason", ""),
        user=obj.get("user", ""),
        verified=obj.get("verified", False),
        hsts_until=obj.get("hsts_until", ""),
        apply_output=obj.get("apply_output", ""),
    )


class _Repeated(ValueError):
    """A key given twice in one record: json.loads would keep the last one silently."""


def _no_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj: dict[str, object] = {}
    for key, value in pairs:
        if key in obj:
            raise _Repeated(key)
        obj[key] = value
    return obj


def _stage(value: object, key: str) -> Stage:
    if value is None or value == OFF:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_STAGES:
        shown = repr(value) if not isinstance(value, int) or value < 10**9 else "a huge number"
        raise ValueError(f'{key}: {shown} is not a stage number or "off"')
    return value


def _why(exc: OSError) -> str:
    # O_NOFOLLOW on a symlink fails with ELOOP and opening a socket with ENXIO: say what
    # the path is rather than the kernel's words for those.
    if exc.errno == errno.ELOOP:
        return "is a symbolic link; rollout reads and appends only to a regular file"
    if exc.errno == errno.ENXIO:
        return "is not a regular file (a socket?); rollout reads and appends only to one"
    return exc.strerror or str(exc)


# What the records tell -------------------------------------------------------------


def last_verify(records: Sequence[HistoryRecord]) -> HistoryRecord | None:
    """The most recent verify result."""
    return next((r for r in reversed(records) if r.action == VERIFY), None)


def last_transition(records: Sequence[HistoryRecord]) -> HistoryRecord | None:
    """The most recent record that changed the stage."""
    return next((r for r in reversed(records) if r.action in TRANSITIONS), None)


def verified(records: Sequence[HistoryRecord], stage: Stage) -> bool:
    """Whether the last check since the environment entered `stage` passed there."""
    for r in reversed(records):
        if r.action in TRANSITIONS:
            return r.verified and r.to == stage
        if r.action == VERIFY and r.to == stage:
            return r.verified
    return False


def reached(stage: Stage, records: Sequence[HistoryRecord]) -> Stage:
    """The highest stage an environment at `stage` has reached and verified (None: none)."""
    if stage is None:
        return None
    if verified(records, stage):
        return stage
    return stage - 1 if stage > 0 else None


def entered(records: Sequence[HistoryRecord], stage: Stage) -> datetime | None:
    """When the environment last moved to `stage`, if the history says so."""
    # A failed advance that rolled itself back left the stage only for its live check:
    # time there goes on counting from the transition before the pair.
    skip = 0
    for r in reversed(records):
        if r.action not in TRANSITIONS:
            continue
        if r.action == ROLLBACK:
            skip += 1
        elif skip:
            skip -= 1
        else:
            return parse_time(r.time) if r.to == stage else None
    return None


def last_verified_below(records: Sequence[HistoryRecord], current: Stage) -> Stage:
    """Revert's default target: the latest stage below `current` that verified (else off).

    Only stages below count: after a revert from 4 to 2, reverting again goes further
    down, never back up to 4.
    """
    if current is None:
        return None
    for r in reversed(records):
        if r.verified and r.to is not None and r.to < current:
            return r.to
    return None


def interrupted(records: Sequence[HistoryRecord], stage: Stage) -> str | None:
    """Why the history disagrees with a stage file at `stage`, or None when it agrees.

    A transition replaces the stage file, then appends its record; a command killed in
    between leaves the file one transition ahead of the history.
    """
    last = last_transition(records)
    if last is None:
        if stage is None:
            return None
        return f"the stage file says stage {stage} but the history records no transition"
    if last.to != stage:
        return (
            f"the stage file says stage {stage_label(stage)} but the last transition "
            f"recorded ({last.action} at {last.time}) went to {stage_label(last.to)}"
        )
    return None


def hsts_horizon(records: Sequence[HistoryRecord], now: datetime) -> datetime | None:
    """The latest rollback horizon still in the future: until then some browsers keep a
    longer max-age than the one sent now."""
    latest = None
    for r in records:
        when = parse_time(r.hsts_until) if r.hsts_until else None
        if when is not None and when > now and (latest is None or when > latest):
            latest = when
    return latest


def horizon_after(now: datetime, max_age: int) -> str:
    """The time until which a browser that saw `max-age` now keeps enforcing it."""
    return format_time(now + timedelta(seconds=max_age))
