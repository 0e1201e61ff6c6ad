"""The stage-file watcher under bad, vanished and replaced files, through the ASGI middleware."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from middleware_support import APP, BAD_VERSIONS, write_bad_stage_file, write_stage_file

import rollout.middleware.watch as watch
from rollout.errors import SettingsError
from rollout.middleware.asgi import SecurityHeaders
from rollout.settings import StageSettings

BAD = pytest.mark.parametrize("bad_value", BAD_VERSIONS.values(), ids=BAD_VERSIONS.keys())


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def headers_of(middleware: SecurityHeaders) -> dict[bytes, bytes]:
    """The headers one https request through middleware gets, by lower-case name."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "scheme": "https", "method": "GET", "path": "/", "headers": []}
    asyncio.run(middleware(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    pairs = [(n.lower(), v) for n, v in start["headers"]]
    assert all(b"\n" not in v and b"\r" not in v for _, v in pairs)  # never an injection
    return dict(pairs)


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The messages logged on rollout.middleware at exactly this level."""
    return [r.getMessage() for r in caplog.records if r.levelno == level]


@BAD
def test_bad_rewrite_keeps_last_good_and_logs_once(
    stage_file: Path, bad_value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A rewrite settings.loads refuses is reported once, naming the file, and changes nothing."""
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
    parsed: list[bytes | str] = []
    real_loads = watch.loads

    def counting_loads(data: bytes | str, source: str = "<settings>") -> StageSettings:
        parsed.append(data)
        return real_loads(data, source)

    monkeypatch.setattr(watch, "loads", counting_loads)
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

    def broken(data: bytes | str, source: str = "<settings>") -> StageSettings:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(watch, "loads", broken)
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
