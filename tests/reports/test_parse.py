"""Report bodies as browsers send them, and as attackers do: what is kept, what is refused."""

from __future__ import annotations

import json

import pytest

from rollout.reports.parse import (
    LEGACY_TYPE,
    REPORTING_TYPE,
    CspReport,
    Malformed,
    UnsupportedType,
    blocked_source,
    parse_body,
    url_origin,
)

POLICY = "default-src 'self'; report-uri /csp-report"


def legacy(**fields: object) -> bytes:
    """A legacy report-uri body, Chrome's fields unless overridden."""
    report = {
        "document-uri": "https://shop.example.test/account?token=secret#top",
        "referrer": "",
        "violated-directive": "script-src-elem",
        "effective-directive": "script-src-elem",
        "original-policy": POLICY,
        "disposition": "report",
        "blocked-uri": "https://cdn.example.test:443/lib/x.js?v=1",
        "status-code": 200,
        "script-sample": "",
    }
    report.update(fields)
    return json.dumps({"csp-report": report}).encode()


def reporting(*bodies: dict[str, object], kind: str = "csp-violation") -> bytes:
    """A Reporting API batch, one entry per body."""
    return json.dumps(
        [{"type": kind, "age": 1, "url": "https://shop.example.test/", "user_agent": "x",
          "body": body} for body in bodies]
    ).encode()  # fmt: skip


def test_legacy_body_keeps_origin_keyword_and_path_only() -> None:
    """The legacy format: the blocked URL becomes its origin, the page its path (no query)."""
    [report] = parse_body(LEGACY_TYPE, legacy())
    assert report == CspReport(
        directive="script-src-elem",
        blocked="https://cdn.example.test",
        document="/account",
        origin="https://shop.example.test",
        source="",
        disposition="report",
        sample="",
        policy=POLICY,
    )


def test_reporting_api_batch_keeps_csp_reports_and_skips_the_rest() -> None:
    """The Reporting API: csp-violation entries are read, deprecation ones skipped."""
    body = json.loads(
        reporting({"documentURL": "https://shop.example.test/", "blockedURL": "inline",
                   "effectiveDirective": "script-src-elem", "sample": "alert(1)",
                   "disposition": "enforce", "sourceFile": "https://shop.example.test/a.js"})
    )  # fmt: skip
    body.append({"type": "deprecation", "body": {"id": "x"}})
    reports = parse_body(REPORTING_TYPE + "; charset=utf-8", json.dumps(body).encode())
    assert [(r.directive, r.blocked, r.sample, r.disposition, r.source) for r in reports] == [
        ("script-src-elem", "inline", "alert(1)", "enforce", "https://shop.example.test")
    ]


def test_a_batch_of_other_report_types_is_accepted_and_keeps_nothing() -> None:
    """A batch with no CSP entry is a valid upload (204), not a malformed one."""
    assert parse_body(REPORTING_TYPE, reporting({"id": "x"}, kind="deprecation")) == []


@pytest.mark.parametrize(
    ("kind", "body", "why"),
    [
        (LEGACY_TYPE, b"{not json", "not JSON"),
        (LEGACY_TYPE, b"\xff\xfe\x00", "not JSON"),
        (LEGACY_TYPE, b"[" * 100000, "not JSON"),
        (LEGACY_TYPE, b"1" * 5000, "not JSON"),
        (LEGACY_TYPE, b'{"csp-report": 1}', 'no "csp-report"'),
        (LEGACY_TYPE, json.dumps({"csp-report": {"document-uri": "https://a.test/"}}).encode(),
         "no directive"),
        (LEGACY_TYPE, legacy(**{"effective-directive": "x" * 50}), "no directive"),
        (LEGACY_TYPE, legacy(**{"effective-directive": "script-src\r\nset-cookie"}),
         "no directive"),
        (LEGACY_TYPE, legacy(**{"document-uri": 7}), "no document"),
        (REPORTING_TYPE, b'[1, "x", {"type": "csp-violation", "body": 3}]', "no entry"),
        (REPORTING_TYPE, legacy(), "not the JSON"),
        (LEGACY_TYPE, reporting({"effectiveDirective": "img-src"}), "not the JSON"),
    ],
    ids=["syntax", "bytes", "deep", "huge-number", "no-object", "no-directive", "long-name",
         "crlf-name", "no-document", "junk-batch", "legacy-as-batch", "batch-as-legacy"],
)  # fmt: skip
def test_malformed_bodies_are_refused(kind: str, body: bytes, why: str) -> None:
    """Whatever a body holds that a browser never sends is Malformed, with a reason."""
    with pytest.raises(Malformed, match=why):
        parse_body(kind, body)


