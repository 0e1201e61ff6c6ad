"""The registry: validate, compare, normalise and warn by header name."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollout import headers
from rollout.errors import HeaderValueError
from rollout.headers import csp, hsts, permissions, simple, value

NAMES = [
    "strict-transport-security",
    "content-security-policy",
    "content-security-policy-report-only",
    "permissions-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "x-xss-protection",
]
GOOD = {
    "strict-transport-security": "max-age=300; includeSubDomains",
    "content-security-policy": "default-src 'self'; object-src 'none'",
    "content-security-policy-report-only": "default-src 'self'; report-uri /r",
    "permissions-policy": "geolocation=(), camera=(), microphone=()",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-xss-protection": "0",
}
HEADERISH = st.text(alphabet="abcdeflmnoprstxy-=;,()*\"' \t:/.0123456789AEFNOSX", max_size=40)


def test_every_grammar_is_registered() -> None:
    """Each header with a grammar of its own is known to the registry."""
    assert headers.grammar_names() == frozenset(NAMES[:-1])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Strict-Transport-Security", "max-age=300; includeSubDomains"),
        ("content-security-policy", "default-src 'self'; object-src 'none'"),
        ("Content-Security-Policy-Report-Only", "default-src 'self'; report-uri /r"),
        ("permissions-policy", "geolocation=(), camera=(), microphone=()"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        ("X-Custom", "anything at all"),
    ],
)
def test_validate_returns_good_plan_values(name: str, value: str) -> None:
    """A valid plan value comes back unchanged, whatever the name's case."""
    assert headers.validate(name, value) == value


@pytest.mark.parametrize("name", NAMES)
def test_validate_refuses_a_trailing_newline(name: str) -> None:
    """A good plan value with a trailing line feed is refused, by every grammar."""
    good = GOOD[name]
    assert headers.validate(name, good) == good
    with pytest.raises(HeaderValueError) as caught:
        headers.validate(name, good + "\n")
    assert str(caught.value) == (
        f"the value has a line feed (LF) '\\n' at character {len(good) + 1}: "
        "header values are a single line; remove it"
    )


