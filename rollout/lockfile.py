"""The per-environment lock: a kernel lock (flock) on `<env>.lock`, and who holds it.

Why a kernel lock: the kernel itself releases a flock when its holder's last descriptor
closes, which includes the holder dying, even by SIGKILL. So there is no stale lock to
detect or break, no guessing from a pid and a host name (wrong across containers, whose pids
and host names are their own), and no window in which two contenders both "break" a lock
and both go on. Processes in different containers that share the stages folder exclude each
other as long as they share the kernel and the filesystem (a bind mount or a volume).
On NFS, flock is emulated with byte-range locks and is only as good as the server's lock
manager, so keep stages folders on local filesystems.

The lock file is never deleted: deleting it while one process holds it would let the next
one lock a new file at the same path while the first still holds the old one. It holds a
JSON record of the holder (pid, user, host, command, since), written after the lock is
taken and truncated away before it is released; the record only names the holder in
messages, the lock alone decides who may write.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import shlex
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from rollout.errors import LockTimeout, SettingsError

_POLL = 0.05
_RECORD_MAX = 64 * 1024  # a holder record is ~200 bytes; never read more than this
_TEXT_MAX = 200  # how much of one record field a message shows

_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # no symlink, no FIFO hang, no leak

# lock path -> (thread id, depth, fd): re-entrant in-process; one fd per path, held by the
# owning thread. Another thread opens its own fd (a new open file description), so flock
# makes it wait like another process would.
_held: dict[Path, tuple[int, int, int]] = {}
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
    """Hold the environment's lock; re-entrant within a thread; LockTimeout past timeout."""
    path = path.absolute()
    me = threading.get_ident()
    with _held_guard:
        owner, depth, fd = _held.get(path, (0, 0, -1))
        if owner == me:
            _held[path] = (me, depth + 1, fd)
            reentered = True
        else:
            reentered = False
    if not reentered:
        fd = _acquire(path, env_name, timeout)
        with _held_guard:
            _held[path] = (me, 1, fd)
    try:
        yield
    finally:
        with _held_guard:
            owner, depth, fd = _held[path]
            if depth > 1:
                _held[path] = (owner, depth - 1, fd)
            else:
                # Forget it before unlocking, so a thread that gets in next finds no entry.
                del _held[path]
        if depth == 1:
            _release(fd)


def holder(path: Path) -> dict[str, object] | None:
    """Who holds the lock right now: their record ({} if unreadable), or None if it is free.

    Never creates the lock file; a missing one is free. Refuses a FIFO or a symlink.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _open_error(path, exc) from None
    try:
        _check_regular(path, fd)
        try:
            # A shared probe: it fails only against an exclusive holder, and two probes
            # (two `rollout status` at once) never mistake each other for one.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_record(fd)
        except OSError as exc:
            raise SettingsError(f"{path}: cannot lock: {exc.strerror or exc}") from None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _record() -> bytes:
    argv = sys.argv or [""]
    command = shlex.join([os.path.basename(argv[0]), *argv[1:]])
    return json.dumps(
        {
            "pid": os.getpid(),
            "user": user(),
            "host": socket.gethostname(),
            "command": command,
            "since": now(),
        }
    ).encode()


def _open(path: Path) -> int:
    """The lock file opened for locking, created (0o644) if missing; refuses non-regular files."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _FLAGS, 0o644)
    except PermissionError as exc:
        # Another user's 0o644 lock file: flock needs no write access, only the record does.
        try:
            fd = os.open(path, os.O_RDONLY | _FLAGS)
        except OSError:
            raise _open_error(path, exc) from None
    except OSError as exc:
        raise _open_error(path, exc) from None
    try:
        _check_regular(path, fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_error(path: Path, exc: OSError) -> SettingsError:
    with contextlib.suppress(OSError):
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            return SettingsError(f"{path}: is a symlink, not a lock file")
        if not stat.S_ISREG(mode):
            return SettingsError(f"{path}: is not a regular file, not a lock file")
    return SettingsError(f"{path}: cannot open the lock: {exc.strerror or exc}")


def _check_regular(path: Path, fd: int) -> None:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise SettingsError(f"{path}: is not a regular file, not a lock file")


def _acquire(path: Path, env_name: str, timeout: float) -> int:
    """Poll flock until it is ours or the timeout passes; returns the locked fd."""
    fd = _open(path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            except OSError as exc:  # ENOLCK: a filesystem without locks; waiting won't help
                raise SettingsError(f"{path}: cannot lock: {exc.strerror or exc}") from None
            else:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeout(
                    f"{env_name}: another command holds the lock: "
                    f"{_describe(_read_record(fd))}; gave up after {timeout:g}s "
                    f"(lock file {path})"
                )
            time.sleep(min(_POLL, left))
        # The record only names us in others' messages: a full disk must not stop the write.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, _record(), 0)
    except BaseException:
        os.close(fd)  # closing releases the lock if we got it
        raise
    return fd


def _release(fd: int) -> None:
    try:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no record outlives its holder
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_record(fd: int) -> dict[str, object]:
    try:
        raw = os.pread(fd, _RECORD_MAX, 0)
        record = json.loads(raw)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _describe(record: dict[str, object]) -> str:
    """`pid 123 (alice@host) running `rollout advance staging` since T`, as far as known."""
    pid, name, host, command, since = (
        _text(record.get(key)) for key in ("pid", "user", "host", "command", "since")
    )
    parts = []
    if pid:
        parts.append(f"pid {pid}")
    if name or host:
        parts.append(f"({'@'.join(p for p in (name, host) if p)})")
    if command:
        parts.append(f"running `{command}`")
    if since:
        parts.append(f"since {since}")
    return " ".join(parts) or "an unknown holder"


def _text(value: object) -> str:
    """A record field as one short printable line (the file is anyone's to write)."""
    if value is None or value == "":
        return ""
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(value))
    return text if len(text) <= _TEXT_MAX else text[: _TEXT_MAX - 1] + "…"
