"""verify against real loopback servers: right spellings pass, each wrong one fails.

Loopback only (the stdlib-based RawServer with trustme TLS), so it runs in the fast suite.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from rollout.checks import FINDINGS
from rollout.probe import ConnectTo, ProbeOptions
from rollout.settings import StageSettings
from rollout.verify import Report, verify
from tests.judge_support import API, WWW, Env, Site
from tests.servers import (
    RawServer,
    Reply,
    redirect,
    refused_port,
    silent_server,
    tls_material,
)

REPORT_ONLY = "default-src 'self'; object-src 'none'; report-uri https://csp.example.test/r"
APP = {
    "strict-transport-security": "max-age=86400",
    "content-security-policy-report-only": REPORT_ONLY,
    "permissions-policy": "geolocation=(), camera=()",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
}
EDGE = {"x-content-type-options": "nosniff"}
STAGE3 = StageSettings("staging", 3, "hsts-1d", APP, EDGE)
GOOD = [(name.title(), value) for name, value in {**APP, **EDGE}.items()]


@pytest.fixture
def site() -> Iterator[Site]:
    """A site whose pages, 404s and http redirects all send the stage-3 headers right."""
    tls = tls_material().server
    servers = Site(
        RawServer(tls=tls, routes={"/": Reply(headers=GOOD)}, fallback=Reply(404, GOOD)),
        RawServer(fallback=redirect(f"https://{WWW}/")),
        RawServer(tls=tls, fallback=Reply(200, GOOD)),
        RawServer(fallback=redirect(f"https://{API}/", 308)),
    )
    for server in (servers.https, servers.http, servers.api_https, servers.api_http):
        server.start()
    yield servers
    for server in (servers.https, servers.http, servers.api_https, servers.api_http):
        server.stop()


def run(env: Env, expected: StageSettings = STAGE3, **kw: object) -> Report:
    """verify with a short timeout."""
    return verify(env, expected, options=ProbeOptions(timeout=5.0), **kw)  # type: ignore[arg-type]


def failed(report: Report) -> set[tuple[str, str, str | None]]:
    """(id, probe, header) of every failed check."""
    return {(c.id, c.probe, c.header) for c in report.failures}


def warned(report: Report) -> set[str]:
    """Ids of the warnings."""
    return {c.id for c in report.warnings}


def replace_header(
    name: str,
    value: str | None,
    base: Sequence[tuple[str, str]] = GOOD,
) -> list[tuple[str, str]]:
    """GOOD with one header's line replaced (or dropped when value is None)."""
    out = [(n, v) for n, v in base if n.lower() != name]
    return out if value is None else [*out, (name, value)]


def test_a_right_site_verifies(site: Site) -> None:
    """Every probe answers right: the report is ok and lists every check, passed ones too."""
    report = run(site.env())
    assert report.ok, report.failures
    probes = {c.probe for c in report.checks}
    assert probes == {"page", "404", "http"}
    doc = report.to_json()
    assert doc["environment"] == "staging" and doc["stage"] == 3 and doc["ok"] is True
    checks = doc["checks"]
    assert isinstance(checks, list)
    assert {"probe", "url", "header", "ok", "severity", "expected", "actual", "message"} <= set(
        checks[0]
    )
    hsts = next(c for c in checks if c["header"] == "strict-transport-security")
    assert hsts["actual"] == ["max-age=86400"] and hsts["ok"] is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRICT-TRANSPORT-SECURITY", 'MAX-AGE="86400"'),
        ("strict-transport-security", "  max-age = 86400 ;  "),
        (
            "Content-Security-Policy-Report-Only",
            "object-src 'none';report-uri https://csp.example.test/r;  default-src 'self'",
        ),
        ("permissions-policy", "camera=(),   geolocation=()"),
        ("X-FRAME-OPTIONS", "deny"),
        ("x-content-type-options", "NOSNIFF"),
    ],
)
def test_semantically_equal_spellings_pass(site: Site, name: str, value: str) -> None:
    """A value written differently but meaning the same passes."""
    site.page(replace_header(name.lower(), value))
    report = run(site.env())
    assert report.ok, [c.message for c in report.failures]