def test_no_pattern_ends_with_dollar() -> None:
    """Validation patterns are used with fullmatch, since `$` also matches before a newline."""
    patterns = [
        (module.__name__, name, attr.pattern)
        for module in (csp, hsts, permissions, simple, value)
        for name, attr in vars(module).items()
        if isinstance(attr, re.Pattern)
    ]
    assert patterns
    assert [p for p in patterns if re.search(r"(?<!\\)\$", p[2])] == []


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "content-security-policy",
            "default-src 'self'\r\nX-Evil: 1",
            "the value has a carriage return (CR) '\\r' at character 19: "
            "header values are a single line; remove it",
        ),
        (
            "x-custom",
            "caf\u00e9",
            "the value has a non-ASCII character 'é' (U+00E9) at character 4: "
            "write it as visible ASCII, e.g. percent-encode it in URLs",
        ),
        (
            "x-custom",
            " x",
            "the value has leading or trailing whitespace at character 1: remove it",
        ),
        (
            "content-security-policy",
            "default-src 'self';",
            "trailing ';' at character 19: remove it",
        ),
        (
            "content-security-policy-report-only",
            "default-src 'self';;object-src 'none'",
            "empty directive before the ';' at character 20: remove that ';'",
        ),
        (
            "permissions-policy",
            "geolocation 'none'; camera 'self'",
            "this is the old Feature-Policy syntax, which browsers ignore in Permissions-Policy: "
            "write geolocation=(), camera=(self)",
        ),
        (
            "strict-transport-security",
            "max-age=1.5",
            ("max-age=1.5 is not a whole number of seconds: use digits only, like max-age=86400"),
        ),
        (
            "x-frame-options",
            "ALLOW-FROM https://a.example",
            "ALLOW-FROM is obsolete and browsers ignore it: use DENY or SAMEORIGIN, and CSP "
            "frame-ancestors to allow other origins",
        ),
        (
            "bad name",
            "x",
            "the header name 'bad name' has ' ' at character 4: "
            "header names are letters, digits and !#$%&'*+-.^_`|~ only",
        ),
    ],
)
def test_validate_refuses_bad_plan_values(name: str, value: str, message: str) -> None:
    """A bad plan value raises HeaderValueError saying what is wrong and how to fix it."""
    with pytest.raises(HeaderValueError) as caught:
        headers.validate(name, value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("name", "expected", "actual"),
    [
        ("strict-transport-security", "max-age=86400", 'MAX-AGE="86400"'),
        (
            "Strict-Transport-Security",
            "max-age=300; includeSubDomains",
            "includesubdomains;max-age=300",
        ),
        (
            "content-security-policy",
            "default-src 'self'; img-src a b",
            "IMG-SRC b a; default-src 'SELF'",
        ),
        ("permissions-policy", "geolocation=(), camera=(self)", "camera=self, geolocation=()"),
        ("x-frame-options", "DENY", "deny"),
        ("x-content-type-options", "nosniff", "NoSniff"),
        ("referrer-policy", "no-referrer", "No-Referrer"),
        ("referrer-policy", "no-referrer", "no-referrer, no-referrer"),
        (
            "referrer-policy",
            "strict-origin-when-cross-origin",
            "no-referrer, strict-origin-when-cross-origin",
        ),
        ("content-security-policy", "img-src https://a.example", "img-src https://a.example/"),
        ("content-security-policy", "img-src https://a.example", "img-src https://a.example:443"),
        ("permissions-policy", 'camera=("https://a.example")', 'camera=("https://a.example:443")'),
        ("x-xss-protection", "0", "0"),
    ],
)
def test_compare_accepts_equal_spellings(name: str, expected: str, actual: str) -> None:
    """Semantically equal values compare as None."""
    assert headers.compare(name, expected, actual) is None


@pytest.mark.parametrize(
    ("name", "expected", "actual", "reason"),
    [
        (
            "strict-transport-security",
            "max-age=86400",
            "max-age=300000",
            "max-age is 300000, the stage wants 86400",
        ),
        (
            "content-security-policy",
            "script-src 'self'",
            "script-src https://a.example",
            "script-src lacks 'self'; script-src has https://a.example, which the stage does not",
        ),
        (
            "permissions-policy",
            "camera=()",
            "camera=(self)",
            "camera allows (self), the stage wants ()",
        ),
        (
            "x-frame-options",
            "DENY",
            "SAMEORIGIN",
            "X-Frame-Options is SAMEORIGIN, the stage wants DENY",
        ),
        (
            "referrer-policy",
            "no-referrer",
            "no-referrer, unsafe-url",
            "Referrer-Policy is unsafe-url (from 'no-referrer, unsafe-url'), the stage wants "
            "no-referrer",
        ),
        (
            "content-security-policy",
            "img-src https://a.example",
            "img-src https://a.example:8443/x",
            "img-src lacks https://a.example; img-src has https://a.example:8443/x, which the "
            "stage does not",
        ),
        (
            "strict-transport-security",
            "max-age=300",
            "max-age=300; max-age=300",
            "the value is invalid: directive max-age appears more than once, so browsers ignore "
            "the whole header: keep one",
        ),
        (
            "permissions-policy",
            "camera=()",
            "camera 'none'",
            "the value is invalid: this is the old Feature-Policy syntax, which browsers ignore "
            "in Permissions-Policy: write camera=()",
        ),
        (
            "x-content-type-options",
            "nosniff",
            "",
            "the value is invalid: the value is empty; give a value or leave the header out",
        ),
        (
            "strict-transport-security",
            "nonsense",
            "max-age=1",
            "the stage's own value 'nonsense' is invalid: max-age is missing and browsers require "
            "it: add max-age=SECONDS, like max-age=300",
        ),
    ],
)
def test_compare_explains_differences(name: str, expected: str, actual: str, reason: str) -> None:
    """A different or unparsable value yields one line in user terms."""
    assert headers.compare(name, expected, actual) == reason


