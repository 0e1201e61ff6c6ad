"""What verify decides, proven both ways on loopback servers: every correct stage passes
with no finding at all, and each finding comes alone, from the probe it belongs to."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from rollout import ladder
from rollout.checks import FINDINGS
from rollout.names import CSP, CSP_RO, HSTS
from rollout.probe import ConnectTo, ProbeOptions
from rollout.settings import StageSettings
from rollout.verify import verify
from tests.judge_support import (
    API,
    REPORT_URI,
    WWW,
    Site,
    findings,
    not_passed,
    plan,
    run,
    start_site,
)
from tests.servers import RawServer, Reply, redirect, refused_port, tls_material

STAGES = [None, *range(8)]


@pytest.fixture
def site() -> Iterator[Site]:
    """The loopback site, serving nothing until a test calls `serve`."""
    yield from start_site()


def stage(number: int | None) -> StageSettings:
    """The default ladder's stage (None is off), as the CLI would verify it."""
    return ladder.settings_for(plan(), "staging", number)


def with_headers(settings: StageSettings, **app: str | None) -> StageSettings:
    """settings with app-owned headers set (or dropped when None); names use '_' for '-'."""
    table = dict(settings.app)
    for key, value in app.items():
        name = key.replace("_", "-")
        table.pop(name, None)
        if value is not None:
            table[name] = value
    return dataclasses.replace(settings, app=table)


def swap(lines: list[tuple[str, str]], name: str, *values: str) -> list[tuple[str, str]]:
    """lines with every line of header name replaced by one line per value."""
    kept = [(n, v) for n, v in lines if n.lower() != name]
    return [*kept, *((name, v) for v in values)]


@pytest.mark.parametrize("number", STAGES, ids=[str(s) for s in STAGES])
def test_every_stage_served_right_passes_with_no_finding(site: Site, number: int | None) -> None:
    """Each stage of the default ladder, off to preload, served exactly: ok, and no finding."""
    expected = stage(number)
    site.serve(expected)
    env = site.env(subdomains=[API])
    report = run(env, expected)
    assert report.ok and not_passed(report) == []
    probes = {c.probe for c in report.checks}
    subdomains = number is not None and number >= 5
    assert probes == (
        {"page", "404", "http", "subdomain"} if subdomains else {"page", "404", "http"}
    )
    if number is not None:
        # Every header of the stage was judged on the page and on the 404 probe.
        for probe in ("page", "404"):
            judged = {c.header: c for c in report.checks if c.probe == probe and c.header}
            assert set(judged) == set(expected.headers())
            for name, value in expected.headers().items():
                assert (judged[name].expected, judged[name].actual) == (value, (value,))


# Each header written otherwise than the plan writes it, meaning the same to a browser.
SPELLINGS = [
    (HSTS, 3, 'MAX-AGE="86400"'),
    (HSTS, 3, "  max-age = 86400 ;  "),
    (HSTS, 3, ";max-age=86400;;"),
    (HSTS, 3, 'max-age="8640\\0"'),
    (HSTS, 5, "includesubdomains; Max-Age=2592000"),
    (HSTS, 7, "preload; includeSubDomains; max-age=031536000"),
    (
        CSP_RO,
        3,
        f"frame-ancestors 'NONE'; report-uri {REPORT_URI}; base-uri 'Self'; report-to rollout-csp;"
        " object-src 'none' 'none';  default-src 'self'",
    ),
    (
        CSP,
        4,
        "DEFAULT-SRC 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; "
        "Report-To rollout-csp; report-uri https://CSP.example.test:443/r",
    ),
    ("permissions-policy", 3, "microphone=(), camera=(),   geolocation=()"),
    ("permissions-policy", 3, "geolocation=(), camera=(), microphone=(), camera=()"),
    ("referrer-policy", 3, "STRICT-ORIGIN-WHEN-CROSS-ORIGIN"),
    ("referrer-policy", 3, "no-referrer, strict-origin-when-cross-origin"),
    ("x-frame-options", 3, "deny"),
    ("x-content-type-options", 3, "NoSniff"),
]