@pytest.mark.parametrize(
    ("headers", "finding", "header"),
    [
        (
            replace_header("strict-transport-security", None),
            "hsts.E001",
            "strict-transport-security",
        ),
        (
            replace_header("strict-transport-security", "max-age=300"),
            "hsts.E002",
            "strict-transport-security",
        ),
        (
            replace_header("strict-transport-security", "max-age=86400; max-age=86400"),
            "hsts.E002",
            "strict-transport-security",
        ),
        ([*GOOD, ("x-frame-options", "DENY")], "header.E002", "x-frame-options"),
        (replace_header("referrer-policy", None), "header.E001", "referrer-policy"),
        (replace_header("x-frame-options", "SAMEORIGIN"), "header.E003", "x-frame-options"),
        (
            replace_header("permissions-policy", "geolocation=()"),
            "header.E003",
            "permissions-policy",
        ),
        (
            replace_header("content-security-policy-report-only", "default-src 'self'"),
            "header.E003",
            "content-security-policy-report-only",
        ),
        (
            [*GOOD, ("Content-Security-Policy", "default-src 'self'")],
            "csp.E001",
            "content-security-policy",
        ),
        (replace_header("x-content-type-options", None), "header.E001", "x-content-type-options"),
    ],
)
def test_each_wrong_page_fails_naming_header_and_probe(
    site: Site, headers: list[tuple[str, str]], finding: str, header: str
) -> None:
    """A wrong page fails with its finding id, header and the page probe."""
    site.page(headers)
    report = run(site.env())
    assert not report.ok
    assert (finding, "page", header) in failed(report)
    check = next(c for c in report.failures if c.id == finding)
    assert check.url == f"https://{WWW}/" and check.message


def test_enforcing_stage_rejects_report_only_and_two_policies(site: Site) -> None:
    """At an enforcing stage a report-only header fails, and so does a second policy."""
    app = {k: v for k, v in APP.items() if "report-only" not in k}
    app["content-security-policy"] = "default-src 'self'"
    stage = StageSettings("staging", 4, "hsts-1w", app, EDGE)
    base = replace_header("content-security-policy-report-only", None)
    site.page(
        [
            *base,
            ("Content-Security-Policy", "default-src 'self'"),
            ("Content-Security-Policy-Report-Only", "default-src 'self'"),
        ]
    )
    assert ("csp.E002", "page", "content-security-policy-report-only") in failed(
        run(site.env(), stage)
    )
    site.page(
        [
            *base,
            ("Content-Security-Policy", "default-src 'self'"),
            ("content-security-policy", "default-src 'none'"),
        ]
    )
    assert ("csp.E003", "page", "content-security-policy") in failed(run(site.env(), stage))


def test_404_probe_must_answer_404_with_the_headers(site: Site) -> None:
    """The 404 probe fails when it gets 200, and when it lacks a header."""
    site.https.fallback = Reply(200, GOOD)
    assert ("notfound.E001", "404", None) in failed(run(site.env()))
    site.https.fallback = Reply(404, replace_header("x-content-type-options", None))
    report = run(site.env())
    assert ("header.E001", "404", "x-content-type-options") in failed(report)
    probes = [p for p, _ in site.https.requests if p.startswith("/rollout-404-probe-")]
    assert len(probes) == 2 and len(set(probes)) == 2 and len(probes[0]) > 40


@pytest.mark.parametrize(
    ("reply", "ok"),
    [
        (redirect(f"https://{WWW}/"), True),
        (redirect(f"https://{WWW}/x", 308), True),
        (redirect(f"http://{WWW}/"), False),
        (redirect("https://evil.example.test/"), False),
        (redirect(f"https://{WWW}/", 303), True),
        (Reply(200, GOOD), False),
    ],
    ids=["301", "308", "to-http", "other-host", "303", "200"],
)
def test_http_probe_redirects_to_https_same_host(site: Site, reply: Reply, ok: bool) -> None:
    """http:// must answer a redirect (301, 302, 303, 307, 308) to https:// on the same host."""
    site.http.fallback = reply
    report = run(site.env())
    assert report.ok is ok
    if not ok:
        assert ("redirect.E001", "http", None) in failed(report)


