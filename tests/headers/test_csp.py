"""Content-Security-Policy by CSP Level 3: parsing, equality, report-uri."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout.errors import HeaderValueError
from rollout.headers import csp
from rollout.headers.csp import CSP, Directive, Policy

POLICY = "default-src 'self'; script-src 'self' https://cdn.example/js/; object-src 'none'"
HEADERISH = st.text(alphabet="abcdefrcsDS-;, \t'*:/.nonehttps", max_size=40)


@pytest.mark.parametrize(
    "value",
    [
        POLICY,
        "object-src 'none'; script-src https://cdn.example/js/ 'self'; default-src 'self'",
        "DEFAULT-SRC 'SELF';Script-Src 'Self'  HTTPS://CDN.EXAMPLE/js/ ; object-src 'NONE'",
        "default-src 'self';; script-src 'self' 'self' https://cdn.example/js/; object-src 'none';",
        "default-src 'self'; script-src 'self' https://cdn.example/js/; object-src 'none'; "
        "script-src 'unsafe-inline'",
        "default-src\t'self'; script-src 'self' https://cdn.example/js/; object-src 'none'",
    ],
)
def test_equal_spellings(value: str) -> None:
    """Order, case of names and keywords, spacing, repeats and empty directives are free."""
    assert csp.equal(value, POLICY)
    assert csp.normalise(value) == csp.normalise(POLICY)


def test_paths_are_case_sensitive() -> None:
    """Scheme and host compare case-insensitively, a path does not."""
    assert not csp.equal("script-src https://cdn.example/JS/", "script-src https://cdn.example/js/")
    assert csp.equal("script-src HTTPS://CDN.Example/js/", "script-src https://cdn.example/js/")


def test_nonce_values_are_case_sensitive() -> None:
    """A nonce's prefix is a keyword, its value is not."""
    assert csp.equal("script-src 'NONCE-abc'", "script-src 'nonce-abc'")
    assert not csp.equal("script-src 'nonce-ABC'", "script-src 'nonce-abc'")


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("https://a.example", "https://a.example/"),
        ("https://a.example", "https://a.example:443"),
        ("https://a.example", "HTTPS://A.Example:0443/"),
        ("wss://a.example", "wss://a.example:443"),
        ("http://a.example", "http://a.example:80/"),
        ("ws://a.example/x", "ws://a.example:80/x"),
        ("a.example", "a.example/"),
        ("https://a.example:8443", "https://a.example:08443"),
        ("https://a.example/x/", "https://a.example/%78/"),
        ("https:", "HTTPS:"),
        ("'self'", "'SELF'"),
        ("*.example.com", "*.Example.com"),
        ("'nonce-AbC'", "'NONCE-AbC'"),
    ],
)
def test_host_sources_matching_the_same_urls_are_equal(expected: str, actual: str) -> None:
    """A path of '/', the scheme's default port, case of scheme and host are free (CSP3)."""
    assert csp.diff(csp.parse(f"img-src {expected}"), csp.parse(f"img-src {actual}")) is None
    assert csp.normalise(f"img-src {expected}") == csp.normalise(f"img-src {actual}")


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("https://a.example", "https://a.example:8443"),
        ("https://a.example", "https://a.example:80"),
        ("http://a.example", "http://a.example:443"),
        ("a.example", "a.example:443"),
        ("https://a.example/x", "https://a.example/x/"),
        ("https://a.example/x", "https://a.example/X"),
        ("https://a.example", "https://a.example/x"),
        ("https://a.example/a/b", "https://a.example/a%2Fb"),
        ("'nonce-abc'", "'nonce-ABC'"),
    ],
)
def test_host_sources_matching_other_urls_differ(expected: str, actual: str) -> None:
    """Another port, a real path, a trailing '/' after a path or a nonce's case differ."""
    reason = csp.diff(csp.parse(f"img-src {expected}"), csp.parse(f"img-src {actual}"))
    assert reason == f"img-src lacks {expected}; img-src has {actual}, which the stage does not"


def test_report_uri_compares_as_a_url() -> None:
    """report-uri drops a default port and a lone '/', but keeps percent-encoding as sent."""
    assert csp.equal("report-uri https://r.example:443/", "report-uri https://r.example")
    assert not csp.equal("report-uri /r/%78", "report-uri /r/x")


