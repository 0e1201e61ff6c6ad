"""Settings and history files: atomic replace, the lock, and the append-only history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from rollout import history, ladder, lockfile, store
from rollout.errors import SettingsError
from rollout.plan import Plan, load_plan
from rollout.settings import StageSettings


@pytest.fixture
def plan(write_plan: Callable[..., Path]) -> Plan:
    """The standard test plan in a temporary stages folder."""
    return load_plan(write_plan())


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_write_then_read_round_trips(plan: Plan) -> None:
    """What write_settings writes, read_settings reads back, with the time it was written."""
    wanted = ladder.settings_for(plan, "production", 3)
    written = store.write_settings(plan, wanted)
    assert written.updated.endswith("Z")
    assert store.read_settings(plan, "production") == written
    assert dict(written.edge) == {
        "strict-transport-security": "max-age=86400",
        "x-content-type-options": "nosniff",
    }
    assert sorted(p.name for p in plan.folder.iterdir()) == [
        "plan.toml",
        "production.lock",
        "production.toml",
    ]


def test_settings_file_is_plain_toml(plan: Plan) -> None:
    """The settings file is TOML the middleware reader understands, one header per line."""
    store.write_settings(plan, ladder.settings_for(plan, "staging", 0))
    text = store.settings_path(plan, "staging").read_text()
    assert 'environment = "staging"' in text
    assert "stage = 0" in text
    assert '\nstrict-transport-security = "max-age=30"\n' in text


def test_stage_off_is_written_as_off(plan: Plan) -> None:
    """Stage off is stored as the string "off" and read back as None."""
    store.write_settings(plan, ladder.settings_for(plan, "production", None))
    assert 'stage = "off"' in store.settings_path(plan, "production").read_text()
    assert store.read_settings(plan, "production").stage is None  # type: ignore[union-attr]


def test_missing_settings_file_means_not_started(plan: Plan) -> None:
    """Before anything was written, an environment has no settings file: stage off."""
    assert store.read_settings(plan, "staging") is None


def test_stage_follows_its_name_when_the_ladder_changes(
    plan: Plan, write_plan: Callable[..., Path]
) -> None:
    """A stage is recorded by name: inserting a stage below it renumbers it on read."""
    store.write_settings(plan, ladder.settings_for(plan, "staging", 3))
    text = plan.path.read_text().replace(
        "[environments.staging]",
        "[ladder]\nhsts = [30, 300, 3600, 7200, 86400, 604800, 2592000, 31536000]\n\n"
        "[environments.staging]",
    )
    moved = load_plan(write_plan(text))
    current = store.read_settings(moved, "staging")
    assert current is not None
    assert (current.stage, current.name) == (4, "hsts-1d")


def test_invalid_settings_are_never_written(plan: Plan) -> None:
    """write_settings refuses what the readers would refuse, and writes nothing."""
    bad = StageSettings("staging", 0, "hsts-30s", {"x-frame-options": "DENY\r\nX: 1"})
    with pytest.raises(SettingsError, match=r"app\.x-frame-options"):
        store.write_settings(plan, bad)
    assert sorted(p.name for p in plan.folder.iterdir()) == ["plan.toml"]


def test_concurrent_writers_take_turns(plan: Plan) -> None:
    """Threads doing read-modify-write under the lock lose no update and leave no temp files."""
    import time

    counter = plan.folder / "counter"
    counter.write_text("0")
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(5):
                with store.lock(plan, "staging", timeout=60):
                    n = int(counter.read_text())
                    time.sleep(0.002)  # another writer would read the same n here
                    counter.write_text(str(n + 1))
                    stage = ladder.settings_for(plan, "staging", n % 7)
                    store.write_settings(plan, stage, lock_timeout=60)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert counter.read_text() == "40"
    assert store.read_settings(plan, "staging").stage == 39 % 7  # type: ignore[union-attr]
    assert sorted(p.name for p in plan.folder.iterdir()) == [
        "counter",
        "plan.toml",
        "staging.lock",
        "staging.toml",
    ]


def test_history_appends_one_json_object_per_line(plan: Plan) -> None:
    """Each record is one JSON line with time, action, from, to, reason, user, verified."""
    history.append(
        plan, "staging", history.new_record("advance", None, 0, reason="go", verified=True)
    )
    history.append(plan, "staging", history.new_record("verify", 0, 0, verified=False))
    lines = history.path(plan, "staging").read_text().splitlines()
    first = json.loads(lines[0])
    assert list(first) == ["time", "action", "from", "to", "reason", "user", "verified"]
    assert (first["action"], first["from"], first["to"], first["reason"], first["verified"]) == (
        "advance",
        "off",
        0,
        "go",
        True,
    )
    records = history.read(plan, "staging")
    assert [(r.action, r.from_, r.to, r.verified) for r in records] == [
        ("advance", None, 0, True),
        ("verify", 0, 0, False),
    ]
    assert history.last_verify(records) == records[1]
    assert history.last_transition(records) == records[0]


def test_torn_last_history_line_is_skipped(plan: Plan) -> None:
    """A last line cut short by a crash mid-append is ignored; the records before it count."""
    history.append(plan, "staging", history.new_record("advance", None, 0))
    with history.path(plan, "staging").open("a") as f:
        f.write('{"time": "2026-01-01T00:00:00Z", "act')
    assert [r.action for r in history.read(plan, "staging")] == ["advance"]


def test_history_with_a_bad_field_names_the_line(plan: Plan) -> None:
    """A history record with a wrong type is refused with its line number and key."""
    path = history.path(plan, "staging")
    path.write_text(
        '{"time": "2026-01-01T00:00:00Z", "action": "advance", "from": "off", "to": -1}\n'
    )
    with pytest.raises(
        SettingsError, match=r"staging.history.jsonl:1: to: -1 is not a stage number"
    ):
        history.read(plan, "staging")


def test_parse_time_reads_what_now_writes() -> None:
    """Times are UTC ISO 8601 with a Z; anything else reads as None."""
    when = history.parse_time(lockfile.now())
    assert when is not None and when.utcoffset() is not None
    assert history.parse_time("yesterday") is None


def write_raw(plan: Plan, env: str, body: str) -> None:
    """Write a stage file as a hand editor would."""
    store.settings_path(plan, env).write_text(f'environment = "{env}"\n' + body)


def test_every_stage_rollout_writes_reads_back(write_plan: Callable[..., Path]) -> None:
    """Each stage of each environment, as settings_for makes it, passes read_settings' checks."""
    text = Path(write_plan()).read_text().replace("[policy]", '[policy]\ncsp-report-uri = "/csp"')
    text += "\n[ladder]\nhsts = [30, 86400, 31536000]\npreload = true\n"
    plan = load_plan(write_plan(text))
    for env in ("staging", "production"):
        for stage in [None, *range(len(ladder.build(plan)))]:
            written = store.write_settings(plan, ladder.settings_for(plan, env, stage))
            assert store.read_settings(plan, env) == written
            assert store.drift(plan, written) == []


