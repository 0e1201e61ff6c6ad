"""verify's finer judgements on loopback servers: comma-joined duplicates, headers another
layer sends outside the ladder, warnings in their place, and the JSON a script reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from rollout import ladder
from rollout.names import CSP, CSP_RO, HSTS
from rollout.settings import StageSettings
from tests.judge_support import REPORT_URI, WWW, Site, findings, not_passed, plan, run, start_site
from tests.servers import Reply, redirect

FIX_E003 = "send exactly the stage's value; `rollout render ENV` prints it"


@pytest.fixture
def site() -> Iterator[Site]:
    """The loopback site, serving nothing until a test calls `serve`."""
    yield from start_site()


def stage(number: int | None) -> StageSettings:
    """The default ladder's stage (None is off)."""
    return ladder.settings_for(plan(), "staging", number)


def swap(lines: list[tuple[str, str]], name: str, *values: str) -> list[tuple[str, str]]:
    """lines with every line of header name replaced by one line per value."""
    return [*((n, v) for n, v in lines if n.lower() != name), *((name, v) for v in values)]


def page_check(site: Site, expected: StageSettings, name: str) -> tuple[set[object], object]:
    """Verify; (every finding, the page probe's check of header name)."""
    report = run(site.env(), expected)
    (judged,) = [c for c in report.checks if c.probe == "page" and c.header == name]
    return findings(report), judged


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        (
            "x-frame-options",
            ["DENY, DENY"],
            "x-frame-options is sent 2 times ('DENY, DENY' is 2 values joined by ',')",
        ),
        (
            "x-content-type-options",
            ["nosniff, whimsy"],
            "x-content-type-options is sent 2 times ('nosniff, whimsy' is 2 values joined by ',')",
        ),
        ("x-frame-options", ["DENY", "DENY"], "x-frame-options is sent 2 times"),
        (
            "x-frame-options",
            ["DENY", "DENY, ,DENY"],
            "x-frame-options is sent 3 times ('DENY, ,DENY' is 2 values joined by ',')",
        ),
        (
            "x-frame-options",
            ["DENY,DENY", "deny, deny"],
            "x-frame-options is sent 4 times ('DENY,DENY' is 2 values joined by ',')",
        ),
    ],
)
def test_comma_joined_lines_count_each_member(
    site: Site, name: str, values: list[str], message: str
) -> None:
    """Two layers' values joined into one line by a proxy fail as a duplicate, edge ones too."""
    expected = stage(3)
    site.page(swap(site.serve(expected), name, *values))
    found, judged = page_check(site, expected, name)
    assert found == {("header.E002", "page")}
    assert judged.message == message and judged.actual == tuple(values)  # type: ignore[attr-defined]
    assert judged.expected == expected.headers()[name]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["referrer-policy", HSTS])
def test_a_missing_header_says_so(site: Site, name: str) -> None:
    """A header not sent at all fails as missing, with the stage's value it wanted."""
    expected = stage(3)
    site.page(swap(site.serve(expected), name))
    found, judged = page_check(site, expected, name)
    assert len(found) == 1
    assert (judged.message, judged.expected, judged.actual, judged.ok) == (  # type: ignore[attr-defined]
        f"{name} is missing",
        expected.headers()[name],
        (),
        False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("referrer-policy", "no-referrer, strict-origin-when-cross-origin"),
        ("permissions-policy", "geolocation=(), camera=(), microphone=()"),
        (
            CSP_RO,
            f"default-src 'self'; report-uri {REPORT_URI}, object-src 'none'; report-uri "
            f"{REPORT_URI}",
        ),
    ],
)
def test_a_list_grammar_keeps_its_commas(site: Site, name: str, value: str) -> None:
    """Referrer-Policy, Permissions-Policy and CSP are lists: one line is one value."""
    expected = dataclasses.replace(stage(3), app={**stage(3).app, name: value})
    site.serve(expected)
    found, judged = page_check(site, expected, name)
    assert found == set() and judged.message == "as expected"  # type: ignore[attr-defined]


def test_a_value_without_grammar_splits_only_where_the_stage_has_no_comma(site: Site) -> None:
    """An unknown header is a list if the stage's own value holds a comma, a single otherwise."""
    expected = dataclasses.replace(
        stage(3), app={**stage(3).app, "cache-control": "no-store, max-age=0", "x-a": "1"}
    )
    site.serve(expected)
    assert findings(run(site.env(), expected)) == set()
    site.page(swap(site.serve(expected), "x-a", "1, 1"))
    assert findings(run(site.env(), expected)) == {("header.E002", "page")}


