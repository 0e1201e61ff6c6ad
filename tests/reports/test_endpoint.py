"""The report endpoint in the ASGI middleware, under uvicorn: both formats, hostile bodies,
floods, page views, and a store that blocks without the app's requests waiting on it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rollout.middleware.asgi import SecurityHeaders
from rollout.reports.fingerprint import policy_id
from rollout.reports.limits import Limits, RateLimiter
from rollout.reports.store import open_store
from tests.conftest import Result
from tests.reports.support import Served

RO = "default-src 'self'; report-uri /csp-report; report-to rollout-csp"
STAGE_FILE = f"""\
environment = "staging"
stage = 1
name = "hsts-5m"
updated = "2026-11-21T23:59:00Z"

[app]
"strict-transport-security" = "max-age=300"
"content-security-policy-report-only" = "{RO}"
"reporting-endpoints" = 'rollout-csp="/csp-report"'

[edge]
"""
PAGE = b"<!doctype html><title>page</title>"


async def site(scope: Any, receive: Any, send: Any) -> None:
    """The app: an HTML page at /, JSON at /api, a 404 elsewhere; echoes POST sizes."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    path = scope["path"]
    if path == "/":
        status, kind, out = 200, b"text/html; charset=utf-8", PAGE
    elif path == "/api":
        status, kind, out = 200, b"application/json", b"{}"
    else:
        status, kind, out = 404, b"text/plain", f"app saw {len(body)} bytes".encode()
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", kind)]}
    )
    await send({"type": "http.response.body", "body": out})


@pytest.fixture
def stage_file(tmp_path: Path) -> Path:
    """A stage file at stage 1 whose report-only CSP reports to /csp-report."""
    path = tmp_path / "staging.toml"
    path.write_text(STAGE_FILE)
    return path


@pytest.fixture
def served(stage_file: Path) -> Iterator[tuple[Served, SecurityHeaders]]:
    """The site under uvicorn, wrapped in the middleware (127.0.0.1 a trusted proxy)."""
    app = SecurityHeaders(site, settings=stage_file, trusted_proxies=["127.0.0.1"])
    with Served(app) as server:
        yield server, app


def report(blocked: str = "https://cdn.example.test/x.js", **extra: object) -> bytes:
    """A legacy report of the stage's policy."""
    body = {
        "document-uri": "https://shop.example.test/",
        "effective-directive": "script-src-elem",
        "blocked-uri": blocked,
        "original-policy": RO,
        "disposition": "report",
        **extra,
    }
    return json.dumps({"csp-report": body}).encode()


def post(url: str, body: bytes, kind: str = "application/csp-report", **headers: str) -> int:
    """POST a body to the report path; the status."""
    response = httpx.post(
        f"{url}/csp-report", content=body, headers={"content-type": kind, **headers}, timeout=10
    )
    assert response.status_code < 500, response.text
    return response.status_code


def stored(app: SecurityHeaders, stage_file: Path) -> list[Any]:
    """What the store holds for the stage's policy, once the app's writer has written."""
    assert app.reports.collector.flush()
    store = open_store(stage_file.with_name("staging.reports.sqlite3"), create=False)
    return store.rows("staging", [policy_id(RO)], 0.0)


def test_both_formats_are_stored_and_answered_204(
    served: tuple[Served, SecurityHeaders], stage_file: Path
) -> None:
    """A legacy report and a Reporting API batch are answered 204 and kept, deduplicated."""
    server, app = served
    assert post(server.url, report()) == 204
    batch = [{"type": "csp-violation", "url": "https://shop.example.test/",
              "body": {"documentURL": "https://shop.example.test/", "effectiveDirective":
                       "script-src-elem", "blockedURL": "https://cdn.example.test/y.js",
                       "originalPolicy": RO, "disposition": "report"}}] * 3  # fmt: skip
    assert post(server.url, json.dumps(batch).encode(), "application/reports+json") == 204
    [row] = stored(app, stage_file)
    assert (row.directive, row.blocked, row.document, row.count) == (
        "script-src-elem", "https://cdn.example.test", "/", 4,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "kind", "status"),
    [
        (b"{nope", "application/csp-report", 400),
        (b'{"csp-report": {"document-uri": "https://a.test/"}}', "application/csp-report", 400),
        (b"[" * 50000, "application/reports+json", 400),
        (report(), "text/plain", 415),
        (report(), "application/x-www-form-urlencoded", 415),
        (b"x" * 70000, "application/csp-report", 413),
    ],
    ids=["bad-json", "no-directive", "deep-nesting", "text-plain", "form", "oversized"],
)
def test_hostile_bodies_get_a_4xx_and_nothing_is_stored(
    served: tuple[Served, SecurityHeaders], stage_file: Path, body: bytes, kind: str, status: int
) -> None:
    """Malformed, wrongly typed and oversized bodies are refused; the store stays empty."""
    server, app = served
    assert post(server.url, body, kind) == status
    assert stored(app, stage_file) == []


