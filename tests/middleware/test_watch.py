"""The stage-file watcher under bad, vanished and replaced files, through the ASGI middleware."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from middleware_support import (
    APP,
    BAD_VERSIONS,
    headers_of,
    records,
    write_bad_stage_file,
    write_stage_file,
)
from middleware_support import page_app as _app

import rollout.middleware.watch as watch
from rollout.errors import SettingsError
from rollout.middleware import admission
from rollout.middleware.asgi import SecurityHeaders
from rollout.settings import StageSettings

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
    parsed: list[bytes] = []
    real_admit = admission.admit

    def counting_admit(data: bytes, source: str) -> StageSettings:
        parsed.append(data)
        return real_admit(data, source)

    monkeypatch.setattr(admission, "admit", counting_admit)
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
    with caplog.at_level(logging.ERROR, logger="rollout.middleware"):
        middleware = SecurityHeaders(_app, path, check_interval=0)
        assert headers_of(middleware) == {}
        assert headers_of(middleware) == {}
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 1
    assert str(path) in errors[0] and "stage off" in errors[0]
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
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert str(stage_file) in warnings[0] and "deleted" in warnings[0]
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
