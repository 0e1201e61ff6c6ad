"""Planted files: FIFOs at every path rollout reads, symlinks at its temp file's names.

A FIFO once hung `rollout status` and every request through the middleware (open() waits
for a writer); a symlink at the old predictable temp name had its target overwritten.
Each test here is bounded, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import tomli_w

from rollout import history, ladder, lockfile, settings, store
from rollout.errors import InputError, SettingsError
from rollout.middleware.asgi import SecurityHeaders
from rollout.plan import Plan, load_plan

T = TypeVar("T")
BOUND = 20  # seconds: every hang these tests look for would be forever


def rollout_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m rollout ARGS` in a subprocess that may not outlive BOUND seconds."""
    return subprocess.run(
        [sys.executable, "-m", "rollout", *args],
        capture_output=True,
        text=True,
        timeout=BOUND,
        cwd=cwd,
    )


def release(*fifos: Path) -> None:
    """Unblock whatever waits to read these FIFOs: a writer comes and goes at once."""
    for fifo in fifos:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def bounded(fn: Callable[[], T], *fifos: Path) -> T:
    """fn() run in a thread; a failure, not a hang, if it takes more than BOUND seconds."""
    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    if thread.is_alive():
        release(*fifos)
        thread.join(BOUND)
        pytest.fail(f"still blocked after {BOUND}s")
    if errors:
        raise errors[0]
    return out[0]


@pytest.fixture
def plan(write_plan: Callable[..., Path]) -> Plan:
    return load_plan(write_plan())


def fifo_at(path: Path) -> Path:
    """Replace path by a FIFO, as `mkfifo` over a deployed file would."""
    tmp = path.with_name(path.name + ".fifo")
    os.mkfifo(tmp)
    os.replace(tmp, path)
    return path


# Item 1: nothing that is not a regular file may block a reader ------------------------


def test_status_refuses_a_fifo_plan(stages: Path) -> None:
    """`rollout status` on a FIFO plan exits 2 at once with one line."""
    plan = fifo_at(stages / "plan.toml")
    result = rollout_cli("status", "--plan", str(plan), cwd=stages)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"rollout: {plan}: is not a regular file\n"


@pytest.mark.parametrize(
    ("name", "command"),
    [
        pytest.param("staging.toml", ["status"], id="stage-file"),
        pytest.param("staging.toml", ["render", "staging", "--format", "headers"], id="render"),
        pytest.param("staging.history.jsonl", ["status"], id="history-status"),
        pytest.param("staging.history.jsonl", ["history", "staging"], id="history"),
    ],
)
def test_cli_refuses_a_fifo(plan: Plan, name: str, command: list[str]) -> None:
    """A FIFO stage file or history makes the command exit 2 at once with one line."""
    fifo = fifo_at(plan.folder / name)
    result = rollout_cli(*command, "--plan", str(plan.path), cwd=plan.folder)
    assert result.returncode == 2
    assert result.stderr == f"rollout: {fifo}: is not a regular file\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_status_refuses_a_fifo_lock(plan: Plan) -> None:
    """A FIFO lock file makes status exit 2 at once with one line."""
    fifo = fifo_at(plan.folder / "staging.lock")
    result = rollout_cli("status", "--plan", str(plan.path), cwd=plan.folder)
    assert result.returncode == 2
    assert result.stderr == f"rollout: {fifo}: is not a regular file, not a lock file\n"


@pytest.mark.parametrize("name", ["plan.toml", "staging.toml"])
def test_a_fifo_behind_a_symlink_is_refused(
    stages: Path, write_plan: Callable[..., Path], name: str
) -> None:
    """A symlink is no way round it: a FIFO it points at is refused the same way."""
    plan = write_plan()
    fifo = fifo_at(stages / f"real-{name}")
    (stages / name).unlink(missing_ok=True)
    (stages / name).symlink_to(fifo.name)
    result = rollout_cli("status", "--plan", str(plan), cwd=stages)
    assert result.returncode == 2
    assert result.stderr == f"rollout: {stages / name}: is not a regular file\n"