def test_an_oversized_body_without_length_is_cut_off_at_the_cap(
    served: tuple[Served, SecurityHeaders], stage_file: Path
) -> None:
    """A chunked upload (no Content-Length) is refused 413 once it passes the cap."""
    server, app = served

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 10000

    response = httpx.post(
        f"{server.url}/csp-report",
        content=chunks(),
        headers={"content-type": "application/csp-report"},
        timeout=10,
    )
    assert response.status_code == 413
    assert stored(app, stage_file) == []


def test_a_flood_from_one_client_gets_429_and_others_still_get_through(
    served: tuple[Served, SecurityHeaders],
) -> None:
    """Past its burst one client is answered 429; another client (X-Forwarded-For from the
    trusted proxy) and the app's own pages are unaffected."""
    server, app = served
    app.reports.limiter = RateLimiter(Limits(burst=60, per_second=0.0))  # no refill mid-test
    flood = {"x-forwarded-for": "198.51.100.7"}
    statuses = [post(server.url, report(), **flood) for _ in range(90)]
    assert statuses == [204] * 60 + [429] * 30
    assert post(server.url, report(), **{"x-forwarded-for": "198.51.100.8"}) == 204
    assert httpx.get(f"{server.url}/", timeout=10).status_code == 200
    assert app.reports.stats()["429"] == statuses.count(429)


def test_megabyte_urls_and_control_characters_are_stored_tamed(
    served: tuple[Served, SecurityHeaders], stage_file: Path
) -> None:
    """A report with a near-cap URL and control characters is kept as an origin, a short
    path and the raw sample, never as the URL it brought."""
    server, app = served
    body = {
        "document-uri": "https://shop.example.test/" + "p" * 60000,
        "effective-directive": "script-src-elem",
        "blocked-uri": "inline",
        "script-sample": "\x1b]0;pwned\x07\r\nX: y",
        "original-policy": RO,
    }
    assert post(server.url, json.dumps({"csp-report": body}).encode()) == 204
    [row] = stored(app, stage_file)
    assert len(row.document) == 256
    assert row.sample == "\x1b]0;pwned\x07\r\nX: y"


def test_random_bytes_never_get_a_5xx(served: tuple[Served, SecurityHeaders]) -> None:
    """Whatever bytes arrive with either content type, the answer is a 2xx or a 4xx."""
    import random

    server, _ = served
    rng = random.Random(11)
    for i in range(40):
        size = rng.choice([0, 1, 10, 1000, 60000])
        body = bytes(rng.randrange(256) for _ in range(size))
        kind = ["application/csp-report", "application/reports+json"][i % 2]
        assert post(server.url, body, kind, **{"x-forwarded-for": f"10.0.0.{i}"}) in (400, 204)


def test_the_app_keeps_other_posts_and_routes(served: tuple[Served, SecurityHeaders]) -> None:
    """Only POSTs to the report path are the endpoint's: other paths and methods reach the
    app, with the stage's headers."""
    server, _ = served
    other = httpx.post(f"{server.url}/elsewhere", content=b"abc", timeout=10)
    assert other.text == "app saw 3 bytes"
    got = httpx.get(f"{server.url}/csp-report", timeout=10)
    assert got.status_code == 404 and got.text == "app saw 0 bytes"
    page = httpx.get(f"{server.url}/", timeout=10)
    assert page.headers["content-security-policy-report-only"] == RO
    assert page.headers["reporting-endpoints"] == 'rollout-csp="/csp-report"'


