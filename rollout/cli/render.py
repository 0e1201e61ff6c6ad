"""`rollout render`: a stage as configuration for nginx, Apache, Django, or as headers/JSON."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

import click

from rollout.cli import STAGE, Options, StageChoice, common_options, emit_json
from rollout.render import DJANGO_VERSIONS, FORMATS


@click.command("render")
@click.argument("env")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="headers",
    show_default=True,
    help="The layer to render for.",
)
@click.option("--stage", "stage", type=STAGE, help="Render this stage, not the current one.")
@click.option(
    "--django",
    "django",
    type=click.Choice([str(v) for v in DJANGO_VERSIONS]),
    default="6",
    show_default=True,
    help="Django major version: 5 sends CSP through rollout's middleware, 6 through SECURE_CSP.",
)
@click.option(
    "--output",
    "output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Replace FILE atomically; on any error the old FILE is left as it was.",
    metavar="FILE",
)
@common_options
def render(
    opts: Options,
    env: str,
    fmt: str,
    stage: StageChoice | None,
    django: str,
    output: Path | None,
) -> None:
    """Print ENV's stage as configuration for one layer, or write it to --output FILE.

    nginx and apache get the edge-owned headers (a snippet to include); django gets the
    app-owned ones (a settings module: end settings.py with `from .rollout_settings
    import *`); headers and json get
    all of them, marked with their owner. Without --stage, the environment's current
    stage (off when it has not started).

    Install with --output, never `> FILE`: the shell empties FILE before rollout runs, so
    a refusal would leave the live snippet empty and the next reload would drop HSTS.

    \b
    Example:
      rollout render production --format nginx --output /etc/nginx/snippets/rollout-headers.conf
      rollout render staging --format django --django 5 --output mysite/rollout_settings.py
      rollout render production --format headers --stage 3
    """
    from rollout import ladder, store
    from rollout.errors import PlanError, SettingsError
    from rollout.names import CSP, CSP_FAMILY, HSTS, stage_label
    from rollout.render import refusal, title
    from rollout.render import render as render_stage

    plan = opts.load_plan()
    environment = opts.environment(plan, env)  # refuses an unknown environment
    settings = None
    if stage is None:  # the current stage; a missing file is stage off
        settings = store.read_settings(plan, environment.name)
    if settings is None:
        settings = ladder.settings_for(plan, environment.name, stage.stage if stage else None)
    path = store.settings_path(plan, environment.name)
    refused = refusal(settings, fmt)
    if refused is not None:
        key, why = refused
        if stage is None and path.exists():  # a hand edit to the stage file
            raise SettingsError(f"{path}: {key}: {why}")
        name = key.partition(".")[2]  # else a plan value: name the plan's key
        plan_key = (
            "ladder.hsts" if name == HSTS else f"policy.{CSP if name in CSP_FAMILY else name}"
        )
        raise PlanError(f"{opts.plan_path}: {plan_key}: {why}")
    text = render_stage(settings, fmt, django=int(django), settings_path=path, output=output)
    if output is not None:
        write_atomic(output, text)
    if opts.json and fmt != "json":
        emit_json(
            {
                "environment": settings.environment,
                "stage": stage_label(settings.stage),
                "ok": True,
                "format": fmt,
                "text": text,
                "output": None if output is None else str(output),
            }
        )
        return
    if output is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"rollout: wrote {output}: {title(settings)}", err=True)


def write_atomic(path: Path, text: str) -> None:
    """Replace path with text: all of it or, on any error, the old file as it was.

    A temp file in path's folder is written in full and fsynced, then renamed over path,
    and the folder fsynced, so a reader (nginx reloading, a crash) sees the old file or
    the new one, never a part. A symlink at path is followed: its target is replaced, as
    `> FILE` would have written it. The new file keeps the old one's mode and owner.
    """
    from rollout.errors import InputError

    target = Path(os.path.realpath(path))
    folder = target.parent
    try:
        old: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise InputError(f"--output: {path}: {exc.strerror or exc}") from None
    if old is not None and not stat.S_ISREG(old.st_mode):
        raise InputError(f"--output: {path}: is not a regular file")
    if not folder.is_dir():
        raise InputError(f"--output: {path}: the folder {folder} does not exist")
    data = text.encode("utf-8")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"--output: {path}: cannot write in {folder}: {exc.strerror}") from None
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
            raise InputError(f"--output: {path}: cannot write: {exc.strerror or exc}") from None
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
                f"--output: {path}: written, but its folder could not be synced: {exc.strerror}"
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
