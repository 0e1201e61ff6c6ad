"""A lock file per environment: who holds it, how long to wait, when a holder is stale.

The file is created with O_EXCL and holds the holder's pid, user, host and since-time, so
a waiting command can name who it waits for, and a crashed holder on this host (dead pid)
is taken over instead of blocking every later command.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollout.errors import LockTimeout, SettingsError

# A lock file left empty or garbled (a crash between create and write) counts as stale
# once it is this old; a live holder writes its record within microseconds.
_GARBLED_GRACE = 10.0
_POLL = 0.05

_held: dict[Path, tuple[int, int]] = {}  # lock path -> (thread id, depth): re-entrant in-process
_held_guard = threading.Lock()


def now() -> str:
    """The current UTC time as rollout writes it: 2026-11-21T23:59:00Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user() -> str:
    """The user name recorded in locks and history."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@contextlib.contextmanager
def hold(path: Path, env_name: str, *, timeout: float) -> Iterator[None]:
    """Hold the environment's lock file; re-entrant within a thread; LockTimeout past timeout."""
    path = path.absolute()
    me = threading.get_ident()
    with _held_guard:
        owner, depth = _held.get(path, (0, 0))
        if owner == me:
            _held[path] = (me, depth + 1)
            reentered = True
        else:
            reentered = False
    if not reentered:
        _acquire(path, env_name, timeout)
        with _held_guard:
            _held[path] = (me, 1)
    try:
        yield
    finally:
        with _held_guard:
            owner, depth = _held[path]
            if depth > 1:
                _held[path] = (owner, depth - 1)
            else:
                del _held[path]
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _record() -> bytes:
    return json.dumps(
        {"pid": os.getpid(), "user": user(), "host": socket.gethostname(), "since": now()}
    ).encode()


def _acquire(path: Path, env_name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        except OSError as exc:  # a read-only or missing folder: waiting would not help
            raise SettingsError(f"{path}: cannot create the lock: {exc.strerror or exc}") from None
        else:
            try:
                os.write(fd, _record())
                os.fsync(fd)
            except OSError as exc:  # a full disk: leave no empty lock behind
                os.close(fd)
                with contextlib.suppress(OSError):
                    path.unlink()
                raise SettingsError(
                    f"{path}: cannot write the lock: {exc.strerror or exc}"
                ) from None
            os.close(fd)
            return
        holder, raw = _holder(path)
        if raw is not None and _stale(path, holder):
            _break(path, raw)
            continue
        if time.monotonic() >= deadline:
            who = (
                f"pid {holder.get('pid')} ({holder.get('user')}@{holder.get('host')}) "
                f"since {holder.get('since')}"
                if holder
                else "an unreadable lock record"
            )
            raise LockTimeout(
                f"{env_name}: locked by {who}; gave up after {timeout:g}s "
                f"(lock file {path}; remove it only if that process is gone)"
            )
        time.sleep(_POLL)


def _holder(path: Path) -> tuple[dict[str, Any], bytes | None]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}, None
    try:
        holder = json.loads(raw)
    except ValueError:
        return {}, raw
    return (holder if isinstance(holder, dict) else {}), raw


def _stale(path: Path, holder: Mapping[str, Any]) -> bool:
    pid = holder.get("pid")
    if not holder or not isinstance(pid, int):
        try:
            return time.time() - path.stat().st_mtime > _GARBLED_GRACE
        except FileNotFoundError:
            return False
    if holder.get("host") != socket.gethostname():
        return False  # another machine's process: we cannot tell, so wait
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _break(path: Path, raw: bytes) -> None:
    """Take a stale lock away, unless someone else already replaced it with a live one."""
    aside = path.with_name(f"{path.name}.stale.{os.getpid()}.{threading.get_ident()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if aside.read_bytes() != raw:
        # We moved a fresh lock, not the stale one: put it back if its place is free.
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink()
