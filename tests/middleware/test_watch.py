"""The stage-file watcher under bad, vanished and replaced files, through the ASGI middleware."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from middleware_support import (
    APP,
    BAD_VERSIONS,
    Clock,
    headers_of,
    records,
    replace_with_fifo,
    unprivileged,
    write_bad_stage_file,
    write_stage_file,
)
from middleware_support import page_app as _app

import rollout.middleware.watch as watch
from rollout.errors import SettingsError
from rollout.middleware import admission
from rollout.middleware.asgi import SecurityHeaders
from rollout.middleware.watch import SettingsWatcher
from rollout.settings import StageSettings

SAMEORIGIN = {**APP, "x-frame-options": "SAMEORIGIN"}
KEEPING = "; keeping the last good settings"


def frame_option(watcher: SettingsWatcher) -> str | None:
    """The X-Frame-Options value the watcher would stamp on the next request."""
    settings = watcher.current().settings
    return None if settings is None else settings.app.get("x-frame-options")


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every stage file version the watcher checks from now on, in order."""
    parsed: list[bytes] = []
    real_admit = admission.admit

    def counting_admit(data: bytes, source: str) -> StageSettings:
        parsed.append(data)
        return real_admit(data, source)

    monkeypatch.setattr(admission, "admit", counting_admit)
    return parsed


BAD = pytest.mark.parametrize("bad_value", BAD_VERSIONS.values(), ids=BAD_VERSIONS.keys())