def test_page_views_are_browser_navigations_to_html_pages(
    served: tuple[Served, SecurityHeaders], stage_file: Path
) -> None:
    """A navigation to an HTML page counts; an API call, a 404, a HEAD and a probe without
    Sec-Fetch-Dest (rollout verify, curl) do not."""
    server, app = served
    nav = {"sec-fetch-dest": "document"}
    for path in ("/", "/", "/api", "/missing"):
        httpx.get(f"{server.url}{path}", headers=nav, timeout=10)
    httpx.head(f"{server.url}/", headers=nav, timeout=10)
    httpx.get(f"{server.url}/", timeout=10)
    httpx.get(f"{server.url}/", headers={"sec-fetch-dest": "image"}, timeout=10)
    assert app.reports.collector.flush()
    store = open_store(stage_file.with_name("staging.reports.sqlite3"), create=False)
    assert store.page_views("staging", [policy_id(RO)], 0.0) == 2


def test_a_report_uri_on_another_host_is_not_answered_here(tmp_path: Path) -> None:
    """When the report URI names another host, a POST to its path here reaches the app."""
    path = tmp_path / "staging.toml"
    path.write_text(
        STAGE_FILE.replace(
            "report-uri /csp-report", "report-uri https://csp.example.test/csp-report"
        )
    )
    app = SecurityHeaders(site, settings=path)
    with Served(app) as server:
        response = httpx.post(f"{server.url}/csp-report", content=report(), timeout=10)
        assert response.text.startswith("app saw")
        answered = httpx.post(
            f"{server.url}/csp-report", content=report(),
            headers={"host": "csp.example.test", "content-type": "application/csp-report"},
            timeout=10,
        )  # fmt: skip
        assert answered.status_code == 204


def test_a_locked_store_never_holds_up_requests(
    served: tuple[Served, SecurityHeaders], stage_file: Path
) -> None:
    """While another process holds the SQLite file's write lock, reports are still answered
    and pages still served (the write waits in its own thread); once the lock goes, the
    reports are written."""
    server, app = served
    assert post(server.url, report()) == 204
    assert app.reports.collector.flush()  # the file and its tables exist
    locker = sqlite3.connect(stage_file.with_name("staging.reports.sqlite3"), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        app.reports.collector._wake.set()
        for i in range(20):
            assert post(server.url, report(f"https://cdn{i}.example.test/")) == 204
            page = httpx.get(f"{server.url}/", timeout=10)
            assert page.status_code == 200
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    rows = stored(app, stage_file)
    assert len(rows) == 21


def test_the_rate_limiter_refills_per_client() -> None:
    """A client's burst refills at the rate; clients are counted apart, the least recent
    forgotten past the bound."""
    limiter = RateLimiter(Limits(burst=2, per_second=1.0, max_clients=2))
    assert [limiter.allow("a", now=0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("a", now=1.0) and not limiter.allow("a", now=1.0)
    assert limiter.allow("b", now=1.0)
    assert limiter.allow("c", now=1.0)  # "a" is forgotten: a fresh burst
    assert limiter.allow("a", now=1.0)


def test_a_postgresql_store_end_to_end(
    tmp_path: Path, postgres_url: str, rollout: Callable[..., Result]
) -> None:
    """The middleware writes to a real PostgreSQL server named by reports_store, and
    `rollout reports` reads it through the plan's reports-store."""
    from rollout import ladder, store
    from rollout.plan import load_plan

    folder = tmp_path / "stages"
    folder.mkdir()
    plan_path = folder / "plan.toml"
    plan_path.write_text(
        "[policy]\ncontent-security-policy = \"default-src 'self'\"\n"
        'csp-report-uri = "/csp-report"\n[environments.staging]\n'
        f'urls = ["https://shop.example.test/"]\nreports-store = "{postgres_url}"\n'
    )
    plan = load_plan(plan_path)
    store.write_settings(plan, ladder.settings_for(plan, "staging", 1))
    app = SecurityHeaders(site, settings=folder / "staging.toml", reports_store=postgres_url)
    live = store.read_settings(plan, "staging")
    assert live is not None
    policy = live.app["content-security-policy-report-only"]
    body = json.dumps(
        {"csp-report": {"document-uri": "https://shop.example.test/", "blocked-uri": "eval",
                        "effective-directive": "script-src", "original-policy": policy}}
    ).encode()  # fmt: skip
    with Served(app) as server:
        assert post(server.url, body) == 204
        httpx.get(f"{server.url}/", headers={"sec-fetch-dest": "document"}, timeout=10)
    assert app.reports.collector.flush()
    assert not (folder / "staging.reports.sqlite3").exists()
    out = json.loads(rollout("--plan", str(plan_path), "reports", "staging", "--json").out)
    assert [(v["directive"], v["blocked"], v["count"]) for v in out["violations"]] == [
        ("script-src", "eval", 1)
    ]
    assert out["page_views"] == 1