def test_report_to_group_is_case_sensitive() -> None:
    """report-to names a group chosen by the site, so its case matters."""
    assert not csp.equal("report-to Main", "report-to main")


@pytest.mark.parametrize(
    ("actual", "reason"),
    [
        (
            "default-src 'self'; script-src https://cdn.example/js/; object-src 'none'",
            "script-src lacks 'self'",
        ),
        (
            "default-src 'self'; script-src 'self' https://cdn.example/js/ 'unsafe-inline'; "
            "object-src 'none'",
            "script-src has 'unsafe-inline', which the stage does not",
        ),
        (
            "default-src 'self'; script-src 'self' https://cdn.example/js/",
            "object-src is missing, the stage wants object-src 'none'",
        ),
        (
            POLICY + "; img-src *",
            "img-src * is not in the stage's policy",
        ),
        (
            POLICY + ", img-src *",
            "the header carries 2 policies (separated by ','), the stage wants 1",
        ),
        (
            "default-src 'self'; script-src 'self' https://cdn.example/JS/; object-src 'none'",
            "script-src lacks https://cdn.example/js/; "
            "script-src has https://cdn.example/JS/, which the stage does not",
        ),
    ],
)
def test_diff_names_the_difference(actual: str, reason: str) -> None:
    """A different policy fails with the directive and source that differ."""
    assert not csp.equal(actual, POLICY)
    assert csp.diff(csp.parse(POLICY), csp.parse(actual)) == reason


def test_diff_prefixes_the_policy_number_for_lists() -> None:
    """With several policies the reason says which one differs."""
    assert (
        csp.diff(
            csp.parse("default-src 'self', img-src *"), csp.parse("default-src 'self', img-src a")
        )
        == "policy 2: img-src lacks *; policy 2: img-src has a, which the stage does not"
    )


def test_policies_of_a_list_compare_in_any_order() -> None:
    """Browsers enforce every policy of a list, so their order is free; their count is not."""
    two = "default-src 'self', img-src * ; script-src 'none'"
    swapped = "script-src 'none'; img-src *, default-src 'SELF'"
    assert csp.equal(two, swapped)
    assert csp.normalise(two) == csp.normalise(swapped)
    assert csp.diff(csp.parse(two), csp.parse(swapped)) is None
    assert not csp.equal(two, "default-src 'self', default-src 'self'")
    assert csp.diff(
        csp.parse(two), csp.parse("img-src a; script-src 'none', default-src 'self'")
    ) == ("policy 2: img-src lacks *; policy 2: img-src has a, which the stage does not")


@pytest.mark.parametrize("prefix", ["sha256", "SHA384", "sha512"])
def test_hashes_in_base64url_equal_base64(prefix: str) -> None:
    """CSP3 matches a hash's base64url digits as base64 ones; its padding still counts."""
    assert csp.equal(f"script-src '{prefix}-ab-_'", f"script-src '{prefix}-ab+/'")
    assert csp.equal(f"script-src '{prefix}-a-b_='", f"script-src '{prefix.lower()}-a+b/='")
    assert not csp.equal(f"script-src '{prefix}-ab+/'", f"script-src '{prefix}-ab+/='")
    assert not csp.equal(f"script-src '{prefix}-AB+/'", f"script-src '{prefix}-ab+/'")


def test_nonces_match_only_as_written() -> None:
    """A nonce is compared as a string: base64url and base64 spellings differ."""
    assert not csp.equal("script-src 'nonce-ab-_'", "script-src 'nonce-ab+/'")


def test_lenient_parse_follows_the_browser() -> None:
    """Live values: empty directives skipped, first duplicate kept and recorded, names lowered."""
    policy = csp.parse("Script-Src a;; script-src b; img-src c;").policies[0]
    assert policy.directives == (Directive("script-src", ("a",)), Directive("img-src", ("c",)))
    assert policy.duplicates == ("script-src",)