def test_an_empty_line_is_no_value(site: Site) -> None:
    """A header line with nothing in it fails as missing, saying it was sent empty."""
    expected = stage(3)
    site.page(swap(site.serve(expected), "x-frame-options", ""))
    found, judged = page_check(site, expected, "x-frame-options")
    assert found == {("header.E001", "page")}
    assert judged.message == "x-frame-options is sent empty"  # type: ignore[attr-defined]


def test_one_good_member_among_empty_lines_is_judged(site: Site) -> None:
    """Empty list members are skipped, as recipients must; the one value left is compared."""
    expected = stage(3)
    site.page(swap(site.serve(expected), "x-frame-options", ", ", "SAMEORIGIN,"))
    found, judged = page_check(site, expected, "x-frame-options")
    assert found == {("header.E003", "page")}
    assert judged.message == "X-Frame-Options is SAMEORIGIN, the stage wants DENY"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (
            ["max-age=300", "max-age=86400"],
            "strict-transport-security is sent 2 times; browsers honour only the first "
            "(RFC 6797 §8.1), 'max-age=300', so they do not get the stage's value: max-age is "
            "300, the stage wants 86400",
        ),
        (
            ["max-age=86400", "max-age=300"],
            "strict-transport-security is sent 2 times; browsers honour only the first "
            "(RFC 6797 §8.1), 'max-age=86400', the stage's value, so they get it for now, but "
            "whichever layer comes first wins, and hstspreload.org refuses more than one",
        ),
        (
            ["max-age=86400, max-age=300"],
            "strict-transport-security is sent 2 times ('max-age=86400, max-age=300' is 2 values "
            "joined by ','); browsers read only the first line (RFC 6797 §8.1), and a ',' is not "
            "allowed in it, so they ignore it: no HSTS at all",
        ),
    ],
)
def test_duplicate_hsts_says_which_value_browsers_honour(
    site: Site, values: list[str], says: str
) -> None:
    """Two HSTS values fail as a duplicate, naming the one browsers take and what it means."""
    expected = stage(3)
    site.page(swap(site.serve(expected), HSTS, *values))
    found, judged = page_check(site, expected, HSTS)
    assert found == {("header.E002", "page")}
    assert judged.message == says  # type: ignore[attr-defined]


def test_one_line_with_two_policies_is_a_different_value(site: Site) -> None:
    """A CSP line carrying a second policy is one header with another value, not a duplicate."""
    expected = stage(4)
    site.page(swap(site.serve(expected), CSP, f"{expected.app[CSP]}, img-src 'self'"))
    found, judged = page_check(site, expected, CSP)
    assert found == {("header.E003", "page")}
    assert judged.message == (  # type: ignore[attr-defined]
        "the header carries 2 policies (separated by ','), the stage wants 1"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            [("Strict-Transport-Security", "max-age=31536000")],
            "strict-transport-security is sent ('max-age=31536000'), but this stage does not send "
            "it: another layer bypasses the ladder, and browsers keep HSTS for the max-age it says",
        ),
        (
            [("Content-Security-Policy", "default-src 'self'")],
            "content-security-policy is sent (\"default-src 'self'\"), but this stage does not "
            "send it: another layer bypasses the ladder, and browsers apply the policy it carries",
        ),
        (
            [("Content-Security-Policy", "default-src 'self'")] * 2,
            "content-security-policy is sent (\"default-src 'self'\"), but this stage does not "
            "send it: another layer bypasses the ladder, and browsers apply the policy it carries",
        ),
        (
            [
                (
                    "Content-Security-Policy-Report-Only",
                    f"default-src 'self'; report-uri {REPORT_URI}",
                )
            ],
            "content-security-policy-report-only is sent (\"default-src 'self'; report-uri "
            f'{REPORT_URI}"), but this stage does not send it: another layer bypasses the '
            "ladder, and browsers apply the policy it carries",
        ),
    ],
)
def test_a_ladder_header_at_stage_off_is_another_layers(
    site: Site, extra: list[tuple[str, str]], message: str
) -> None:
    """At stage off, HSTS or either CSP from an old middleware or the proxy fails as header.E004."""
    expected = stage(None)
    site.page([*site.serve(expected), *extra])
    report = run(site.env(), expected)
    assert findings(report) == {("header.E004", "page")}
    (bad,) = not_passed(report)
    assert bad.message == message and bad.actual == tuple(v for _, v in extra)