def test_http_probe_says_why_a_redirect_fails(site: Site) -> None:
    """A 300 to the right place is no redirect; another host is blamed on its target."""
    site.http.fallback = redirect(f"https://{WWW}/", 300)
    (bad,) = [c for c in run(site.env()).failures if c.probe == "http"]
    assert bad.message == "answers 300 without a redirect to https"
    site.http.fallback = redirect("https://evil.example.test/")
    (bad,) = [c for c in run(site.env()).failures if c.probe == "http"]
    assert bad.message == f"redirects to https://evil.example.test/, not to https://{WWW}"


@pytest.mark.parametrize(
    ("status", "finding", "ok"), [(500, "page.E001", False), (404, "page.W001", True)]
)
def test_a_page_answering_an_error_is_flagged(
    site: Site, status: int, finding: str, ok: bool
) -> None:
    """A listed page answering 5xx fails even with the right headers; a 4xx warns."""
    site.https.routes["/"] = Reply(status, GOOD)
    report = run(site.env())
    assert report.ok is ok
    (flag,) = [c for c in report.checks if c.id == finding]
    assert (flag.probe, list(flag.actual), flag.message) == (
        "page",
        [str(status)],
        f"answers {status}",
    )


def test_redirects_followed_and_hops_need_hsts(site: Site) -> None:
    """Same-origin redirects are followed; an https hop without HSTS fails, loops fail."""
    site.https.routes["/old"] = redirect("/", 301, ("Strict-Transport-Security", "max-age=86400"))
    assert run(site.env("/old")).ok
    site.https.routes["/old"] = redirect("/")
    assert ("hsts.E001", "page", "strict-transport-security") in failed(run(site.env("/old")))
    site.https.routes["/a"] = redirect("/b", 302, *GOOD)
    site.https.routes["/b"] = redirect("/a", 302, *GOOD)
    assert ("redirect.E003", "page", None) in failed(run(site.env("/a")))
    site.https.routes["/away"] = redirect("https://elsewhere.example.test/", 302, *GOOD)
    assert ("redirect.E002", "page", None) in failed(run(site.env("/away")))


@pytest.mark.parametrize(
    ("extra", "finding"),
    [
        (("X-XSS-Protection", "1; mode=block"), "xss.W001"),
        (("Feature-Policy", "camera 'none'"), "fp.W001"),
        (("X-Frame-Options", "ALLOW-FROM https://a.example.test/"), "xfo.W001"),
    ],
)
def test_warnings_do_not_fail(site: Site, extra: tuple[str, str], finding: str) -> None:
    """Each warning DESIGN.md lists is reported without failing the report."""
    app = {k: v for k, v in APP.items() if k != extra[0].lower()}
    site.page([*replace_header(extra[0].lower(), None), extra])
    report = run(site.env(), StageSettings("staging", 3, "hsts-1d", app, EDGE))
    assert report.ok and finding in warned(report)


def test_hsts_warnings(site: Site) -> None:
    """HSTS over plain http, max-age above a year and report-only without reports warn."""
    site.http.fallback = redirect(
        f"https://{WWW}/", 301, ("Strict-Transport-Security", "max-age=1")
    )
    assert "hsts.W001" in warned(run(site.env()))
    app = {
        **APP,
        "strict-transport-security": "max-age=63072000",
        "content-security-policy-report-only": "default-src 'self'",
    }
    site.page([(k, v) for k, v in {**app, **EDGE}.items()])
    report = run(site.env(), StageSettings("staging", 3, "x", app, EDGE))
    assert {"hsts.W002", "csp.W001"} <= warned(report)


def test_stage_off_checks_only_edge_headers(site: Site) -> None:
    """At stage off only the edge-owned headers are expected."""
    site.page([("X-Content-Type-Options", "nosniff")])
    site.https.fallback = Reply(404, [("X-Content-Type-Options", "nosniff")])
    off = StageSettings("staging", None, "off", {}, EDGE)
    report = run(site.env(), off)
    assert report.ok and report.to_json()["stage"] == "off"
    assert {c.header for c in report.checks if c.header} == {"x-content-type-options"}


