"""The collector: reports and page views taken off the request path, written by a thread.

A request that brings a report only parses it and appends it to an in-memory queue; a
page view only adds one to a counter. A daemon thread per process wakes about once a
second, folds what came into one row per violation and hour, and writes it in one
transaction. So no request ever waits on SQLite's locks, a PostgreSQL round trip or a
disk, whether the server is async (the event loop never blocks) or threaded.

The queue is bounded: while the store is unreachable the oldest counts are dropped
first, and the endpoint answers 429 rather than queue without end. A forked worker
starts its own thread; pending counts are written at exit.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import os
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rollout.reports.parse import CspReport
from rollout.reports.store import Store, ViewCount, ViolationCount, open_store

logger = logging.getLogger("rollout.reports")

INTERVAL = 1.0  # seconds between writes
RETENTION = 90 * 86400  # seconds: hours last seen earlier are pruned
_PRUNE_EVERY = 3600.0
_HOUR = 3600


@dataclass(frozen=True)
class Route:
    """What the servers send now, as the endpoint needs it: one per stage-file version."""

    environment: str
    stage: str  # the stage label: a number, or "off"
    path: str  # where reports are posted ("" when the report URI names no path here)
    host: str  # "" for a relative report URI; else the host[:port] it names, lower-case
    policies: tuple[tuple[str, str], ...]  # (disposition, header value): enforce, report

    @functools.cached_property
    def sent(self) -> frozenset[bytes]:
        """The policies' header values as bytes, to tell them from a route's own CSP."""
        return frozenset(value.encode("latin-1") for _, value in self.policies)

    def policy_for(self, disposition: str) -> str:
        """The header value a report of this disposition came from ("" when unknown)."""
        values = dict(self.policies)
        if disposition in values:
            return values[disposition]
        return values.get("report", values.get("enforce", "")) if not disposition else ""


class Collector:
    """Queues reports and counts page views for one store; a thread writes them."""

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        max_pending: int = 10000,
        interval: float = INTERVAL,
        opener: Callable[[str | os.PathLike[str]], Store] = open_store,
    ) -> None:
        self.location = location
        self.interval = interval
        self.max_pending = max_pending
        self._open = opener
        self._lock = threading.Lock()
        self._reset()
        self.stats: Counter[str] = Counter()  # answers by kind, for tests and benches
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(ref))
        atexit.register(_at_exit, ref)

    def _reset(self) -> None:
        self._pending: deque[tuple[Route, CspReport, float]] = deque()
        self._views: Counter[Route] = Counter()
        self._view_times: dict[Route, tuple[float, float]] = {}
        self._wake = threading.Event()
        self._cycle = threading.Condition(threading.Lock())
        self._asked = self._done = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._failing = ""
        self._carried: tuple[list[ViolationCount], list[ViewCount]] = ([], [])

    # the request side: no I/O, no waiting beyond a short lock -------------------------

    def submit(self, route: Route, reports: Sequence[CspReport]) -> bool:
        """Queue reports for writing; False when the queue is full (the store is behind)."""
        now = time.time()
        with self._lock:
            if len(self._pending) + len(reports) > self.max_pending:
                return False
            self._pending.extend((route, r, now) for r in reports)
        self._start()
        return True

    def view(self, route: Route) -> None:
        """Count one page view under the route's policies."""
        now = time.time()
        with self._lock:
            self._views[route] += 1
            first, _ = self._view_times.get(route, (now, now))
            self._view_times[route] = (first, now)
        self._start()

    # the writer side ---------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Have the writer take everything queued so far, waiting up to timeout; False on
        timeout. A write that fails is logged and retried on the next cycle."""
        with self._cycle:
            self._asked += 1
            target = self._asked
        self._start()
        self._wake.set()
        with self._cycle:
            return self._cycle.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is pending and stop the thread."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="rollout-reports", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        store: Store | None = None
        pruned = 0.0
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._cycle:
                asked = self._asked
            violations, views = self._take()
            if violations or views:
                try:
                    if store is None:
                        store = self._open(self.location)
                    store.add(violations, views)
                    if time.monotonic() - pruned > _PRUNE_EVERY:
                        store.prune(time.time() - RETENTION)
                        pruned = time.monotonic()
                    self._failing = ""
                except Exception as exc:  # the store's trouble never reaches a request
                    self._failed(exc, violations, views)
                    if store is not None:
                        _close_quietly(store)
                    store = None
            with self._cycle:
                self._done = max(self._done, asked)
                self._cycle.notify_all()
            if self._stopping:
                if store is not None:
                    _close_quietly(store)
                return

    def _take(self) -> tuple[list[ViolationCount], list[ViewCount]]:
        """Everything queued, folded into one count per violation and hour, after what
        a failed write left over."""
        with self._lock:
            pending, self._pending = self._pending, deque()
            views, self._views = self._views, Counter()
            times, self._view_times = self._view_times, {}
            carried, self._carried = self._carried, ([], [])
        return carried[0] + _fold(pending), carried[1] + _fold_views(views, times)

    def _failed(
        self, exc: Exception, violations: list[ViolationCount], views: list[ViewCount]
    ) -> None:
        why = f"{self.location}: reports not stored: {type(exc).__name__}: {exc}"
        if why != self._failing:  # once per kind of trouble, not once a second
            logger.error("%s; will retry", why)
            self._failing = why
        self.stats["write_failed"] += 1
        # Kept for the next try, up to the bound: the oldest counts go first.
        with self._lock:
            self._carried = (violations[-self.max_pending :], views[-self.max_pending :])


def _fold(pending: deque[tuple[Route, CspReport, float]]) -> list[ViolationCount]:
    from rollout.reports.fingerprint import policy_id  # the header grammars: off the request path

    rows: dict[tuple[str, ...], ViolationCount] = {}
    for route, report, when in pending:
        text = report.policy or route.policy_for(report.disposition)
        hour = int(when // _HOUR) * _HOUR
        seen = ViolationCount(
            route.environment, policy_id(text) if text else "", route.stage,
            report.disposition, report.directive, report.blocked, report.document,
            report.origin, report.source, hour, 1, when, when, report.sample,
        )  # fmt: skip
        key = (*_key(seen), str(hour))
        row = rows.get(key)
        rows[key] = (
            seen
            if row is None
            else dataclasses.replace(
                row, count=row.count + 1, last_seen=when, sample=row.sample or report.sample
            )
        )
    return list(rows.values())


def _key(v: ViolationCount) -> tuple[str, ...]:
    return (
        v.environment, v.policy, v.stage, v.disposition, v.directive, v.blocked, v.document,
        v.origin, v.source,
    )  # fmt: skip


def _fold_views(views: Counter[Route], times: dict[Route, tuple[float, float]]) -> list[ViewCount]:
    from rollout.reports.fingerprint import policy_ids

    out: list[ViewCount] = []
    for route, count in views.items():
        first, last = times[route]
        ids = {pid for _, value in route.policies for pid in policy_ids(value)}
        hour = int(last // _HOUR) * _HOUR
        out += [
            ViewCount(route.environment, pid, route.stage, hour, count, first, last)
            for pid in sorted(ids)
        ]
    return out


def _close_quietly(store: Store) -> None:
    try:
        store.close()
    except Exception:  # closing a broken connection may fail too; nothing to do
        logger.debug("closing the report store failed", exc_info=True)


def _after_fork(ref: weakref.ref[Collector]) -> None:
    collector = ref()
    if collector is not None:
        # The parent's thread does not exist here, and its locks may be held: start over.
        collector._lock = threading.Lock()
        collector._reset()


def _at_exit(ref: weakref.ref[Collector]) -> None:
    collector = ref()
    if collector is not None:
        collector.close()
