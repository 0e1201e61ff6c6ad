"""Where reports are kept: SQLite beside the stage file by default, PostgreSQL on request.

Reports are kept deduplicated, never one row per POST: a violation is its environment,
the policy it broke (`fingerprint.policy_id`), the stage the servers were at, the
disposition, the effective directive, what was blocked (origin or keyword), the page's
path and origin, and where the offending code came from; per such violation and hour, a
count, when it was first and last seen, and one sample. Page views are counted the same
way, per policy and hour. So a window (`--since`, a soak) is exact about which violations
it saw, and its counts include the whole hour it starts in.

SQLite runs in WAL mode with a busy timeout, so the writer threads of several worker
processes and the `rollout` command reading take turns instead of failing. Nothing here
runs on an app's request path: `rollout.reports.writer` calls it from its own thread.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rollout.errors import InputError

SCHEMA_VERSION = 1
BUSY_TIMEOUT = 10.0  # seconds a writer waits for another process's transaction
SUFFIX = ".reports.sqlite3"

VIOLATION_KEY = (
    "environment",
    "policy",
    "stage",
    "disposition",
    "directive",
    "blocked",
    "document",
    "origin",
    "source",
    "hour",
)
VIEW_KEY = ("environment", "policy", "stage", "hour")

# One DDL for both databases: SQLite reads these type names by affinity.
DDL = (
    """CREATE TABLE IF NOT EXISTS csp_violations (
        environment TEXT NOT NULL, policy TEXT NOT NULL, stage TEXT NOT NULL,
        disposition TEXT NOT NULL, directive TEXT NOT NULL, blocked TEXT NOT NULL,
        document TEXT NOT NULL, origin TEXT NOT NULL, source TEXT NOT NULL,
        hour BIGINT NOT NULL, count BIGINT NOT NULL, first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL, sample TEXT NOT NULL,
        PRIMARY KEY (environment, policy, stage, disposition, directive, blocked, document,
                     origin, source, hour))""",
    """CREATE TABLE IF NOT EXISTS csp_page_views (
        environment TEXT NOT NULL, policy TEXT NOT NULL, stage TEXT NOT NULL,
        hour BIGINT NOT NULL, count BIGINT NOT NULL, first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (environment, policy, stage, hour))""",
    "CREATE TABLE IF NOT EXISTS rollout_reports_schema (version INTEGER NOT NULL)",
)


@dataclass(frozen=True, slots=True)
class ViolationCount:
    """Reports of one violation within one hour, ready to add to the store."""

    environment: str
    policy: str
    stage: str
    disposition: str
    directive: str
    blocked: str
    document: str
    origin: str
    source: str
    hour: int
    count: int
    first_seen: float
    last_seen: float
    sample: str


@dataclass(frozen=True, slots=True)
class ViewCount:
    """Page views under one policy within one hour, ready to add to the store."""

    environment: str
    policy: str
    stage: str
    hour: int
    count: int
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class Row:
    """One violation as read back: summed over the window's hours, stages and dispositions."""

    directive: str
    blocked: str
    document: str
    origin: str
    source: str
    count: int
    first_seen: float
    last_seen: float
    sample: str


class Store(Protocol):
    """What the writer and the readers need of a store."""

    def add(self, violations: Sequence[ViolationCount], views: Sequence[ViewCount]) -> None:
        """Add counts in one transaction."""

    def rows(self, environment: str, policies: Collection[str], since: float) -> list[Row]:
        """The violations of these policies last seen at or after `since`."""

    def page_views(self, environment: str, policies: Collection[str], since: float) -> int:
        """Page views under these policies in hours last seen at or after `since`."""

    def prune(self, before: float) -> int:
        """Forget hours last seen before `before`; how many rows went."""

    def close(self) -> None:
        """Release the connection."""


class StoreError(InputError):
    """The report store cannot be opened or read; the message names it."""


def default_location(settings_path: str | os.PathLike[str]) -> Path:
    """`stages/<env>.reports.sqlite3` for the stage file `stages/<env>.toml`."""
    path = Path(settings_path)
    return path.with_name(path.stem + SUFFIX)


def is_postgres(location: str | os.PathLike[str]) -> bool:
    """Whether a store location is a PostgreSQL URL rather than an SQLite file."""
    return str(location).startswith(("postgresql://", "postgres://"))


def open_store(location: str | os.PathLike[str], *, create: bool = True) -> Store:
    """The store at location: a postgresql:// URL, or an SQLite file path.

    create=False (readers): a missing SQLite file is an empty store, and none is made.
    """
    if is_postgres(location):
        from rollout.reports.postgres import PostgresStore

        return PostgresStore(str(location), create=create)
    path = Path(location)
    if not create and not path.exists():
        return EmptyStore()
    return SqliteStore(path, create=create)


class EmptyStore:
    """No reports yet: the SQLite file has not been written by any app process."""

    def add(self, violations: Sequence[ViolationCount], views: Sequence[ViewCount]) -> None:
        raise AssertionError("an empty store is for reading")  # pragma: no cover

    def rows(self, environment: str, policies: Collection[str], since: float) -> list[Row]:
        return []

    def page_views(self, environment: str, policies: Collection[str], since: float) -> int:
        return 0

    def prune(self, before: float) -> int:
        return 0

    def close(self) -> None:
        pass


