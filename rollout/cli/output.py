"""`--output FILE` and `--junit FILE`: a command's document written atomically.

One implementation for every command that prints a document (plan, status, history,
verify, advance, revert, render): the old file stays as it was on any error, so a
reload, a CI step or a reader never sees a half-written or emptied file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path


def check(path: Path, *, flag: str = "--output") -> tuple[Path, os.stat_result | None]:
    """Refuse, before any work, a FILE that could not be replaced: a FIFO, a device or a
    folder at it, or a folder that does not exist. Returns the real target and its stat."""
    from rollout.errors import InputError

    target = Path(os.path.realpath(path))
    try:
        old: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise InputError(f"{flag}: {path}: {exc.strerror or exc}") from None
    if old is not None and not stat.S_ISREG(old.st_mode):
        raise InputError(f"{flag}: {path}: is not a regular file")
    if not target.parent.is_dir():
        raise InputError(f"{flag}: {path}: the folder {target.parent} does not exist")
    return target, old


def replace(path: Path, text: str, *, flag: str = "--output") -> None:
    """Replace path with text: all of it or, on any error, the old file as it was.

    A temp file in path's folder is written in full and fsynced, then renamed over path,
    and the folder fsynced, so a reader (nginx reloading, a crash) sees the old file or
    the new one, never a part. A symlink at path is followed: its target is replaced, as
    `> FILE` would have written it. The new file keeps the old one's mode and owner.
    """
    from rollout.errors import InputError

    target, old = check(path, flag=flag)
    folder = target.parent
    data = text.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"{flag}: {path}: cannot write in {folder}: {exc.strerror}") from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            _keep_mode_and_owner(fd, old)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as exc:  # the old file stays; the temp file goes, even on ^C
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(f"{flag}: {path}: cannot write: {exc.strerror or exc}") from None
        raise
    try:
        dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # folders some filesystems can't sync
            raise InputError(
                f"{flag}: {path}: written, but its folder could not be synced: {exc.strerror}"
            ) from None


def _keep_mode_and_owner(fd: int, old: os.stat_result | None) -> None:
    if old is None:  # what `> FILE` would have created: 0666 less the umask
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        return
    os.fchmod(fd, stat.S_IMODE(old.st_mode))
    if (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(PermissionError):  # as a non-root user, the owner is us
            os.fchown(fd, old.st_uid, old.st_gid)
