"""Stage files: checked, then replaced atomically under the environment's lock."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import secrets
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import tomli_w

from rollout import lockfile, settings, stagefile
from rollout.errors import SettingsError
from rollout.settings import StageSettings

if TYPE_CHECKING:
    # Annotations only: `rollout status` reads a cached, validated plan without pydantic.
    from rollout.plan import Plan

LOCK_TIMEOUT = 30.0


def settings_path(plan: Plan, env: str) -> Path:
    """`stages/<env>.toml`, in the plan's folder."""
    return plan.folder / f"{env}.toml"


def lock_path(plan: Plan, env: str) -> Path:
    """`stages/<env>.lock`, in the plan's folder."""
    return plan.folder / f"{env}.lock"


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
    written = dataclasses.replace(new, updated=new.updated or lockfile.now())
    text = tomli_w.dumps(settings.dumps(written))
    # Never write what the readers would refuse.
    stagefile.check(plan, env, settings.loads(text, source=str(path)), path)
    with lock(plan, env.name, timeout=lock_timeout):
        _sweep(path)
        try:
            _replace(path, text.encode())
        except OSError as exc:
            raise SettingsError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return written


def _replace(path: Path, data: bytes) -> None:
    # An unpredictable name, created exclusively: a symlink or file planted in the folder
    # can never be the temp file, so its target is never written.
    fd, tmp = _create_temp(path)
    try:
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked (a signal, a full pipe)
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_folder(path.parent)


def _sweep(path: Path) -> None:
    """Remove temp files a writer killed mid-replace left beside path (SIGKILL skips every
    cleanup). Only a lock holder writes them, and the caller holds the lock."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()  # a planted symlink goes too; its target is never touched


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new temp file beside path, 0o644 less the umask (readable by the app, as the
    stage file must be); tempfile.mkstemp would make it 0o600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, flags, 0o644), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path.parent))


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in folder durable: the entry is on disk only then."""
    fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock(
    plan: Plan, env_name: str, *, timeout: float = LOCK_TIMEOUT
) -> AbstractContextManager[None]:
    """Hold the environment's lock; re-entrant within a thread; LockTimeout past timeout."""
    return lockfile.hold(lock_path(plan, env_name), env_name, timeout=timeout)
