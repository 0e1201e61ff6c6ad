"""The standalone report app under uvicorn: a report host of its own, CORS for the
Reporting API, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from rollout.reports.app import create_app
from rollout.reports.fingerprint import policy_id
from rollout.reports.store import open_store
from tests.reports.support import Served

RO = "default-src 'self'; report-uri https://csp.example.test/report; report-to rollout-csp"
STAGE_FILE = f"""\
environment = "production"
stage = 2
name = "hsts-1h"
[edge]
"content-security-policy-report-only" = "{RO}"
"strict-transport-security" = "max-age=3600"
"""


def test_the_standalone_app_stores_reports_for_any_host(tmp_path: Path) -> None:
    """POSTs to the report path are stored whatever the Host; the CORS preflight a browser
    sends before a cross-origin Reporting API upload is answered; the rest is 404."""
    stage = tmp_path / "production.toml"
    stage.write_text(STAGE_FILE)
    app = create_app(stage)
    body = json.dumps(
        [{"type": "csp-violation", "url": "https://www.example.test/",
          "body": {"documentURL": "https://www.example.test/", "blockedURL": "eval",
                   "effectiveDirective": "script-src", "originalPolicy": RO}}]
    ).encode()  # fmt: skip
    with Served(app, lifespan="on") as server:
        preflight = httpx.options(
            f"{server.url}/report",
            headers={"origin": "https://www.example.test", "access-control-request-method": "POST"},
            timeout=10,
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "content-type" in preflight.headers["access-control-allow-headers"]
        posted = httpx.post(
            f"{server.url}/report",
            content=body,
            headers={"content-type": "application/reports+json", "host": "anything.test"},
            timeout=10,
        )
        assert posted.status_code == 204
        assert httpx.get(f"{server.url}/report", timeout=10).status_code == 404
        assert httpx.post(f"{server.url}/other", content=body, timeout=10).status_code == 404
    # lifespan shutdown wrote what was queued
    store = open_store(tmp_path / "production.reports.sqlite3", create=False)
    [row] = store.rows("production", [policy_id(RO)], 0.0)
    assert (row.directive, row.blocked, row.origin) == (
        "script-src", "eval", "https://www.example.test",
    )  # fmt: skip
