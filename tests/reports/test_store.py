"""The report store on SQLite and on a real PostgreSQL server: counts, windows, processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rollout.reports.store import (
    EmptyStore,
    StoreError,
    ViewCount,
    ViolationCount,
    default_location,
    open_store,
)

HOUR = 3600


def hit(
    *,
    policy: str = "p1",
    blocked: str = "https://cdn.example.test",
    when: float = 1_800_000_000.0,
    count: int = 1,
    sample: str = "",
    stage: str = "3",
) -> ViolationCount:
    """One violation's count in the hour of `when`."""
    hour = int(when // HOUR) * HOUR
    return ViolationCount(
        "staging", policy, stage, "report", "script-src-elem", blocked, "/", "https://a.test",
        "", hour, count, when, when, sample,
    )  # fmt: skip


def views(count: int, *, policy: str = "p1", when: float = 1_800_000_000.0) -> ViewCount:
    """Page views under a policy in the hour of `when`."""
    return ViewCount("staging", policy, "3", int(when // HOUR) * HOUR, count, when, when)


def test_counts_add_up_and_stay_deduplicated(store_location: str) -> None:
    """The same violation written twice is one row whose count is the sum; first and last
    seen span both, and the first non-empty sample stays."""
    store = open_store(store_location)
    store.add([hit(when=1_800_000_010.0, count=2)], [views(3)])
    store.add([hit(when=1_800_000_020.0, sample="alert(1)")], [views(4)])
    store.add([hit(when=1_800_000_005.0, sample="later")], [])
    rows = store.rows("staging", ["p1"], 0.0)
    assert len(rows) == 1
    assert (rows[0].count, rows[0].first_seen, rows[0].last_seen) == (
        4,
        1_800_000_005.0,
        1_800_000_020.0,
    )
    assert rows[0].sample == "alert(1)"
    assert store.page_views("staging", ["p1"], 0.0) == 7
    store.close()


def test_windows_policies_and_environments_are_kept_apart(store_location: str) -> None:
    """Only the asked policies, the asked environment and rows seen since the window count."""
    store = open_store(store_location)
    store.add(
        [hit(when=1_800_000_000.0), hit(policy="p2", blocked="https://other.test"),
         hit(when=1_800_000_000.0 + 5 * HOUR, blocked="https://late.test")],
        [views(1, when=1_800_000_000.0), views(2, when=1_800_000_000.0 + 5 * HOUR)],
    )  # fmt: skip
    later = 1_800_000_000.0 + 2 * HOUR
    assert [r.blocked for r in store.rows("staging", ["p1"], later)] == ["https://late.test"]
    assert {r.blocked for r in store.rows("staging", ["p1", "p2"], 0.0)} == {
        "https://cdn.example.test", "https://other.test", "https://late.test",
    }  # fmt: skip
    assert store.rows("production", ["p1"], 0.0) == []
    assert store.page_views("staging", ["p1"], later) == 2
    assert store.page_views("staging", [], 0.0) == 0
    store.close()


def test_prune_forgets_old_hours(store_location: str) -> None:
    """Pruning drops the hours last seen before the cut-off and keeps the rest."""
    store = open_store(store_location)
    store.add([hit(when=1_000.0), hit(when=1_800_000_000.0, blocked="https://new.test")], [])
    assert store.prune(1_000_000.0) == 1
    assert [r.blocked for r in store.rows("staging", ["p1"], 0.0)] == ["https://new.test"]
    store.close()


def test_text_from_reports_is_stored_as_it_came(store_location: str) -> None:
    """Control characters, quotes and non-ASCII in a sample are stored and read back whole
    (they are escaped where printed, never here)."""
    sample = "\x1b[2J'; DROP TABLE csp_violations; --\u2028é"
    store = open_store(store_location)
    store.add([hit(sample=sample)], [])
    assert store.rows("staging", ["p1"], 0.0)[0].sample == sample
    store.close()


def test_readers_find_no_store_without_making_one(tmp_path: Path) -> None:
    """A reader of a missing SQLite file sees an empty store and creates no file."""
    where = tmp_path / "staging.reports.sqlite3"
    store = open_store(where, create=False)
    assert isinstance(store, EmptyStore)
    assert store.rows("staging", ["p1"], 0.0) == []
    assert not where.exists()


def test_default_location_is_beside_the_stage_file() -> None:
    """stages/<env>.toml keeps its reports in stages/<env>.reports.sqlite3."""
    assert default_location("stages/production.toml") == Path("stages/production.reports.sqlite3")


def test_sqlite_store_runs_in_wal_mode(tmp_path: Path) -> None:
    """The SQLite file is in WAL mode, so readers never wait for the writers."""
    where = tmp_path / "staging.reports.sqlite3"
    open_store(where).close()
    mode = sqlite3.connect(where).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A store written by a newer rollout is refused with a message, not misread."""
    where = tmp_path / "staging.reports.sqlite3"
    open_store(where).close()
    with sqlite3.connect(where) as conn:
        conn.execute("UPDATE rollout_reports_schema SET version = 99")
    with pytest.raises(StoreError, match="written by a newer rollout"):
        open_store(where)


def test_a_corrupt_file_is_refused_in_one_line(tmp_path: Path) -> None:
    """A file that is not SQLite gives a StoreError naming it, not a traceback."""
    where = tmp_path / "staging.reports.sqlite3"
    where.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match=str(where)):
        open_store(where)


WRITER = """
import sys
from rollout.reports.store import ViewCount, ViolationCount, open_store
where, worker, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = open_store(where)
for i in range(rounds):
    when = 1_800_000_000.0 + i
    hour = int(when // 3600) * 3600
    store.add(
        [ViolationCount("staging", "p1", "3", "report", "script-src-elem",
                        f"https://w{worker % 3}.test", "/", "https://a.test", "", hour, 1,
                        when, when, "")],
        [ViewCount("staging", "p1", "3", hour, 1, when, when)],
    )
store.close()
"""


def test_several_processes_write_one_store_without_losing_a_count(store_location: str) -> None:
    """Four processes writing the same violations at once: every count arrives, none twice."""
    open_store(store_location).close()  # the tables exist before the race starts
    workers = [
        subprocess.Popen([sys.executable, "-c", WRITER, store_location, str(w), "30"])
        for w in range(4)
    ]
    reader = open_store(store_location)
    while any(p.poll() is None for p in workers):
        reader.rows("staging", ["p1"], 0.0)  # reading while they write never fails
        time.sleep(0.01)
    assert [p.wait(60) for p in workers] == [0, 0, 0, 0]
    rows = reader.rows("staging", ["p1"], 0.0)
    assert sorted((r.blocked, r.count) for r in rows) == [
        ("https://w0.test", 60), ("https://w1.test", 30), ("https://w2.test", 30),
    ]  # fmt: skip
    assert reader.page_views("staging", ["p1"], 0.0) == 120
    reader.close()


def test_postgres_url_without_server_is_one_line(tmp_path: Path) -> None:
    """An unreachable PostgreSQL URL gives a StoreError naming it, never a traceback."""
    from tests.reports.support import free_port

    url = f"postgresql://rollout@127.0.0.1:{free_port()}/none"
    with pytest.raises(StoreError, match=r"cannot open the report store"):
        open_store(url)