def test_symlinks_to_regular_plan_and_stage_file_are_read(plan: Plan, tmp_path: Path) -> None:
    """Deploys link the plan and the stage file to a release folder: that keeps working."""
    release_dir = tmp_path / "release"
    release_dir.mkdir()
    store.write_settings(plan, ladder.settings_for(plan, "staging", 0))
    for name in ("plan.toml", "staging.toml"):
        os.replace(plan.folder / name, release_dir / name)
        (plan.folder / name).symlink_to(release_dir / name)
    result = rollout_cli("status", "staging", "--plan", str(plan.path), cwd=plan.folder)
    assert (result.returncode, result.stderr) == (0, "")
    assert "staging: stage 0 hsts-30s" in result.stdout


READERS: dict[str, tuple[str, Callable[[Plan, Path], object]]] = {
    "settings.load": ("staging.toml", lambda plan, path: settings.load(path)),
    "load_plan": ("other.toml", lambda plan, path: load_plan(path)),
    "history.load": ("staging.history.jsonl", lambda plan, path: history.load(plan, "staging")),
    "lockfile.holder": ("staging.lock", lambda plan, path: lockfile.holder(path)),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_library_readers_refuse_a_fifo_without_blocking(plan: Plan, reader: str) -> None:
    """settings.load, load_plan, history.load and lockfile.holder never wait on a FIFO."""
    name, read = READERS[reader]
    fifo = fifo_at(plan.folder / name)

    def attempt() -> Exception | None:
        try:
            read(plan, fifo)
        except Exception as exc:
            return exc
        return None

    exc = bounded(attempt, fifo)
    assert isinstance(exc, InputError), exc
    assert str(exc).startswith(f"{fifo}: is not a regular file")


def write_stage_file(path: Path, xfo: str = "DENY") -> None:
    """Replace path atomically with a stage-1 stage file, as rollout writes it."""
    doc = settings.dumps(
        settings.StageSettings(
            "staging",
            1,
            "hsts-5m",
            {"strict-transport-security": "max-age=300", "x-frame-options": xfo},
        )
    )
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(tomli_w.dumps(doc))
    os.replace(tmp, path)


async def _page(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_middleware_keeps_answering_when_the_stage_file_turns_into_a_fifo(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`mkfifo stages/production.toml` under a running app: every request still answers at
    once with the last good headers, and the FIFO is reported once."""
    path = tmp_path / "staging.toml"
    write_stage_file(path)
    app = SecurityHeaders(_page, path, check_interval=0)
    transport = httpx.ASGITransport(app=app)

    async def requests() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="https://app.test") as c:
            return [await c.get("/") for _ in range(5)]

    assert bounded(lambda: asyncio.run(requests()))[0].headers["x-frame-options"] == "DENY"
    fifo_at(path)
    with caplog.at_level(logging.INFO, logger="rollout.middleware"):
        responses = bounded(lambda: asyncio.run(requests()), path)
    for response in responses:
        assert response.status_code == 200
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["strict-transport-security"] == "max-age=300"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [f"{path}: is not a regular file; keeping the last good settings"]
    # A good file put back is picked up as usual.
    write_stage_file(path, xfo="SAMEORIGIN")
    again = bounded(lambda: asyncio.run(requests()), path)
    assert again[-1].headers["x-frame-options"] == "SAMEORIGIN"


def test_middleware_starting_on_a_fifo_is_stage_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A FIFO there at start-up: the app starts, sends no app-owned headers, logs once."""
    path = fifo_at(tmp_path / "staging.toml")
    with caplog.at_level(logging.ERROR, logger="rollout.middleware"):
        app = bounded(lambda: SecurityHeaders(_page, path, check_interval=0), path)
        assert bounded(lambda: app.watcher.current().settings, path) is None
    errors = [r.getMessage() for r in caplog.records]
    assert errors == [
        f"{path}: is not a regular file; no good settings yet: stage off, no app-owned headers"
    ]


# Item 5: the stage file's temp file cannot be planted ---------------------------------


def old_scheme_names(path: Path) -> list[str]:
    """Every temp name the old writer would have used here, and a few more guesses."""
    pid, tid = os.getpid(), threading.get_ident()
    names = [
        f".{path.name}.{pid}.{tid}.tmp",
        f".{path.name}.{pid}.{threading.main_thread().ident}.tmp",
        f".{path.name}.{pid}.tmp",
        f".{path.name}.tmp",
        f"{path.name}.tmp",
        f"{path.stem}.tmp",
    ]
    return list(dict.fromkeys(names))


@pytest.fixture
def planted(plan: Plan, tmp_path: Path) -> Iterator[tuple[Path, list[Path]]]:
    """A victim file outside the stages folder, and symlinks to it at every guessable name."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    links = []
    for name in old_scheme_names(store.settings_path(plan, "staging")):
        link = plan.folder / name
        link.symlink_to(victim)
        links.append(link)
    yield victim, links
    assert victim.read_bytes() == b"precious\n"
    # A write sweeps stale temp names, links included; the victim behind them is untouched.
    assert all(not os.path.lexists(link) or link.resolve() == victim for link in links)


def leftovers(plan: Plan, links: list[Path]) -> list[str]:
    """Files in the stages folder other than the plan's own, the stage file and the lock."""
    known = {"plan.toml", "staging.toml", "staging.lock", *(link.name for link in links)}
    return sorted(p.name for p in plan.folder.iterdir() if p.name not in known)


def test_planted_symlinks_never_get_written(plan: Plan, planted: tuple[Path, list[Path]]) -> None:
    """A symlink at the old `.staging.toml.<pid>.<tid>.tmp` name (or a guess) is left alone:
    the temp file has an unpredictable name, created exclusively."""
    _, links = planted
    written = store.write_settings(plan, ladder.settings_for(plan, "staging", 0))
    path = store.settings_path(plan, "staging")
    assert not path.is_symlink()
    assert settings.load(path) == written
    assert leftovers(plan, links) == []


def test_failed_write_leaves_no_temp_file(plan: Plan, planted: tuple[Path, list[Path]]) -> None:
    """When the rename fails (the stage file's path is a folder) the temp file is removed."""
    _, links = planted
    store.settings_path(plan, "staging").mkdir()
    with pytest.raises(SettingsError, match="cannot write: Is a directory"):
        store.write_settings(plan, ladder.settings_for(plan, "staging", 0))
    assert leftovers(plan, links) == []


def test_short_writes_are_completed(plan: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.write may write less than asked: the writer loops until the whole file is out."""
    real_write = os.write

    def short_write(fd: int, data: Any) -> int:
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", short_write)
    written = store.write_settings(plan, ladder.settings_for(plan, "staging", 0))
    monkeypatch.undo()
    assert settings.load(store.settings_path(plan, "staging")) == written


def test_stage_file_stays_readable_by_the_app(plan: Plan) -> None:
    """The new file is 0o644 less the umask, as before: the app's user must read it."""
    old = os.umask(0o022)
    try:
        store.write_settings(plan, ladder.settings_for(plan, "staging", 0))
    finally:
        os.umask(old)
    mode = store.settings_path(plan, "staging").stat().st_mode
    assert stat.S_IMODE(mode) == 0o644


def test_first_history_append_makes_the_folder_entry_durable(
    plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating the history file fsyncs its folder; later appends fsync only the file."""
    real_fsync = os.fsync
    synced: list[str] = []

    def fsync(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    history.append(plan, "staging", history.new_record(history.VERIFY, None, None))
    assert synced == ["file", "folder"]
    synced.clear()
    history.append(plan, "staging", history.new_record(history.VERIFY, None, None))
    assert synced == ["file"]