@pytest.mark.parametrize(("name", "number", "value"), SPELLINGS)
def test_equal_spellings_pass_with_no_finding(
    site: Site, name: str, number: int, value: str
) -> None:
    """A value written differently but meaning the same passes with no finding at all."""
    expected = stage(number)
    lines = site.serve(expected)
    site.page(swap(lines, name, value))
    report = run(site.env(subdomains=[API]), expected)
    assert report.ok and not_passed(report) == []
    (judged,) = [c for c in report.checks if c.probe == "page" and c.header == name]
    # Servers and parsers trim the whitespace around a field value.
    assert judged.actual == (value.strip(),) and judged.message == "as expected"


def test_policy_list_order_and_hash_encoding_are_free(site: Site) -> None:
    """A CSP list in another order, and base64url hashes for base64 ones, pass cleanly."""
    wanted = "script-src 'sha256-ab+/cd=='; object-src 'none', img-src 'self'"
    expected = with_headers(stage(4), content_security_policy=wanted)
    lines = site.serve(expected)
    site.page(swap(lines, CSP, "img-src 'self', object-src 'none'; script-src 'sha256-ab-_cd=='"))
    report = run(site.env(), expected)
    assert report.ok and not_passed(report) == []


# finding id -> (stage, probe, change): each change breaks one response of a correctly
# served stage (3 unless named) and nothing else.
CASES: dict[str, tuple[int | None, str, object]] = {}


def case(fid: str, probe: str, number: int | None = 3) -> object:
    """Register the decorated site change as the case for finding fid."""

    def register(change: object) -> object:
        CASES[fid] = (number, probe, change)
        return change

    return register