def test_a_stray_hsts_on_a_redirect_hop_is_reported(site: Site) -> None:
    """A browser keeps HSTS from an https redirect too, so a stray one there fails."""
    expected = stage(None)
    lines = site.serve(expected)
    site.https.routes["/old"] = redirect("/", 301, ("Strict-Transport-Security", "max-age=60"))
    report = run(site.env("/old"), expected)
    assert findings(report) == {("header.E004", "page")}
    assert not_passed(report)[0].url == f"https://{WWW}/old"
    site.https.routes["/old"] = redirect("/", 301, *lines)
    assert findings(run(site.env("/old"), expected)) == set()


def test_hsts_over_plain_http_at_stage_off_only_warns(site: Site) -> None:
    """Browsers ignore HSTS on http, so there it stays the hsts.W001 warning, not header.E004."""
    expected = stage(None)
    site.serve(expected)
    site.http.fallback = redirect(
        f"https://{WWW}/", 301, ("Strict-Transport-Security", "max-age=9")
    )
    assert findings(run(site.env(), expected)) == {("hsts.W001", "http")}


def test_a_plain_http_page_is_judged_like_the_http_probe(site: Site) -> None:
    """Library use with an http:// page (plans list https only): HSTS there only warns, is
    never another layer's, and no redirect hop of it is asked for HSTS."""
    hsts = ("Strict-Transport-Security", "max-age=60")
    site.http.routes = {"/": redirect(f"https://{WWW}/"), "/a/": Reply(200, [hsts])}
    site.http.routes["/a/old"] = redirect("/a/", 301, hsts)
    site.http.fallback = Reply(404)
    env = site.env()
    env.urls = [f"http://{WWW}/a/old"]
    report = run(env, StageSettings("staging", None, "off"))
    assert findings(report) == {("hsts.W001", "page")}
    assert [c.url for c in not_passed(report)] == [f"http://{WWW}/a/old", f"http://{WWW}/a/"]
    site.http.routes["/a/old"] = redirect("/a/", 301)
    site.http.fallback = Reply(404, [hsts])
    report = run(env, StageSettings("staging", 3, "x", {HSTS: "max-age=60"}))
    assert findings(report) == {("hsts.W001", "page"), ("hsts.W001", "404")}


def test_a_partial_expectation_reports_no_stray(site: Site) -> None:
    """Revert's app-only verify leaves the edge's HSTS and CSP unjudged instead of stray."""
    full = stage(4)
    site.serve(full)
    app_only = dataclasses.replace(
        full, app={k: v for k, v in full.app.items() if k not in (HSTS, CSP)}, edge={}
    )
    assert findings(run(site.env(), app_only)) == {("header.E004", "page"), ("header.E004", "404")}
    report = run(site.env(), app_only, partial=True)
    assert report.ok and not_passed(report) == []


def test_partial_still_judges_the_csp_mode(site: Site) -> None:
    """Even app-only, with the edge's HSTS left unjudged, a report-only CSP at an enforcing
    stage fails as csp.E002."""
    full = stage(4)
    site.page([*site.serve(full), ("Content-Security-Policy-Report-Only", full.app[CSP])])
    app_only = dataclasses.replace(
        full, app={k: v for k, v in full.app.items() if k != HSTS}, edge={}
    )
    report = run(site.env(), app_only, partial=True)
    assert findings(report) == {("csp.E002", "page")}


def test_max_age_zero_warns_unless_the_stage_clears_hsts(site: Site) -> None:
    """max-age=0 draws hsts.W003 where the stage wants more, and nothing when it is cleared."""
    expected = stage(3)
    site.page(swap(site.serve(expected), HSTS, "max-age=0"))
    report = run(site.env(), expected)
    assert findings(report) == {("hsts.E002", "page"), ("hsts.W003", "page")}
    (odd,) = [c for c in report.checks if c.id == "hsts.W003"]
    assert odd.message == "max-age=0 tells browsers to forget HSTS for this host"
    cleared = dataclasses.replace(stage(None), app={HSTS: "max-age=0"})
    site.serve(cleared)
    report = run(site.env(), cleared)
    assert report.ok and not_passed(report) == []