def test_warnings_by_header() -> None:
    """Live-value warnings come from the header's grammar, [] when there is nothing to say."""
    assert headers.warnings("X-Frame-Options", "ALLOW-FROM https://a.example") == [
        "X-Frame-Options: ALLOW-FROM is obsolete and browsers ignore it, leaving framing open: "
        "send DENY or SAMEORIGIN and use CSP frame-ancestors"
    ]
    assert headers.warnings("strict-transport-security", "max-age=63072000") == [
        "max-age=63072000 is above 31536000: browsers cap it at one year, so write max-age=31536000"
    ]
    assert headers.warnings("content-security-policy-report-only", "img-src a; img-src b") == [
        "directive img-src appears more than once; browsers use the first and ignore the rest: "
        "merge them"
    ]
    assert headers.warnings("strict-transport-security", "garbage") == []
    assert headers.warnings("x-custom", "x") == []


def test_normalise_by_header() -> None:
    """Equal values normalise to the same text, per grammar."""
    assert headers.normalise("strict-transport-security", 'PRELOAD; max-age="1"') == (
        "max-age=1; preload"
    )
    assert headers.normalise("x-frame-options", " sameorigin") == "SAMEORIGIN"
    assert headers.normalise("x-custom", "  Hello ") == "hello"
    assert headers.normalise("referrer-policy", "no-referrer, Same-Origin") == "same-origin"
    assert headers.normalise("content-security-policy", "img-src HTTPS://A.example:443/") == (
        "img-src https://a.example"
    )


@settings(max_examples=60)
@given(st.sampled_from(NAMES), st.one_of(st.text(max_size=30), HEADERISH), HEADERISH)
def test_compare_and_warnings_never_raise(name: str, expected: str, actual: str) -> None:
    """compare and warnings answer for any text; validate raises only HeaderValueError."""
    reason = headers.compare(name, expected, actual)
    assert reason is None or (reason and "\n" not in reason)
    assert isinstance(headers.warnings(name, actual), list)
    with contextlib.suppress(HeaderValueError):
        headers.validate(name, actual)


@pytest.mark.parametrize(
    ("name", "line", "expected", "members"),
    [
        ("X-Frame-Options", "DENY, DENY", "DENY", ["DENY", "DENY"]),
        ("x-content-type-options", "nosniff, whimsy", "nosniff", ["nosniff", "whimsy"]),
        (
            "strict-transport-security",
            "max-age=1, max-age=2",
            "max-age=1",
            ["max-age=1", "max-age=2"],
        ),
        ("referrer-policy", "no-referrer, origin", "origin", ["no-referrer, origin"]),
        ("permissions-policy", "camera=(), usb=()", "camera=()", ["camera=(), usb=()"]),
        ("content-security-policy", "a b, c d", "a b", ["a b, c d"]),
        ("content-security-policy-report-only", "a b, c d", "a b", ["a b, c d"]),
        ("cache-control", "no-store, max-age=0", "no-store, max-age=0", ["no-store, max-age=0"]),
        ("x-xss-protection", "0, 0", "0", ["0", "0"]),
        ("referrer-policy", " \t", "origin", []),
        ("x-frame-options", " , ", "DENY", []),
        ("referrer-policy", "\x0b", "origin", ["\x0b"]),
        ("referrer-policy", "X", "origin", ["X"]),
    ],
)
def test_members_count_what_a_proxy_joined(
    name: str, line: str, expected: str, members: list[str]
) -> None:
    """One line holds one value per comma member, unless the header's grammar is a list."""
    assert headers.members(name, line, expected) == members
