"""Stage files: checked, then replaced atomically under the environment's lock."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from contextlib import AbstractContextManager
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
