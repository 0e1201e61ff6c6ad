"""A site on loopback for the verify judgement tests: www and api over https and http.

`Site` holds four `RawServer`s reached through connect-to, as a plan's environment would
reach real servers; `Site.serve(stage)` makes every page, 404 and subdomain send exactly
the headers of a stage, so a test changes only the one response it is about.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rollout.checks import Check
from rollout.plan import Plan, parse_plan
from rollout.probe import ConnectTo, ProbeOptions
from rollout.settings import StageSettings
from rollout.verify import Report, verify
from tests.servers import RawServer, Reply, redirect, tls_material

WWW = "www.example.test"
API = "api.example.test"
REPORT_URI = "https://csp.example.test/r"
POLICY = "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"

# DESIGN.md's default ladder with every policy header, report-uri set so that no
# report-only stage draws csp.W001, and a subdomain for the includeSubDomains stages.
PLAN = f"""\
[policy]
content-security-policy = "{POLICY}"
permissions-policy = "geolocation=(), camera=(), microphone=()"
referrer-policy = "strict-origin-when-cross-origin"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
csp-report-uri = "{REPORT_URI}"

[ladder]
preload = true

[environments.staging]
urls = ["https://{WWW}/"]
subdomains = ["{API}"]
edge = ["x-content-type-options"]
"""


def plan() -> Plan:
    """The default ladder (with its preload stage) as a parsed plan."""
    return parse_plan(PLAN)


@dataclass
class Env:
    """The part of a plan environment verify reads."""

    name: str
    urls: Sequence[str]
    subdomains: Sequence[str] = ()
    connect_to: list[ConnectTo] = field(default_factory=list)
    resolve: Sequence[object] = ()
    cacert: Path | None = field(default_factory=lambda: tls_material().ca_path)


@dataclass
class Site:
    """www and api over https and http on loopback, reached through connect-to."""

    https: RawServer
    http: RawServer
    api_https: RawServer
    api_http: RawServer

    def env(self, *paths: str, subdomains: Sequence[str] = ()) -> Env:
        routes = [
            ConnectTo(WWW, 443, "127.0.0.1", self.https.port),
            ConnectTo(WWW, 80, "127.0.0.1", self.http.port),
            ConnectTo(API, 443, "127.0.0.1", self.api_https.port),
            ConnectTo(API, 80, "127.0.0.1", self.api_http.port),
        ]
        urls = [f"https://{WWW}{p}" for p in paths or ("/",)]
        return Env("staging", urls, subdomains, routes)

    def page(self, headers: Sequence[tuple[str, str]], path: str = "/") -> None:
        """Serve path (200) with exactly these header lines."""
        self.https.routes[path] = Reply(headers=headers)

    def serve(self, stage: StageSettings) -> list[tuple[str, str]]:
        """Every https answer of www and api sends exactly stage's headers; http redirects."""
        lines = lines_of(stage)
        self.https.routes = {"/": Reply(headers=lines)}
        self.https.fallback = Reply(404, lines)
        self.api_https.fallback = Reply(200, lines)
        self.http.fallback = redirect(f"https://{WWW}/")
        self.api_http.fallback = redirect(f"https://{API}/", 308)
        return lines

    def servers(self) -> tuple[RawServer, ...]:
        return (self.https, self.http, self.api_https, self.api_http)


def lines_of(stage: StageSettings) -> list[tuple[str, str]]:
    """A stage's headers as header lines, names as browsers' devtools show them."""
    return [(name.title(), value) for name, value in stage.headers().items()]


def start_site() -> Iterator[Site]:
    """Start the four servers (sending nothing until `serve`), yield, stop them."""
    tls = tls_material().server
    site = Site(RawServer(tls=tls), RawServer(), RawServer(tls=tls), RawServer())
    for server in site.servers():
        server.start()
    try:
        yield site
    finally:
        for server in site.servers():
            server.stop()


def run(env: Env, expected: StageSettings, **kw: object) -> Report:
    """verify with a short timeout."""
    return verify(env, expected, options=ProbeOptions(timeout=5.0), **kw)  # type: ignore[arg-type]


def findings(report: Report) -> set[tuple[str, str]]:
    """(id, probe) of every check that did not pass, warnings included."""
    return {(c.id, c.probe) for c in report.checks if not c.ok}


def not_passed(report: Report) -> list[Check]:
    """Every check that did not pass, warnings included."""
    return [c for c in report.checks if not c.ok]
