"""A scripted visitor for `rollout demo`: it opens a page as a browser's navigation does
and, where the page's report-only CSP would block one of its scripts, posts the report
Chromium would post (Reporting API, `application/reports+json`).

It stands in for a browser so the demo needs none: it knows host sources, `'self'` and
`*` for scripts, nothing more. The real thing, headless Chromium against the same
servers, is in tests/browser.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

from rollout.demo.servers import LocalEnvironment
from rollout.names import CSP_RO, REPORTING_ENDPOINTS

USER_AGENT = "rollout-demo-visitor/1 (a stand-in for a browser)"


@dataclass
class Visit:
    """What one page visit saw and sent."""

    url: str
    status: int
    blocked: list[str] = field(default_factory=list)  # script URLs the policy blocks
    report_status: int | None = None  # the endpoint's answer to the report, if one went


def visit(local: LocalEnvironment, path: str, scripts: Sequence[str]) -> Visit:
    """Open https://HOST/path as a navigation; report the scripts its report-only CSP blocks."""
    url = f"https://{local.host}{path}"
    status, headers = _request(local, "GET", path, {"Sec-Fetch-Dest": "document"})
    seen = Visit(url, status)
    policy = headers.get(CSP_RO)
    if policy is None:
        return seen
    seen.blocked = [s for s in scripts if not _allows(policy, url, s)]
    endpoint = _endpoint(headers.get(REPORTING_ENDPOINTS, ""))
    if seen.blocked and endpoint:
        body = json.dumps([_report(url, script, policy) for script in seen.blocked])
        seen.report_status, _ = _request(
            local, "POST", endpoint, {"Content-Type": "application/reports+json"}, body
        )
    return seen


def _allows(policy: str, page: str, script: str) -> bool:
    from rollout.headers import csp
    from rollout.reports.advice import governing
    from rollout.reports.parse import url_origin

    parsed = csp.parse(policy).policies[0]
    directive = parsed.get(governing(parsed, "script-src-elem"))
    if directive is None:
        return True
    sources = {v.lower().rstrip("/") for v in directive.values}
    origin = url_origin(script)
    return (
        "*" in sources or origin in sources or ("'self'" in sources and origin == url_origin(page))
    )


def _endpoint(header: str) -> str:
    """The path in `rollout-csp="/csp-report"` (a relative URL: this origin)."""
    name, _, value = header.partition("=")
    path = value.strip().strip('"')
    return path if name.strip() and path.startswith("/") else ""


def _report(page: str, script: str, policy: str) -> dict[str, object]:
    return {
        "age": 0,
        "type": "csp-violation",
        "url": page,
        "user_agent": USER_AGENT,
        "body": {
            "documentURL": page,
            "blockedURL": script,
            "effectiveDirective": "script-src-elem",
            "originalPolicy": policy,
            "disposition": "report",
            "statusCode": 200,
            "sample": "",
            "sourceFile": page,
            "lineNumber": 2,
            "columnNumber": 1,
            "referrer": "",
        },
    }


class _Connection(http.client.HTTPSConnection):
    """HTTPS to the demo's edge by address, with SNI and certificate checks on the name."""

    def __init__(self, local: LocalEnvironment, context: ssl.SSLContext) -> None:
        super().__init__(local.host, 443, context=context, timeout=10)
        self._port_here = local.https_port

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self._port_here), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _request(
    local: LocalEnvironment, method: str, path: str, headers: dict[str, str], body: str = ""
) -> tuple[int, dict[str, str]]:
    context = ssl.create_default_context(cafile=str(local.ca_path))
    conn = _Connection(local, context)
    try:
        conn.request(method, path, body=body or None, headers={"User-Agent": USER_AGENT, **headers})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