def test_hsts_oddities_are_all_named(site: Site) -> None:
    """max-age=0 and unknown directives are named together in one hsts.W003."""
    expected = dataclasses.replace(stage(None), app={HSTS: "max-age=0"})
    site.page([*site.serve(expected)])
    site.page(swap(site.serve(expected), HSTS, "max-age=0; foo; bar=1"))
    report = run(site.env(), expected)
    assert findings(report) == {("hsts.W003", "page")}
    (odd,) = not_passed(report)
    assert odd.message == (
        "unknown directive foo is ignored by browsers: remove it or fix its name; "
        "unknown directive bar is ignored by browsers: remove it or fix its name"
    )


def test_the_headers_that_warn_are_quiet_when_right(site: Site) -> None:
    """X-XSS-Protection: 0 is the advice itself, and DENY is no ALLOW-FROM: no finding."""
    expected = stage(3)
    site.page([*site.serve(expected), ("X-XSS-Protection", " 0")])
    assert findings(run(site.env(), expected)) == set()


def test_every_hsts_line_is_looked_at_for_warnings(site: Site) -> None:
    """An invalid first HSTS line does not hide the warning the second one earns."""
    expected = stage(3)
    site.page(swap(site.serve(expected), HSTS, "max-age=abc", "max-age=63072000"))
    report = run(site.env(), expected)
    assert findings(report) == {("header.E002", "page"), ("hsts.W002", "page")}


def test_every_csp_line_is_looked_at_for_warnings(site: Site) -> None:
    """An invalid first CSP line does not hide the warning the second one earns."""
    expected = stage(3)
    odd = f"{expected.app[CSP_RO]}; object-src *"
    site.page(swap(site.serve(expected), CSP_RO, ";", odd))
    report = run(site.env(), expected)
    assert findings(report) == {("header.E002", "page"), ("csp.W002", "page")}


def test_above_a_year_is_capped_not_at_a_year(site: Site) -> None:
    """Exactly 31536000 draws nothing; one second more is hsts.W002, with the value."""
    at_year = dataclasses.replace(stage(3), app={**stage(3).app, HSTS: "max-age=31536000"})
    site.serve(at_year)
    assert findings(run(site.env(), at_year)) == set()
    over = dataclasses.replace(at_year, app={**at_year.app, HSTS: "max-age=31536001"})
    site.serve(over)
    report = run(site.env(), over)
    assert findings(report) == {("hsts.W002", "page"), ("hsts.W002", "404")}
    assert {c.message for c in not_passed(report)} == {"max-age=31536001 is capped at one year"}


def test_csp_reporting_warning_only_for_report_only(site: Site) -> None:
    """An enforcing CSP without report-uri draws no csp.W001; a report-only one does."""
    bare = "default-src 'self'"
    enforcing = dataclasses.replace(stage(4), app={**stage(4).app, CSP: bare})
    site.serve(enforcing)
    assert findings(run(site.env(), enforcing)) == set()
    app = {k: v for k, v in stage(3).app.items() if k != CSP_RO}
    report_only = dataclasses.replace(stage(3), app={**app, CSP_RO: f"{bare}, img-src 'self'"})
    site.serve(report_only)
    report = run(site.env(), report_only)
    assert findings(report) == {("csp.W001", "page"), ("csp.W001", "404")}
    assert {c.message for c in not_passed(report)} == {
        "report-only without report-uri or report-to"
    }


def test_csp_none_beside_sources_warns_once_with_every_oddity(site: Site) -> None:
    """Each CSP oddity is named, in one csp.W002 per header line."""
    expected = stage(4)
    odd = f"{expected.app[CSP]}; img-src 'none' 'self'; img-src *"
    site.page(swap(site.serve(expected), CSP, odd))
    report = run(site.env(), expected)
    assert findings(report) == {("csp.W002", "page"), ("header.E003", "page")}
    (warning,) = [c for c in report.checks if c.id == "csp.W002"]
    assert warning.message == (
        "directive img-src appears more than once; browsers use the first and ignore the rest: "
        "merge them; img-src lists 'none' with other sources, so 'none' has no effect: remove "
        "'none' or the other sources"
    )