def test_hsts_equal_in_meaning_is_accepted(plan: Plan) -> None:
    """An HSTS value that means the stage's (case, quotes, order) is not a hand edit."""
    write_raw(
        plan,
        "staging",
        'stage = 5\nname = "hsts-30d"\n[app]\n'
        '"strict-transport-security" = "includesubdomains; MAX-AGE=\\"2592000\\""\n',
    )
    current = store.read_settings(plan, "staging")
    assert current is not None and current.stage == 5


def test_edge_keeps_a_later_stage_after_a_revert(plan: Plan) -> None:
    """The edge may still send a later stage's HSTS and CSP mode than the app's stage."""
    reverted = ladder.settings_for(plan, "production", 1)
    left = ladder.settings_for(plan, "production", 5).edge
    store.write_settings(plan, StageSettings("production", 1, "hsts-5m", reverted.app, left))
    current = store.read_settings(plan, "production")
    assert current is not None
    assert current.edge["strict-transport-security"] == "max-age=2592000; includeSubDomains"
    assert store.drift(plan, current) == []


def test_stage_off_may_keep_the_edge_hsts(plan: Plan) -> None:
    """A revert to off leaves the edge's HSTS where it was; the app then sends nothing."""
    edge = ladder.settings_for(plan, "production", 3).edge
    store.write_settings(plan, StageSettings("production", None, "off", {}, edge))
    current = store.read_settings(plan, "production")
    assert current is not None and current.stage is None
    assert store.drift(plan, current) == []