class SqlStore:
    """The queries both databases share; subclasses connect and name their dialect."""

    placeholder = "?"
    least, greatest = "min", "max"
    conn: Any
    name: str

    def _upserts(self) -> tuple[str, str]:
        p = self.placeholder
        vcols = (*VIOLATION_KEY, "count", "first_seen", "last_seen", "sample")
        violations = (
            f"INSERT INTO csp_violations ({', '.join(vcols)}) "
            f"VALUES ({', '.join([p] * len(vcols))}) "
            f"ON CONFLICT ({', '.join(VIOLATION_KEY)}) DO UPDATE SET "
            "count = csp_violations.count + excluded.count, "
            f"first_seen = {self.least}(csp_violations.first_seen, excluded.first_seen), "
            f"last_seen = {self.greatest}(csp_violations.last_seen, excluded.last_seen), "
            "sample = CASE WHEN csp_violations.sample = '' THEN excluded.sample "
            "ELSE csp_violations.sample END"
        )
        pcols = (*VIEW_KEY, "count", "first_seen", "last_seen")
        views = (
            f"INSERT INTO csp_page_views ({', '.join(pcols)}) "
            f"VALUES ({', '.join([p] * len(pcols))}) "
            f"ON CONFLICT ({', '.join(VIEW_KEY)}) DO UPDATE SET "
            "count = csp_page_views.count + excluded.count, "
            f"first_seen = {self.least}(csp_page_views.first_seen, excluded.first_seen), "
            f"last_seen = {self.greatest}(csp_page_views.last_seen, excluded.last_seen)"
        )
        return violations, views

    @staticmethod
    def _violation_params(v: ViolationCount) -> tuple[object, ...]:
        return (
            v.environment, v.policy, v.stage, v.disposition, v.directive, v.blocked,
            v.document, v.origin, v.source, v.hour, v.count, v.first_seen, v.last_seen,
            v.sample,
        )  # fmt: skip

    @staticmethod
    def _view_params(v: ViewCount) -> tuple[object, ...]:
        return (
            v.environment, v.policy, v.stage, v.hour, v.count, v.first_seen, v.last_seen
        )  # fmt: skip

    def _in(self, policies: Collection[str]) -> str:
        return ", ".join([self.placeholder] * len(policies))

    def _select_rows(self, environment: str, policies: Collection[str], since: float) -> Any:
        if not policies:
            return []
        p = self.placeholder
        query = (
            "SELECT directive, blocked, document, origin, source, SUM(count), "
            "MIN(first_seen), MAX(last_seen), MAX(sample) FROM csp_violations "
            f"WHERE environment = {p} AND policy IN ({self._in(policies)}) "
            f"AND last_seen >= {p} "
            "GROUP BY directive, blocked, document, origin, source"
        )
        return self._query(query, (environment, *policies, since))

    def rows(self, environment: str, policies: Collection[str], since: float) -> list[Row]:
        return [
            Row(str(d), str(b), str(doc), str(o), str(s), int(c), float(f), float(last), str(sm))
            for d, b, doc, o, s, c, f, last, sm in self._select_rows(environment, policies, since)
        ]

    def page_views(self, environment: str, policies: Collection[str], since: float) -> int:
        if not policies:
            return 0
        p = self.placeholder
        query = (
            "SELECT COALESCE(SUM(count), 0) FROM csp_page_views "
            f"WHERE environment = {p} AND policy IN ({self._in(policies)}) "
            f"AND last_seen >= {p}"
        )
        found = self._query(query, (environment, *policies, since))
        return int(found[0][0]) if found else 0

    def _query(self, query: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        raise NotImplementedError  # pragma: no cover


class SqliteStore(SqlStore):
    """Reports in one SQLite file, WAL mode: several processes write, readers never block."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.name = str(path)
        self.path = path
        try:
            self.conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            if create:
                # WAL: readers and the one writer at a time never wait for each other.
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                with self._transaction():
                    for statement in DDL:
                        self.conn.execute(statement)
                    mark_version(self.conn, "?", self.name)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the report store: {exc}") from None
        self._lock = threading.Lock()

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def add(self, violations: Sequence[ViolationCount], views: Sequence[ViewCount]) -> None:
        upsert_violations, upsert_views = self._upserts()
        with self._lock, self._transaction():
            self.conn.executemany(upsert_violations, map(self._violation_params, violations))
            self.conn.executemany(upsert_views, map(self._view_params, views))

    def prune(self, before: float) -> int:
        with self._lock, self._transaction():
            gone = self.conn.execute("DELETE FROM csp_violations WHERE last_seen < ?", (before,))
            views = self.conn.execute("DELETE FROM csp_page_views WHERE last_seen < ?", (before,))
            return int(gone.rowcount) + int(views.rowcount)

    def _query(self, query: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return list(self.conn.execute(query, params))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []  # created by a writer that has not stored anything yet
            raise StoreError(f"{self.name}: cannot read the report store: {exc}") from None
        except sqlite3.Error as exc:
            raise StoreError(f"{self.name}: cannot read the report store: {exc}") from None

    def close(self) -> None:
        self.conn.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the write lock up front, so two
    writers wait on the busy timeout instead of deadlocking on an upgrade."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def mark_version(conn: Any, placeholder: str, name: str) -> None:
    """Record the schema version in a new store; refuse one a newer rollout wrote."""
    found = [int(v) for (v,) in conn.execute("SELECT version FROM rollout_reports_schema")]
    if not found:
        conn.execute(
            f"INSERT INTO rollout_reports_schema (version) VALUES ({placeholder})",
            (SCHEMA_VERSION,),
        )
    elif max(found) > SCHEMA_VERSION:
        raise StoreError(f"{name}: written by a newer rollout (schema {max(found)}); upgrade")
