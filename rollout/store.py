"""Settings and history files: atomic replace under a per-environment lock, append-only log."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import tomli_w

from rollout import lockfile, settings, stagefile
from rollout.errors import SettingsError
from rollout.plan import Plan
from rollout.settings import StageSettings

LOCK_TIMEOUT = 30.0


def settings_path(plan: Plan, env: str) -> Path:
    """`stages/<env>.toml`, in the plan's folder."""
    return plan.folder / f"{env}.toml"


def history_path(plan: Plan, env: str) -> Path:
    """`stages/<env>.history.jsonl`, in the plan's folder."""
    return plan.folder / f"{env}.history.jsonl"


def lock_path(plan: Plan, env: str) -> Path:
    """`stages/<env>.lock`, in the plan's folder."""
    return plan.folder / f"{env}.lock"


now = lockfile.now


def parse_time(text: str) -> datetime | None:
    """A time rollout wrote, or None when text is not one."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read_settings(plan: Plan, env_name: str) -> StageSettings | None:
    """The environment's settings file checked against the plan; None when not written yet.

    The stage is recorded by name: if the ladder moved it, the number follows the name.
    See `rollout.stagefile` for what a file must hold to be accepted.
    """
    env = plan.environment(env_name)
    path = settings_path(plan, env.name)
    current = settings.load(path)
    return None if current is None else stagefile.check(plan, env, current, path)


drift = stagefile.drift


def write_settings(
    plan: Plan, new: StageSettings, *, lock_timeout: float = LOCK_TIMEOUT
) -> StageSettings:
    """Replace the settings file atomically under the environment's lock; returns what it wrote."""
    env = plan.environment(new.environment)
    path = settings_path(plan, env.name)
    written = dataclasses.replace(new, updated=new.updated or now())
    text = tomli_w.dumps(settings.dumps(written))
    # Never write what the readers would refuse.
    stagefile.check(plan, env, settings.loads(text, source=str(path)), path)
    with lock(plan, env.name, timeout=lock_timeout):
        try:
            _replace(path, text.encode())
        except OSError as exc:
            raise SettingsError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return written


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock(
    plan: Plan, env_name: str, *, timeout: float = LOCK_TIMEOUT
) -> AbstractContextManager[None]:
    """Hold the environment's lock; re-entrant within a thread; LockTimeout past timeout."""
    return lockfile.hold(lock_path(plan, env_name), env_name, timeout=timeout)


@dataclass(frozen=True)
class HistoryRecord:
    """One line of `stages/<env>.history.jsonl`: a transition, or a verify result."""

    time: str
    action: str
    from_: int | None
    to: int | None
    reason: str = ""
    user: str = ""
    verified: bool = False

    def to_json(self) -> dict[str, object]:
        """The record as written: stages are numbers or "off"."""
        return {
            "time": self.time,
            "action": self.action,
            "from": _label(self.from_),
            "to": _label(self.to),
            "reason": self.reason,
            "user": self.user,
            "verified": self.verified,
        }


def new_record(
    action: str,
    from_: int | None,
    to: int | None,
    *,
    reason: str = "",
    verified: bool = False,
) -> HistoryRecord:
    """A history record made now by the current user."""
    return HistoryRecord(now(), action, from_, to, reason, lockfile.user(), verified)


def append_history(plan: Plan, env_name: str, record: HistoryRecord) -> None:
    """Append one record to the environment's history (one write, O_APPEND, fsync)."""
    env = plan.environment(env_name)
    line = json.dumps(record.to_json(), ensure_ascii=False) + "\n"
    path = history_path(plan, env.name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot append: {exc.strerror or exc}") from None


def read_history(plan: Plan, env_name: str) -> list[HistoryRecord]:
    """Every record, oldest first; a torn last line (a crash mid-append) is skipped."""
    env = plan.environment(env_name)
    path = history_path(plan, env.name)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(_parse_record(line))
        except ValueError as exc:
            if number == len(lines):  # no newline after it: a torn append, not a bad line
                break
            raise SettingsError(f"{path}:{number}: {exc}") from None
    return records


def _parse_record(line: str) -> HistoryRecord:
    try:
        obj = json.loads(line)
    except ValueError:
        raise ValueError("not a JSON object; this file is written by rollout only") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object; this file is written by rollout only")
    for key, kind in (("time", str), ("action", str), ("reason", str), ("user", str)):
        if not isinstance(obj.get(key, ""), kind):
            raise ValueError(f"{key}: {obj.get(key)!r} is not a string")
    if not isinstance(obj.get("verified", False), bool):
        raise ValueError(f"verified: {obj.get('verified')!r} is not true or false")
    return HistoryRecord(
        time=obj.get("time", ""),
        action=obj.get("action", ""),
        from_=_stage(obj.get("from"), "from"),
        to=_stage(obj.get("to"), "to"),
        reason=obj.get("reason", ""),
        user=obj.get("user", ""),
        verified=obj.get("verified", False),
    )


def _stage(value: object, key: str) -> int | None:
    if value is None or value == settings.OFF:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f'{key}: {value!r} is not a stage number or "off"')
    return value


def _label(stage: int | None) -> int | str:
    return settings.OFF if stage is None else stage


def last_verify(records: list[HistoryRecord]) -> HistoryRecord | None:
    """The most recent verify result."""
    return next((r for r in reversed(records) if r.action == "verify"), None)


def last_transition(records: list[HistoryRecord]) -> HistoryRecord | None:
    """The most recent record that changed the stage (anything but a verify)."""
    return next((r for r in reversed(records) if r.action != "verify"), None)