def test_policy_edits_are_drift_not_refusals(plan: Plan, write_plan: Callable[..., Path]) -> None:
    """After plan.toml's policy changes, the old stage file still reads; drift names each change."""
    store.write_settings(plan, ladder.settings_for(plan, "staging", 2))
    text = (
        plan.path.read_text()
        .replace("object-src 'none'", "object-src 'none'; img-src 'self'")
        .replace('referrer-policy = "no-referrer"\n', "")
        .replace('"DENY"', '"SAMEORIGIN"')
    )
    edited = load_plan(write_plan(text))
    current = store.read_settings(edited, "staging")
    assert current is not None and current.stage == 2
    assert store.drift(edited, current) == [
        "app.content-security-policy-report-only: img-src is missing, the plan wants img-src "
        "'self'",
        "app.referrer-policy: the plan no longer sends it",
        "app.x-frame-options: X-Frame-Options is DENY, the plan wants SAMEORIGIN",
    ]


def test_history_that_is_a_folder_is_refused(plan: Plan) -> None:
    """append_history names the file and the system's reason instead of raising OSError."""
    path = history.path(plan, "staging")
    path.mkdir()
    with pytest.raises(SettingsError, match=r"staging\.history\.jsonl: cannot append: Is a dir"):
        history.append(plan, "staging", history.new_record("verify", 0, 0))


def test_failed_write_leaves_no_temp_file_or_lock(plan: Plan) -> None:
    """When the replace fails, write_settings says why and removes its temp file."""
    store.settings_path(plan, "staging").mkdir()
    with pytest.raises(SettingsError, match=r"staging\.toml: cannot write: Is a directory$"):
        store.write_settings(plan, ladder.settings_for(plan, "staging", 0))
    assert sorted(p.name for p in plan.folder.iterdir()) == [
        "plan.toml",
        "staging.lock",
        "staging.toml",
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(plan: Plan) -> None:
    """A stages folder that cannot be written to is refused at once, leaving nothing."""
    plan.folder.chmod(0o555)
    try:
        with pytest.raises(SettingsError, match=r"staging\.lock: cannot open the lock: Perm"):
            store.write_settings(plan, ladder.settings_for(plan, "staging", 0), lock_timeout=60)
        with pytest.raises(SettingsError, match=r"history\.jsonl: cannot append: Permission"):
            history.append(plan, "staging", history.new_record("verify", 0, 0))
    finally:
        plan.folder.chmod(0o755)
    assert sorted(p.name for p in plan.folder.iterdir()) == ["plan.toml"]


def test_write_refuses_what_a_read_would_refuse(plan: Plan) -> None:
    """A writer cannot skip a rung either: stage 0 with a year of HSTS is never written."""
    import dataclasses

    good = ladder.settings_for(plan, "staging", 0)
    skipped = dataclasses.replace(
        good, app={**good.app, "strict-transport-security": "max-age=31536000"}
    )
    with pytest.raises(SettingsError, match=r"app\.strict-transport-security: .*stage 0"):
        store.write_settings(plan, skipped)
    assert sorted(p.name for p in plan.folder.iterdir()) == ["plan.toml"]


def test_a_write_sweeps_temp_files_a_killed_writer_left(plan: Plan) -> None:
    """A temp file left by a writer killed mid-replace is removed by the next write."""
    store.write_settings(plan, ladder.settings_for(plan, "staging", 0))
    left = plan.folder / ".staging.toml.0123456789abcdef.tmp"
    left.write_text("half a stage file")
    store.write_settings(plan, ladder.settings_for(plan, "staging", 1))
    assert not left.exists()
    assert store.read_settings(plan, "staging").stage == 1  # type: ignore[union-attr]