def test_subdomains_probed_from_include_subdomains(site: Site) -> None:
    """includeSubDomains brings subdomain probes; without it --subdomains does."""
    env = site.env(subdomains=[API])
    assert "subdomain" not in {c.probe for c in run(env).checks}
    assert "subdomain" in {c.probe for c in run(env, subdomains=True).checks}
    app = {**APP, "strict-transport-security": "max-age=2592000; includeSubDomains"}
    stage5 = StageSettings("staging", 5, "hsts-30d", app, EDGE)
    site.page([(k, v) for k, v in {**app, **EDGE}.items()])
    site.https.fallback = Reply(404, [(k, v) for k, v in {**app, **EDGE}.items()])
    report = run(env, stage5)
    assert report.ok, report.failures
    assert {c.probe for c in report.checks} >= {"subdomain"}
    site.api_http.fallback = Reply(200)
    assert ("subdomain.E002", "subdomain", None) in failed(run(env, stage5))


def test_subdomain_with_expired_certificate_fails(site: Site) -> None:
    """A subdomain whose certificate expired fails the subdomain probe, naming the URL."""
    with RawServer(tls=tls_material().expired) as bad:
        env = site.env(subdomains=[API])
        env.connect_to = [c for c in env.connect_to if (c.host, c.port) != (API, 443)]
        env.connect_to.append(ConnectTo(API, 443, "127.0.0.1", bad.port))
        report = run(env, subdomains=True)
    check = next(c for c in report.failures if c.id == "subdomain.E001")
    assert check.url == f"https://{API}/" and "expired" in check.message


def test_faults_fail_and_nothing_to_check_fails(site: Site) -> None:
    """A refused page fails as probe.E001; an environment without URLs fails as probe.E005."""
    with refused_port() as port:
        env = site.env()
        env.connect_to = [ConnectTo(WWW, 443, "127.0.0.1", port), *env.connect_to[1:]]
        report = run(env)
    assert ("probe.E001", "page", None) in failed(report)
    check = next(c for c in report.failures if c.id == "probe.E001")
    assert check.message.startswith(f"https://{WWW}/")
    empty = run(Env("staging", []))
    assert not empty.ok and empty.failures[0].id == "probe.E005"


def test_every_finding_id_is_well_formed() -> None:
    """Finding ids look like area.E001 / area.W001 and match their severity."""
    for fid, finding in FINDINGS.items():
        _area, code = fid.split(".")
        assert code[0] == ("E" if finding.severity == "error" else "W") and len(code) == 4


def test_every_finding_is_documented() -> None:
    """docs/findings.md lists every finding id in rollout.checks."""
    doc = (Path(__file__).parent.parent / "docs" / "findings.md").read_text()
    assert [fid for fid in FINDINGS if f"`{fid}`" not in doc] == []


@pytest.mark.parametrize(
    ("reply", "finding"),
    [
        (Reply(fault="hang"), "probe.E003"),
        (Reply(raw=b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), "probe.E004"),
        (Reply(fault="cut"), "probe.E004"),
        (Reply(fault="reset"), "probe.E004"),
    ],
    ids=["hang", "malformed", "cut", "reset"],
)
def test_page_faults_fail_with_a_reason(site: Site, reply: Reply, finding: str) -> None:
    """A page that hangs or breaks fails its check with one line naming the URL."""
    site.https.routes["/"] = reply
    report = verify(site.env(), STAGE3, options=ProbeOptions(timeout=0.5))
    check = next(c for c in report.failures if c.probe == "page")
    assert check.id == finding and check.message.startswith(f"https://{WWW}/: ")
    assert "\n" not in check.message


def test_silent_server_fails_without_hanging(site: Site) -> None:
    """An origin that accepts and never speaks fails as a timeout within --timeout."""
    with silent_server() as port:
        env = site.env()
        env.connect_to = [ConnectTo(WWW, 443, "127.0.0.1", port), *env.connect_to[1:]]
        report = verify(env, STAGE3, options=ProbeOptions(timeout=0.5))
    assert {c.id for c in report.failures if c.probe in ("page", "404")} == {"probe.E003"}