def test_comma_separates_policies() -> None:
    """A header value may hold several policies, empty ones dropped."""
    assert csp.parse("a b, , c d") == CSP(
        (Policy((Directive("a", ("b",)),)), Policy((Directive("c", ("d",)),)))
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "default-src 'self';; img-src *",
            "empty directive before the ';' at character 20: remove that ';'",
        ),
        ("; default-src 'self'", "empty directive before the ';' at character 1: remove that ';'"),
        ("default-src 'self';", "trailing ';' at character 19: remove it"),
        ("default-src 'self'; ", "trailing ';' at character 19: remove it"),
        ("default-src 'self',", "trailing ',' at character 19: remove it"),
        (
            "default-src 'self', , img-src *",
            "empty policy before the ',' at character 21: remove that ','",
        ),
        (
            "script-src a; img-src *; SCRIPT-SRC b",
            "directive script-src appears again at character 26 and browsers ignore the repeat: "
            "merge its values into the first script-src",
        ),
        (
            "script_src 'self'",
            "'script_src' at character 1 is not a directive name: "
            "use letters, digits and '-', like script-src",
        ),
        (
            "default-src self",
            "default-src self: without quotes this names a host called 'self'; write 'self'",
        ),
        (
            "object-src NONE",
            "object-src NONE: without quotes this names a host called 'NONE'; write 'none'",
        ),
        (";", "empty directive before the ';' at character 1: remove that ';'"),
    ],
)
def test_strict_parse_refuses_plan_mistakes(value: str, message: str) -> None:
    """Plan values: empty and trailing separators, repeats, bad names and bare keywords."""
    with pytest.raises(HeaderValueError) as caught:
        csp.parse(value, strict=True)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "keyword",
    [
        "self",
        "none",
        "unsafe-inline",
        "unsafe-eval",
        "strict-dynamic",
        "unsafe-hashes",
        "report-sample",
        "wasm-unsafe-eval",
    ],
)
def test_every_bare_keyword_is_refused_in_a_plan(keyword: str) -> None:
    """Unquoted, each CSP3 keyword names a host to browsers: a plan must quote it."""
    with pytest.raises(HeaderValueError) as caught:
        csp.parse(f"script-src https://a.example {keyword}", strict=True)
    assert str(caught.value) == (
        f"script-src {keyword}: without quotes this names a host called {keyword!r}; "
        f"write '{keyword}'"
    )
    csp.parse(f"script-src https://a.example '{keyword}'", strict=True)


@pytest.mark.parametrize("value", [";", " ; ; ", ","])
def test_no_directives_is_refused_even_leniently(value: str) -> None:
    """A value with no directive at all is no policy."""
    with pytest.raises(HeaderValueError) as caught:
        csp.parse(value)
    assert "holds no directives: write one like default-src 'self'" in str(caught.value)


def test_sandbox_value_is_not_a_keyword() -> None:
    """Bare keywords are refused only in source lists, not in sandbox or other directives."""
    assert csp.parse("sandbox allow-scripts; upgrade-insecure-requests", strict=True)


def test_with_report_uri_adds_and_replaces() -> None:
    """report-uri is appended, replacing any report-uri already there, in every policy."""
    assert (
        csp.with_report_uri("default-src 'self'; REPORT-URI /old; img-src *", "https://r.example/")
        == "default-src 'self'; img-src *; report-uri https://r.example/"
    )
    assert csp.with_report_uri("a b, c d;", "/r") == "a b; report-uri /r, c d; report-uri /r"


@pytest.mark.parametrize("uri", ["", "https://a b", "/r;x", "/r,x", "'/r'", "/é"])
def test_with_report_uri_refuses_bad_uris(uri: str) -> None:
    """A report URI that would break the policy is refused."""
    with pytest.raises(HeaderValueError) as caught:
        csp.with_report_uri("default-src 'self'", uri)
    assert str(caught.value) == (
        f"report URI {uri!r} must be one URL without spaces, quotes, ';' or ','"
        if uri != "/é"
        else "the value has a non-ASCII character 'é' (U+00E9) at character 2: write it as "
        "visible ASCII, e.g. percent-encode it in URLs"
    )


def test_with_report_uri_keeps_any_other_url_and_trims_directives() -> None:
    """Any URL without those characters is taken; directives are trimmed of spaces and tabs."""
    assert csp.with_report_uri(" default-src 'self' ;\tReport-URI /old ; img-src X", "/eXtra") == (
        "default-src 'self'; img-src X; report-uri /eXtra"
    )


def test_has_reporting() -> None:
    """report-uri or report-to in every policy counts as somewhere to report."""
    assert csp.has_reporting("default-src 'self'; report-uri /r")
    assert csp.has_reporting("default-src 'self'; Report-To main")
    assert not csp.has_reporting("default-src 'self'")
    assert not csp.has_reporting("default-src 'self'; report-uri /r, img-src *")