@case("hsts.E001", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page(swap(lines, HSTS))
    return s


@case("hsts.E002", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page(swap(lines, HSTS, "max-age=300"))
    return s


@case("header.E001", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page(swap(lines, "referrer-policy"))
    return s


@case("header.E002", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page(swap(lines, "x-frame-options", "DENY, DENY"))
    return s


@case("header.E003", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page(swap(lines, "x-frame-options", "SAMEORIGIN"))
    return s


@case("header.E004", "page", None)
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page([*lines, ("Strict-Transport-Security", "max-age=31536000")])
    return s


@case("csp.E001", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page([*lines, ("Content-Security-Policy", "default-src 'self'")])
    return s


@case("csp.E002", "page", 4)
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page([*lines, ("Content-Security-Policy-Report-Only", s.app[CSP])])
    return s


@case("csp.E003", "page", 4)
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page([*lines, ("Content-Security-Policy", s.app[CSP])])
    return s


@case("redirect.E001", "http")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.http.fallback = Reply(200)
    return s


@case("redirect.E002", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.https.routes["/"] = redirect("https://elsewhere.example.test/", 302, *lines)
    return s


@case("redirect.E003", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.https.routes["/"] = redirect("/a", 302, *lines)
    site.https.routes["/a"] = redirect("/", 302, *lines)
    return s


@case("notfound.E001", "404")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.https.fallback = Reply(200, lines)
    return s


@case("page.E001", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.https.routes["/"] = Reply(502, lines)
    return s


@case("page.W001", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.https.routes["/"] = Reply(403, lines)
    return s


@case("subdomain.E002", "subdomain", 5)
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.api_http.fallback = Reply(200)
    return s


@case("hsts.W001", "http")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    # Above a year and odd too: on plain http only the one warning that matters there.
    sts = ("Strict-Transport-Security", "max-age=99999999; fooo")
    site.http.fallback = redirect(f"https://{WWW}/", 301, sts)
    return s


@case("hsts.W003", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page(swap(lines, HSTS, "max-age=86400; fooo"))
    return s


@case("xss.W001", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page([*lines, ("X-XSS-Protection", "1; mode=block")])
    return s


@case("fp.W001", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page([*lines, ("Feature-Policy", "camera 'none'")])
    return s


@case("xfo.W001", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    site.page([*lines, ("X-Frame-Options", "ALLOW-FROM https://a.example.test/")])
    return with_headers(s, x_frame_options=None)


@case("csp.W002", "page")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    policy = s.app[CSP_RO]
    site.page(swap(lines, CSP_RO, f"{policy}; object-src *"))
    return s


@case("subdomain.W001", "subdomain", 5)
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    return s  # the test's environment lists no subdomain for this case


# Findings a whole response carries to every probe that sees it: the stage's own value
# is what the 404 probe must send too, so both probes report it.
@case("hsts.W002", "page+404")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    wanted = with_headers(s, strict_transport_security="max-age=63072000")
    site.serve(wanted)
    return wanted


@case("csp.W001", "page+404")
def _(site: Site, lines: list[tuple[str, str]], s: StageSettings) -> StageSettings:
    wanted = with_headers(s, content_security_policy_report_only="default-src 'self'")
    site.serve(wanted)
    return wanted


# What a user reads of each case: (header, message), and where the check points.
SEEN = {
    "csp.E001": (CSP, "an enforcing policy is sent during a report-only stage"),
    "csp.E002": (CSP_RO, "a report-only policy is still sent at an enforcing stage"),
    "csp.E003": (CSP, "2 enforcing policies are sent; browsers enforce all of them"),
    "csp.W001": (CSP_RO, "report-only without report-uri or report-to"),
    "csp.W002": (
        CSP_RO,
        "directive object-src appears more than once; browsers use the first and ignore the "
        "rest: merge them",
    ),
    "fp.W001": ("feature-policy", "Feature-Policy is obsolete"),
    "header.E001": ("referrer-policy", "referrer-policy is missing"),
    "header.E002": (
        "x-frame-options",
        "x-frame-options is sent 2 times ('DENY, DENY' is 2 values joined by ',')",
    ),
    "header.E003": ("x-frame-options", "X-Frame-Options is SAMEORIGIN, the stage wants DENY"),
    "header.E004": (
        HSTS,
        "strict-transport-security is sent ('max-age=31536000'), but this stage does not send "
        "it: another layer bypasses the ladder, and browsers keep HSTS for the max-age it says",
    ),
    "hsts.E001": (HSTS, "strict-transport-security is missing"),
    "hsts.E002": (HSTS, "max-age is 300, the stage wants 86400"),
    "hsts.W001": (HSTS, "sent over plain http, where browsers ignore it"),
    "hsts.W002": (HSTS, "max-age=63072000 is capped at one year"),
    "hsts.W003": (HSTS, "unknown directive fooo is ignored by browsers: remove it or fix its name"),
    "notfound.E001": (None, "answers 200"),
    "page.E001": (None, "answers 502"),
    "page.W001": (None, "answers 403"),
    "redirect.E001": (None, "answers 200 without a redirect to https"),
    "redirect.E002": (
        None,
        "redirects to another origin, https://elsewhere.example.test/; not followed",
    ),
    "redirect.E003": (None, f"https://{WWW}/: redirects 2 times, back to https://{WWW}/"),
    "subdomain.E002": (None, "answers 200 without a redirect to https"),
    "subdomain.W001": (None, "includeSubDomains is on and no subdomain is listed to check"),
    "xfo.W001": ("x-frame-options", "ALLOW-FROM is ignored by browsers"),
    "xss.W001": ("x-xss-protection", "X-XSS-Protection is '1; mode=block', not 0"),
}
SEEN_NOTHING = {"hsts.E001", "header.E001", "redirect.E003", "subdomain.W001"}
WHERE = {
    "page": f"https://{WWW}/",
    "404": f"https://{WWW}/rollout-404-probe-",
    "http": f"http://{WWW}/",
    "subdomain": f"http://{API}/",
}


# Made by a revert's confirmation (rollout/confirm.py), not by verify; tested there.
NOT_VERIFY = {"edge.E001", "edge.E002", "revert.E001"}
# Faults: the page and the 404 probe share an origin, so the tests below use the probe
# that has a connection (or a path) of its own.
FAULTS = {"probe.E001", "probe.E002", "probe.E003", "probe.E004", "probe.E005", "subdomain.E001"}


def test_every_finding_has_a_case() -> None:
    """Each finding id verify can raise is proven alone below, or by a fault test."""
    assert set(CASES) | NOT_VERIFY | FAULTS == set(FINDINGS)


@pytest.mark.parametrize("fid", sorted(CASES))
def test_each_finding_comes_alone_from_its_probe(site: Site, fid: str) -> None:
    """One broken response raises exactly its finding, from its probe, and nothing else."""
    number, probe, change = CASES[fid]
    expected = stage(number)
    lines = site.serve(expected)
    expected = change(site, lines, expected)  # type: ignore[operator]
    subdomains = [] if fid == "subdomain.W001" else [API]
    report = run(site.env(subdomains=subdomains), expected)
    assert findings(report) == {(fid, p) for p in probe.split("+")}
    assert report.ok is (FINDINGS[fid].severity == "warning")
    for bad in not_passed(report):
        assert bad.ok is False and (bad.header, bad.message) == SEEN[fid]
        assert (bad.title, bad.fix) == (FINDINGS[fid].title, FINDINGS[fid].fix)
        # Where it points: the URL of its probe (none for an environment-wide warning).
        assert (bad.url or "").startswith(WHERE[bad.probe] if bad.url else "")
        # What was seen: the header's lines as sent, or the status; nothing when nothing was.
        assert bool(bad.actual) is (fid not in SEEN_NOTHING)


def test_probe_faults_come_alone(site: Site) -> None:
    """Refused, hanging and broken answers each fail as their fault, from their probe only."""
    expected = stage(3)
    lines = site.serve(expected)
    env = site.env()
    with refused_port() as port:
        env.connect_to[1] = ConnectTo(WWW, 80, "127.0.0.1", port)
        assert findings(run(env, expected)) == {("probe.E001", "http")}
    env = site.env()
    for fault, fid in (("hang", "probe.E003"), ("cut", "probe.E004")):
        site.https.routes["/"] = Reply(fault=fault)
        report = verify(env, expected, options=ProbeOptions(timeout=0.5))  # type: ignore[arg-type]
        assert findings(report) == {(fid, "page")}
    site.page(lines)
    with RawServer(tls=tls_material().expired) as bad:
        env.connect_to[0] = ConnectTo(WWW, 443, "127.0.0.1", bad.port)
        report = run(env, expected)
    # The page and the 404 probe share the origin's TLS handshake.
    assert findings(report) == {("probe.E002", "page"), ("probe.E002", "404")}


def test_a_subdomain_with_a_bad_certificate_fails_alone(site: Site) -> None:
    """An expired certificate on a subdomain is subdomain.E001, from the subdomain probe only."""
    expected = stage(5)
    site.serve(expected)
    env = site.env(subdomains=[API])
    with RawServer(tls=tls_material().expired) as bad:
        env.connect_to[2] = ConnectTo(API, 443, "127.0.0.1", bad.port)
        report = run(env, expected)
    assert findings(report) == {("subdomain.E001", "subdomain")}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("probe", ["http", "subdomain"])
def test_every_redirect_status_upgrades(site: Site, status: int, probe: str) -> None:
    """Each redirect browsers follow (303 too) to https on the same host passes, on both probes."""
    expected = stage(5)
    site.serve(expected)
    host, server = (WWW, site.http) if probe == "http" else (API, site.api_http)
    server.fallback = redirect(f"https://{host}/next", status)
    report = run(site.env(subdomains=[API]), expected)
    assert report.ok and not_passed(report) == []
    fid = "redirect.E001" if probe == "http" else "subdomain.E002"
    (judged,) = [c for c in report.checks if c.id == fid]
    assert (judged.status, judged.location) == (status, f"https://{host}/next")


@pytest.mark.parametrize("status", [300, 304, 200])
def test_a_status_that_is_no_redirect_fails(site: Site, status: int) -> None:
    """300, 304 and 200 carrying a Location to https are no upgrade: redirect.E001."""
    expected = stage(3)
    site.serve(expected)
    site.http.fallback = Reply(status, [("Location", f"https://{WWW}/")], body=b"")
    report = run(site.env(), expected)
    assert findings(report) == {("redirect.E001", "http")}
    (bad,) = not_passed(report)
    assert bad.message == f"answers {status} without a redirect to https"
    assert (bad.status, bad.location) == (status, None)
