"""The collector: reports and views leave the request path; a failing store loses nothing
it can keep, and a full queue says so."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rollout.reports.parse import CspReport
from rollout.reports.store import open_store
from rollout.reports.writer import Collector, Route

RO = "default-src 'self'; report-uri /r"
ROUTE = Route("staging", "2", "/r", "", (("report", RO),))


def seen(blocked: str = "https://cdn.example.test", policy: str = RO) -> CspReport:
    """One parsed report of the route's policy."""
    return CspReport("img-src", blocked, "/", "https://a.test", "", "report", "", policy)


def test_a_store_that_cannot_open_is_retried_and_nothing_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While the store's folder is missing the counts wait (one error logged); once it
    exists they are written, the views too."""
    folder = tmp_path / "later"
    collector = Collector(folder / "staging.reports.sqlite3")
    with caplog.at_level(logging.ERROR, logger="rollout.reports"):
        assert collector.submit(ROUTE, [seen(), seen()])
        collector.view(ROUTE)
        assert collector.flush()
        assert collector.submit(ROUTE, [seen()])
        assert collector.flush()
    errors = [r for r in caplog.records if "reports not stored" in r.getMessage()]
    assert len(errors) == 1
    folder.mkdir()
    assert collector.flush()
    store = open_store(folder / "staging.reports.sqlite3", create=False)
    from rollout.reports.fingerprint import policy_id

    [row] = store.rows("staging", [policy_id(RO)], 0.0)
    assert row.count == 3
    assert store.page_views("staging", [policy_id(RO)], 0.0) == 1
    collector.close()


def test_a_full_queue_refuses_more(tmp_path: Path) -> None:
    """Past max_pending the collector refuses (the endpoint answers 429) until it writes."""
    collector = Collector(tmp_path / "s.sqlite3", max_pending=3, interval=3600)
    assert collector.submit(ROUTE, [seen(), seen(), seen()])
    assert not collector.submit(ROUTE, [seen()])
    assert collector.flush()
    assert collector.submit(ROUTE, [seen()])
    collector.close()


def test_reports_are_filed_under_the_policy_they_name(tmp_path: Path) -> None:
    """A report naming another policy (original-policy) is kept apart from the route's; one
    naming none is filed under the route's policy for its disposition."""
    from rollout.reports.fingerprint import policy_id

    where = tmp_path / "s.sqlite3"
    collector = Collector(where)
    other = "default-src 'none'; report-uri /r"
    collector.submit(ROUTE, [seen(), seen(policy=other), seen(policy="", blocked="eval")])
    assert collector.flush()
    store = open_store(where, create=False)
    mine = {r.blocked for r in store.rows("staging", [policy_id(RO)], 0.0)}
    assert mine == {"https://cdn.example.test", "eval"}
    assert [r.count for r in store.rows("staging", [policy_id(other)], 0.0)] == [1]
    collector.close()


def test_a_policy_id_ignores_order_case_and_where_reports_go() -> None:
    """Policies that allow the same things share an id; any change in what they allow
    gives a new one."""
    from rollout.reports.fingerprint import policy_id, policy_ids

    base = policy_id("default-src 'self'; img-src https://a.test")
    assert policy_id("IMG-SRC https://A.test;default-src 'SELF'; report-uri /x") == base
    assert policy_id("default-src 'self'; img-src https://a.test; report-to g") == base
    assert policy_id("default-src 'self'; img-src https://b.test") != base
    assert len(policy_ids("default-src 'self', img-src 'none'")) == 2