def test_json_passed_checks_have_no_severity_and_failed_ones_a_fix(site: Site) -> None:
    """--json: a passed check has severity null; a failed one carries its title and fix."""
    expected = stage(3)
    site.page(swap(site.serve(expected), "x-frame-options", "SAMEORIGIN"))
    site.http.fallback = Reply(200)
    doc = run(site.env(), expected).to_json()
    checks = doc["checks"]
    assert isinstance(checks, list)
    passed = [c for c in checks if c["ok"]]
    assert passed and all(c["severity"] is None for c in passed)
    assert all("fix" not in c and "title" not in c for c in passed)
    (bad,) = [c for c in checks if c["header"] == "x-frame-options" and not c["ok"]]
    assert (bad["severity"], bad["id"]) == ("error", "header.E003")
    assert bad["title"] == "a header's value differs from the stage's value"
    assert bad["fix"] == "send exactly the stage's value; `rollout render staging` prints it"
    # Without an environment (transition outcomes list checks too), the catalogue's ENV stays.
    report = run(site.env(), expected)
    (failed,) = [c for c in report.checks if c.header == "x-frame-options" and not c.ok]
    assert failed.to_json()["fix"] == failed.fix == FIX_E003
    (http,) = [c for c in checks if c["probe"] == "http"]
    assert (http["status"], http["location"], http["actual"]) == (200, None, ["200"])
    assert http["expected"] == f"301, 302, 303, 307 or 308 to https://{WWW}/..."


def test_json_redirect_check_gives_status_and_location(site: Site) -> None:
    """--json: the http probe's status and resolved Location are fields of their own."""
    expected = stage(3)
    site.serve(expected)
    site.http.fallback = redirect("https://www.example.test/start", 307)
    doc = run(site.env(), expected).to_json()
    checks = doc["checks"]
    assert isinstance(checks, list)
    (http,) = [c for c in checks if c["probe"] == "http"]
    assert http == {
        "probe": "http",
        "url": f"http://{WWW}/",
        "header": None,
        "ok": True,
        "severity": None,
        "expected": f"301, 302, 303, 307 or 308 to https://{WWW}/...",
        "actual": [f"307 https://{WWW}/start"],
        "message": f"redirects to https://{WWW}/start",
        "id": "redirect.E001",
        "status": 307,
        "location": f"https://{WWW}/start",
    }
    (notfound,) = [c for c in checks if c["id"] == "notfound.E001"]
    assert (notfound["status"], notfound["location"]) == (404, None)
    headers = [c for c in checks if c["header"]]
    assert headers and all("status" not in c for c in headers)


def test_a_redirect_elsewhere_says_where(site: Site) -> None:
    """A redirect to another host, or to plain http, fails naming the target."""
    expected = stage(3)
    site.serve(expected)
    for target in ("https://evil.example.test/", f"http://{WWW}/"):
        site.http.fallback = redirect(target, 301)
        report = run(site.env(), expected)
        assert findings(report) == {("redirect.E001", "http")}
        (bad,) = not_passed(report)
        assert bad.message == f"redirects to {target}, not to https://{WWW}"
        assert (bad.status, bad.location) == (301, target)


def test_a_redirect_with_two_locations_is_none(site: Site) -> None:
    """A redirect status with two Location headers redirects nowhere, and the message says so."""
    expected = stage(3)
    site.serve(expected)
    site.http.fallback = Reply(
        301, [("Location", f"https://{WWW}/"), ("Location", f"https://{WWW}/")], body=b""
    )
    (bad,) = not_passed(run(site.env(), expected))
    assert bad.message == "answers 301 without a redirect to https (2 Location headers)"


def test_csp_mode_alone_judges_the_mode_and_nothing_else() -> None:
    """checks.csp_mode (the pytest plugin's app-only check): the CSP mode, no stray finding."""
    from rollout.checks import csp_mode
    from rollout.probe import Result

    sent = (("Content-Security-Policy", "default-src 'self'"), (HSTS, "max-age=60"))
    result = Result(f"https://{WWW}/", 200, "1.1", sent)
    report_only = {CSP_RO: "default-src 'self'"}
    (mode,) = csp_mode("page", result, report_only)
    assert (mode.id, mode.probe, mode.header, mode.ok) == ("csp.E001", "page", CSP, False)
    assert csp_mode("page", result, {CSP: "default-src 'self'"}) == []
    assert csp_mode("page", result, {}) == []