def test_warnings_for_duplicates_and_none_with_sources() -> None:
    """A repeated directive and 'none' next to other sources are warned about."""
    assert csp.warnings(csp.parse("script-src 'none' 'self'; script-src a; img-src 'none'")) == [
        "directive script-src appears more than once; browsers use the first and ignore the "
        "rest: merge them",
        "script-src lists 'none' with other sources, so 'none' has no effect: "
        "remove 'none' or the other sources",
    ]


@given(st.one_of(st.text(max_size=40), HEADERISH), st.booleans())
def test_parse_raises_only_header_value_error(text: str, strict: bool) -> None:
    """Arbitrary text parses or is refused with HeaderValueError, nothing else."""
    with contextlib.suppress(HeaderValueError):
        csp.parse(text, strict=strict)


_VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=",;"),
    min_size=1,
    max_size=8,
)
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)
_POLICY = st.lists(
    st.builds(Directive, _NAME, st.lists(_VALUE, max_size=3).map(tuple)),
    min_size=1,
    max_size=4,
    unique_by=lambda d: d.name,
).map(lambda ds: Policy(tuple(ds)))


@given(st.lists(_POLICY, min_size=1, max_size=3).map(lambda ps: CSP(tuple(ps))))
def test_parse_inverts_serialise(value: CSP) -> None:
    """parse(serialise(v)) gives v back, and normalising keeps it equal."""
    text = csp.serialise(value)
    assert csp.parse(text) == value
    assert csp.equal(csp.normalise(text), value)


def test_diff_names_every_difference_of_every_directive() -> None:
    """A missing directive does not hide the others' differences; lists are space-joined."""
    wanted = csp.parse("object-src 'none'; script-src 'self' https://a.example; img-src 'self'")
    got = csp.parse("script-src https://b.example https://c.example; img-src 'self'")
    assert csp.diff(wanted, got) == (
        "object-src is missing, the stage wants object-src 'none'; "
        "script-src lacks 'self' https://a.example; "
        "script-src has https://b.example https://c.example, which the stage does not"
    )


def test_normalise_writes_paths_back_piece_by_piece() -> None:
    """Each path piece is percent-decoded and written back; the '/' between them stay."""
    assert csp.normalise("img-src https://a.example/%78/a%2Fb/c") == (
        "img-src https://a.example/x/a%2Fb/c"
    )


def test_normalise_keeps_nonces_and_schemeless_hosts_as_browsers_read_them() -> None:
    """A nonce's prefix is lower-cased and its value kept; a host without scheme stays so."""
    assert csp.normalise("script-src 'NONCE-AbC' A.example:443") == (
        "script-src 'nonce-AbC' a.example:443"
    )
    assert not csp.equal("script-src 'nonce-ab'", "script-src 'nonce-cb'")


def test_with_report_uri_and_a_group_replaces_report_to_too() -> None:
    """With a Reporting API group, report-to is replaced too; without one it is kept."""
    text = "default-src 'self'; REPORT-TO old; Report-Uri /old"
    assert csp.with_report_uri(text, "/r", "g") == "default-src 'self'; report-uri /r; report-to g"
    assert csp.with_report_uri(text, "/r") == "default-src 'self'; REPORT-TO old; report-uri /r"


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("base-uri self", "base-uri"),
        ("form-action none", "form-action"),
        ("frame-ancestors self", "frame-ancestors"),
    ],
)
def test_source_lists_beyond_src_refuse_bare_keywords(value: str, name: str) -> None:
    """base-uri, form-action and frame-ancestors are source lists: bare keywords are hosts."""
    with pytest.raises(HeaderValueError) as caught:
        csp.parse(value, strict=True)
    assert str(caught.value).startswith(f"{value}: without quotes this names a host")


def test_other_directives_take_bare_words() -> None:
    """Outside source lists a bare word is just a value: a report-to group may be self."""
    assert csp.parse("default-src 'self'; report-to self", strict=True).policies[0].get(
        "report-to"
    ) == csp.Directive("report-to", ("self",))


def test_strict_positions_count_across_every_policy() -> None:
    """A mistake in a third policy is placed by characters from the start of the value."""
    with pytest.raises(HeaderValueError) as caught:
        csp.parse("default-src 'self', img-src *, script-src a;; x", strict=True)
    assert str(caught.value) == "empty directive before the ';' at character 45: remove that ';'"