@pytest.mark.parametrize(
    "kind", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
def test_other_content_types_are_refused(kind: str) -> None:
    """Only the two report formats (and plain JSON, which old browsers sent) are read."""
    with pytest.raises(UnsupportedType):
        parse_body(kind, legacy())


def test_plain_json_is_read_as_the_legacy_body() -> None:
    """application/json with a csp-report object is the legacy format, as old Firefox sent."""
    assert parse_body("application/json", legacy())[0].directive == "script-src-elem"


def test_megabyte_urls_are_cut_to_an_origin_and_a_short_path() -> None:
    """A megabyte document URL keeps a path of at most 256 characters; a megabyte host is
    no origin at all."""
    long_path = "https://shop.example.test/" + "a" * 1_000_000
    [report] = parse_body(
        LEGACY_TYPE, legacy(**{"document-uri": long_path, "blocked-uri": "https://" + "h" * 10**6})
    )
    assert report.origin == "https://shop.example.test"
    assert len(report.document) == 256 and report.document.endswith("...")
    assert report.blocked == "invalid"


def test_control_characters_never_survive_in_urls_or_names() -> None:
    """CR, LF, ESC and NUL in URLs are dropped, percent-encoded or refuse the origin; the sample
    keeps them (it is escaped where printed) except NUL, which no store takes."""
    [report] = parse_body(
        LEGACY_TYPE,
        legacy(**{
            "document-uri": "https://shop.example.test/a\r\nb\x1b[2J",
            "blocked-uri": "https://evil.test\r\nX-Injected: 1/",
            "script-sample": "\x1b[2Jx\x00y\ud800",
        }),
    )  # fmt: skip
    assert report.document == "/ab%1B%5B2J"  # urlsplit drops CR and LF, as browsers do
    assert report.blocked == "invalid"
    assert report.sample == "\x1b[2Jx\ufffdy?"


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("", "inline"),
        ("inline", "inline"),
        ("EVAL", "eval"),
        ("data", "data"),
        ("data:image/png;base64,AAAA", "data"),
        ("blob:https://shop.example.test/1234", "blob"),
        ("about:blank", "about"),
        ("https://CDN.Example.test:443/x", "https://cdn.example.test"),
        ("http://cdn.example.test:80/x", "http://cdn.example.test"),
        ("https://cdn.example.test:8443/x", "https://cdn.example.test:8443"),
        ("wss://live.example.test/socket", "wss://live.example.test"),
        ("https://[::1]:8443/x", "https://[::1]:8443"),
        ("chrome-extension://abcdefghij/inject.js", "chrome-extension://abcdefghij"),
        ("moz-extension://1234-5678/x.js", "moz-extension://1234-5678"),
        ("chrome:", "chrome:"),
        ("https://user:pw@cdn.example.test/", "https://cdn.example.test"),
        ("https://cdn.example.test:99999/", "invalid"),
        ("//cdn.example.test/x", "invalid"),
    ],
)
def test_blocked_sources(value: str, kept: str) -> None:
    """What was blocked is kept as an origin (default port left out) or a keyword."""
    assert blocked_source(value) == kept


def test_url_origin_of_a_page() -> None:
    """A page URL's origin is what reports are compared with."""
    assert url_origin("https://shop.example.test/account") == "https://shop.example.test"


def test_a_batch_reads_at_most_100_entries() -> None:
    """A batch longer than any browser sends is read up to its 100th entry."""
    body = {"documentURL": "https://shop.example.test/", "blockedURL": "eval",
            "effectiveDirective": "script-src"}  # fmt: skip
    assert len(parse_body(REPORTING_TYPE, reporting(*[body] * 150))) == 100


def test_an_oversized_original_policy_is_dropped() -> None:
    """A policy longer than 16384 characters is no policy rollout sent: not kept."""
    [report] = parse_body(LEGACY_TYPE, legacy(**{"original-policy": "default-src " + "a" * 20000}))
    assert report.policy == ""