@BAD
def test_bad_rewrite_keeps_last_good_and_logs_once(
    stage_file: Path, bad_value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A rewrite the middleware refuses is reported once, naming the file, and changes nothing."""
    middleware = SecurityHeaders(_app, stage_file, check_interval=0)
    write_bad_stage_file(stage_file, bad_value)
    with caplog.at_level(logging.INFO, logger="rollout.middleware"):
        for _ in range(5):
            headers = headers_of(middleware)
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"strict-transport-security"] == b"max-age=300"
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 1
    assert str(stage_file) in errors[0] and "keeping the last good settings" in errors[0]


@BAD
def test_bad_version_is_parsed_once(
    stage_file: Path, bad_value: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher remembers a bad version and does not parse it again at every check."""
    parsed = count_reads(monkeypatch)
    monkeypatch.setattr(watch, "RACY_NS", 0)  # no second look at a just-written file
    middleware = SecurityHeaders(_app, stage_file, check_interval=0)
    write_bad_stage_file(stage_file, bad_value)
    for _ in range(5):
        headers_of(middleware)
    assert len(parsed) == 2  # the good start-up version, then the bad one once


@BAD
def test_bad_file_at_start_up_is_stage_off_until_fixed(
    tmp_path: Path, bad_value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad file at start-up never breaks the app: one error, no headers, then the fix."""
    path = write_bad_stage_file(tmp_path / "staging.toml", bad_value)
    with caplog.at_level(logging.WARNING, logger="rollout.middleware"):
        middleware = SecurityHeaders(_app, path, check_interval=0)
        assert headers_of(middleware) == {}
        assert headers_of(middleware) == {}
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 1
    assert str(path) in errors[0] and "stage off" in errors[0]
    assert records(caplog, logging.WARNING) == []  # it exists: never "does not exist"
    write_stage_file(path)
    assert headers_of(middleware)[b"x-frame-options"] == b"DENY"


def test_unexpected_failure_while_loading_keeps_last_good(
    stage_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Even an error settings.loads was never meant to raise keeps the last good headers."""
    middleware = SecurityHeaders(_app, stage_file, check_interval=0)

    def broken(data: bytes, source: str) -> StageSettings:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(admission, "admit", broken)
    write_stage_file(stage_file, app={**APP, "x-frame-options": "SAMEORIGIN"})
    with caplog.at_level(logging.ERROR, logger="rollout.middleware"):
        for _ in range(3):
            assert headers_of(middleware)[b"x-frame-options"] == b"DENY"
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 1 and "UnicodeDecodeError" in errors[0]


def test_snapshot_refuses_a_multi_line_value_whatever_loads_says() -> None:
    """A header value with a line break never becomes header bytes."""
    settings = StageSettings("staging", 1, "hsts-5m", {"x-frame-options": "DENY\n"})
    with pytest.raises(SettingsError, match="x-frame-options"):
        watch.Snapshot.build(settings)


def test_deleted_file_warns_once_and_turns_stage_off(
    stage_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A loaded file that vanishes logs one warning and means stage off until it is back."""
    middleware = SecurityHeaders(_app, stage_file, check_interval=0)
    assert b"x-frame-options" in headers_of(middleware)
    stage_file.unlink()
    with caplog.at_level(logging.INFO, logger="rollout.middleware"):
        for _ in range(3):
            assert headers_of(middleware) == {}
    assert records(caplog, logging.WARNING) == [
        f"{stage_file}: deleted; stage off, no app-owned headers until it is back "
        "(rollout never deletes it)"
    ]
    write_stage_file(stage_file)
    assert headers_of(middleware)[b"x-frame-options"] == b"DENY"


def test_start_up_names_the_absolute_path_and_says_it_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Started from a folder where the relative path resolves to nothing (systemd, gunicorn
    --chdir), the middleware says once which file it watches and that it is absent."""
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="rollout.middleware"):
        middleware = SecurityHeaders(_app, "stages/production.toml", check_interval=0)
        for _ in range(3):
            assert headers_of(middleware) == {}
    assert records(caplog, logging.WARNING) == [
        f"{tmp_path / 'stages' / 'production.toml'} ('stages/production.toml' from {tmp_path}): "
        "does not exist; stage off, no app-owned headers until it appears"
    ]
    assert records(caplog, logging.ERROR) == []


def test_start_up_names_the_stage_loaded_and_keeps_the_path_after_a_chdir(
    stage_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A relative path is resolved once, at start-up: a later chdir changes nothing."""
    monkeypatch.chdir(stage_file.parent)
    with caplog.at_level(logging.INFO, logger="rollout.middleware"):
        middleware = SecurityHeaders(_app, stage_file.name, check_interval=0)
    assert records(caplog, logging.INFO) == [f"{stage_file}: stage 1 (hsts-5m) loaded"]
    monkeypatch.chdir("/")
    assert headers_of(middleware)[b"x-frame-options"] == b"DENY"


def test_grammars_that_fail_to_import_never_fail_a_request(
    stage_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken install (the header grammars cannot be imported) is one logged error and
    stage off at start-up; requests are answered all the same."""
    monkeypatch.setitem(sys.modules, "rollout.middleware.admission", None)
    monkeypatch.delattr("rollout.middleware.admission", raising=False)
    with caplog.at_level(logging.ERROR, logger="rollout.middleware"):
        middleware = SecurityHeaders(_app, stage_file, check_interval=0)
        for _ in range(3):
            assert headers_of(middleware) == {}
    [error] = records(caplog, logging.ERROR)
    assert (
        error.startswith(f"{stage_file}: cannot load: ModuleNotFoundError") and "stage off" in error
    )


def test_an_absent_absolute_path_is_named_as_given(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An absolute path that resolves to nothing is named once, as given."""
    path = tmp_path / "stages" / "production.toml"
    with caplog.at_level(logging.WARNING, logger="rollout.middleware"):
        watcher = SettingsWatcher(path, interval=0)
        assert watcher.current().settings is None
    assert records(caplog, logging.WARNING) == [
        f"{path}: does not exist; stage off, no app-owned headers until it appears"
    ]


def test_a_deleted_working_folder_leaves_a_relative_path_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Started in a working folder that was deleted, there is nothing to resolve a relative
    path against: the watcher keeps it as given and says it cannot tell where it was."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with caplog.at_level(logging.WARNING, logger="rollout.middleware"):
        watcher = SettingsWatcher("stages/production.toml", interval=0)
        assert watcher.current().settings is None
    assert watcher.path == Path("stages/production.toml")
    assert records(caplog, logging.WARNING) == [
        "stages/production.toml ('stages/production.toml' from ?): does not exist; stage off, "
        "no app-owned headers until it appears"
    ]


def test_looks_at_the_file_once_a_second(stage_file: Path, clock: Clock) -> None:
    """By default a change is seen at the first request a second or more after the last
    look, and not before."""
    watcher = SettingsWatcher(stage_file)
    write_stage_file(stage_file, app=SAMEORIGIN)
    clock.advance(0.5)
    assert frame_option(watcher) == "DENY"
    clock.advance(0.5)
    assert frame_option(watcher) == "SAMEORIGIN"


@pytest.mark.parametrize(
    ("swap", "error"),
    [(Path.unlink, None), (replace_with_fifo, "is not a regular file")],
    ids=["deleted", "fifo"],
)
def test_a_file_swapped_between_stat_and_open_is_looked_at_again_next_request(
    stage_file: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    swap: Callable[[Path], None],
    error: str | None,
) -> None:
    """A file deleted (a writer's `rm` then `cp`) or replaced by a FIFO just after the
    watcher saw it change keeps the last good settings, and the next request, without
    waiting for the interval, judges what is there by then."""
    watcher = SettingsWatcher(stage_file)
    real = watch.read_regular

    def swapped_first(path: Path) -> object:
        monkeypatch.setattr(watch, "read_regular", real)
        swap(stage_file)
        return real(path)

    write_stage_file(stage_file, app=SAMEORIGIN)
    monkeypatch.setattr(watch, "read_regular", swapped_first)
    clock.advance(1.0)
    with caplog.at_level(logging.WARNING, logger="rollout.middleware"):
        assert frame_option(watcher) == "DENY"
        assert records(caplog, logging.ERROR) == []
        if error is None:  # the writer's `cp` lands
            write_stage_file(stage_file, app=SAMEORIGIN)
            assert frame_option(watcher) == "SAMEORIGIN"
        else:
            assert frame_option(watcher) == "DENY"
    assert records(caplog, logging.ERROR) == ([f"{stage_file}: {error}{KEEPING}"] if error else [])
    assert records(caplog, logging.WARNING) == []


def _unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path.chmod(0)


def _broken_install(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rollout.middleware.admission", None)
    monkeypatch.delattr("rollout.middleware.admission", raising=False)
    write_stage_file(path, app=SAMEORIGIN)


STAYING = {
    "fifo": (lambda p, m: replace_with_fifo(p), "is not a regular file"),
    "unreadable": (_unreadable, "cannot read: Permission denied"),
    "broken-install": (
        _broken_install,
        "cannot load: ModuleNotFoundError: import of rollout.middleware.admission halted; None "
        "in sys.modules",
    ),
}


@pytest.mark.parametrize("case", STAYING.values(), ids=STAYING.keys())
def test_a_bad_version_that_stays_is_logged_once_however_long_it_stays(
    stage_file: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    case: tuple[Callable[[Path, pytest.MonkeyPatch], None], str],
) -> None:
    """A FIFO, an unreadable file (as a service user) or a version that cannot be loaded,
    left in place for hours, is one error line: the watcher remembers the version, and
    looks at it again only once (a second after it changed, in case it was still changing)."""
    make_bad, error = case
    clock.wall = stage_file.stat().st_mtime_ns  # read while fresh: to be read once more
    watcher = SettingsWatcher(stage_file, interval=0)
    make_bad(stage_file, monkeypatch)
    clock.wall = max(clock.wall, os.stat(stage_file).st_mtime_ns)
    with caplog.at_level(logging.ERROR, logger="rollout.middleware"):
        for wait in (0, watch.RACY_NS / 1e9, watch.REPEAT_AFTER, 3600):
            clock.advance(wait)
            assert unprivileged(lambda: frame_option(watcher)) == "DENY"
    assert records(caplog, logging.ERROR) == [f"{stage_file}: {error}{KEEPING}"]


def test_a_recurring_error_is_logged_again_after_five_minutes(
    stage_file: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """New versions failing the same way within five minutes of the last report are not
    reported again; five minutes after it, the same error is a new incident, reported."""
    watcher = SettingsWatcher(stage_file, interval=0)
    with caplog.at_level(logging.ERROR, logger="rollout.middleware"):
        for wait in (0, watch.REPEAT_AFTER / 2, watch.REPEAT_AFTER / 2):
            clock.advance(wait)
            write_bad_stage_file(stage_file, BAD_VERSIONS["bad-grammar"])  # a new version
            assert frame_option(watcher) == "DENY"
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 2 and errors[0] == errors[1]


@pytest.mark.parametrize(("others", "again"), [(63, False), (64, True)])
def test_the_last_64_error_lines_are_remembered(
    stage_file: Path, clock: Clock, caplog: pytest.LogCaptureFixture, others: int, again: bool
) -> None:
    """A file flapping through many distinct bad versions: each error line is reported once
    while it is among the 64 most recent, and again once 64 others came after it."""
    watcher = SettingsWatcher(stage_file, interval=0)
    good = stage_file.read_text()

    def serve(environment: str) -> None:
        tmp = stage_file.with_suffix(".tmp")
        tmp.write_text(good.replace('"staging"', f'"{environment}"', 1))
        os.replace(tmp, stage_file)  # a new version (inode) each time
        assert frame_option(watcher) == "DENY"

    with caplog.at_level(logging.ERROR, logger="rollout.middleware"):
        for environment in ["first", *(f"other-{i}" for i in range(others)), "first"]:
            serve(environment)
    errors = records(caplog, logging.ERROR)
    assert len(errors) == others + 1 + again
    assert sum("'first'" in line for line in errors) == 1 + again


@pytest.mark.parametrize(("age", "reads"), [(watch.RACY_NS - 1, 2), (watch.RACY_NS, 1)])
def test_a_version_is_read_once_more_only_if_read_within_a_second_of_its_change(
    stage_file: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, age: int, reads: int
) -> None:
    """A version read less than a second after it changed may still have been changing
    (timestamps move in ticks): it is read once more a second later; one read a full second
    after its change has settled, and is read once."""
    parsed = count_reads(monkeypatch)
    clock.wall = stage_file.stat().st_mtime_ns + age
    watcher = SettingsWatcher(stage_file, interval=0)
    for _ in range(3):
        clock.advance(1.0)
        assert frame_option(watcher) == "DENY"
    assert len(parsed) == reads


def test_a_request_never_waits_for_another_ones_reload(
    stage_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one request reloads a changed file, the others go on at once with the
    settings already loaded, then see the new ones."""
    watcher = SettingsWatcher(stage_file, interval=0)
    inside, release = threading.Event(), threading.Event()
    real_admit = admission.admit

    def slow_admit(data: bytes, source: str) -> StageSettings:
        inside.set()
        release.wait(timeout=10)  # runs out only if the request below waits for this one
        return real_admit(data, source)

    monkeypatch.setattr(admission, "admit", slow_admit)
    write_stage_file(stage_file, app=SAMEORIGIN)
    reloading = threading.Thread(target=watcher.current)
    reloading.start()
    assert inside.wait(timeout=60)
    assert frame_option(watcher) == "DENY"
    release.set()
    reloading.join()
    assert frame_option(watcher) == "SAMEORIGIN"
