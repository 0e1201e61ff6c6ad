"""The report store on PostgreSQL (psycopg 3), for app hosts that share one database.

`reports-store = "postgresql://db.example.test/rollout"` in the plan (the `rollout`
commands) and the same URL for the middlewares (`reports_store=` or
`ROLLOUT_REPORTS_STORE`). Keep the password out of both: libpq reads `~/.pgpass` and
`PGPASSWORD`. The tables are those of the SQLite store, created on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from rollout.reports.store import (
    DDL,
    SqlStore,
    StoreError,
    ViewCount,
    ViolationCount,
    mark_version,
)

CONNECT_TIMEOUT = 10  # seconds
_SCHEMA_LOCK = 0x726F6C6C  # "roll": serialises CREATE TABLE IF NOT EXISTS across hosts


class PostgresStore(SqlStore):
    """Reports in PostgreSQL tables; one connection, used by one thread at a time."""

    placeholder = "%s"
    least, greatest = "LEAST", "GREATEST"

    def __init__(self, url: str, *, create: bool = True) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "a postgresql:// report store needs psycopg: pip install 'rollout[postgres]'"
            ) from None
        self._psycopg = psycopg
        self.name = _redacted(url)
        self._lock = threading.Lock()
        try:
            self.conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True)
            if create:
                with self.conn.transaction():
                    # Two hosts creating the tables at once would race on the catalog.
                    self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    for statement in DDL:
                        self.conn.execute(statement)
                    mark_version(self.conn, "%s", self.name)
        except psycopg.Error as exc:
            raise StoreError(f"{self.name}: cannot open the report store: {_first(exc)}") from None

    def add(self, violations: Sequence[ViolationCount], views: Sequence[ViewCount]) -> None:
        upsert_violations, upsert_views = self._upserts()
        with self._lock, self.conn.transaction(), self.conn.cursor() as cur:
            if violations:
                cur.executemany(upsert_violations, [self._violation_params(v) for v in violations])
            if views:
                cur.executemany(upsert_views, [self._view_params(v) for v in views])

    def prune(self, before: float) -> int:
        with self._lock, self.conn.transaction():
            gone = self.conn.execute("DELETE FROM csp_violations WHERE last_seen < %s", (before,))
            views = self.conn.execute("DELETE FROM csp_page_views WHERE last_seen < %s", (before,))
            return int(gone.rowcount) + int(views.rowcount)

    def _query(self, query: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return list(self.conn.execute(query, params).fetchall())
        except self._psycopg.errors.UndefinedTable:
            return []  # no app has stored anything yet
        except self._psycopg.Error as exc:
            raise StoreError(f"{self.name}: cannot read the report store: {_first(exc)}") from None

    def close(self) -> None:
        self.conn.close()


def _redacted(url: str) -> str:
    """The URL as messages show it: never a password, should one have slipped in."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://…"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _first(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
