"""Fuzzing every header grammar through its public API: never a traceback, round trips hold.

For each grammar (HSTS, CSP, Permissions-Policy, X-Frame-Options, X-Content-Type-Options,
Referrer-Policy, any other value) and for the registry (`rollout.headers.validate`,
`compare`, `normalise`), on text shaped like the grammar and on any text at all:

- parsing returns or raises HeaderValueError, nothing else;
- `parse(serialise(x)) == x` for whatever parses;
- `normalise` is idempotent and keeps the meaning (`equal(v, normalise(v))`);
- `equal` and `compare` agree, and are symmetric;
- no value with CR, LF or NUL passes `validate` (no header injection from a plan).

Budgets: tests/fuzz/strategies.py (few examples in CI, 10,000 each with ROLLOUT_DEEP=1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout import headers
from rollout.errors import HeaderValueError
from rollout.headers import csp, hsts, permissions, simple
from rollout.headers.value import check_value
from tests.fuzz import strategies as s

Parse = Callable[[str], Any]


def parsed(parse: Parse, text: str) -> Any | None:
    """parse(text), or None when the grammar refuses it (any other exception fails)."""
    try:
        return parse(text)
    except HeaderValueError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)  # one line, as users see it
        return None


def round_trips(grammar: Any, text: str, **kw: bool) -> None:
    """grammar.parse(text) refuses in one line, or its value survives serialise and parse,
    and normalise is idempotent and keeps the meaning (equal both ways)."""
    value = parsed(lambda t: grammar.parse(t, **kw), text)
    if value is None:
        return
    assert grammar.parse(grammar.serialise(value), **kw) == value
    norm = grammar.normalise(text)
    assert grammar.normalise(norm) == norm
    assert grammar.equal(text, norm) and grammar.equal(norm, text)


@s.FUZZ
@given(s.HSTS)
def test_hsts(text: str) -> None:
    """HSTS: parse or a one-line refusal; serialise round-trips; normalise keeps meaning."""
    round_trips(hsts, text)


@s.FUZZ
@given(s.CSP, st.booleans())
def test_csp(text: str, strict: bool) -> None:
    """CSP (lenient as browsers, strict as for plans): round trip, normalise, equal."""
    round_trips(csp, text, strict=strict)


@s.FUZZ
@given(s.PERMISSIONS, st.booleans())
def test_permissions_policy(text: str, strict: bool) -> None:
    """Permissions-Policy (an RFC 9651 dictionary): round trip, normalise, equal."""
    round_trips(permissions, text, strict=strict)


SIMPLE = [
    pytest.param(simple.parse_frame_options, s.FRAME_OPTIONS, id="x-frame-options"),
    pytest.param(
        simple.parse_content_type_options, s.CONTENT_TYPE_OPTIONS, id="x-content-type-options"
    ),
    pytest.param(simple.parse_referrer_policy, s.REFERRER, id="referrer-policy"),
]


@pytest.mark.parametrize(("parse", "texts"), SIMPLE)
@s.FUZZ
@given(data=st.data(), strict=st.booleans())
def test_simple_grammars(
    parse: Callable[..., simple.Simple],
    texts: st.SearchStrategy[str],
    data: st.DataObject,
    strict: bool,
) -> None:
    """X-Frame-Options, X-Content-Type-Options, Referrer-Policy: round trip and equal."""
    text = data.draw(texts)
    value = parsed(lambda t: parse(t, strict=strict), text)
    if value is None:
        return
    again = parse(simple.serialise(value), strict=strict)
    assert again == value and simple.equal(again, value) and simple.equal(value, again)


def test_allow_from_list_round_trips() -> None:
    """X-Frame-Options `ALLOW-FROM, ALLOW-FROM` (one distinct element, no origin) parses to
    a value whose serialisation parses back to the same value."""
    value = simple.parse_frame_options("ALLOW-FROM, ALLOW-FROM,ALLOW-FROM")
    assert value == simple.FrameOptions("ALLOW-FROM", None)
    assert simple.parse_frame_options(simple.serialise(value)) == value


@s.FUZZ
@given(s.VALUE)
def test_any_value(text: str) -> None:
    """Any header value: accepted only as one trimmed line of visible ASCII."""
    value = parsed(check_value, text)
    if value is None:
        return
    assert value == text and value == value.strip(" \t")
    assert all(c == "\t" or " " <= c <= "~" for c in value)
    assert simple.parse_other(value).text == value


NAMES = [*sorted(headers.grammar_names()), "x-custom-header"]
BY_NAME = {
    "strict-transport-security": s.HSTS,
    "content-security-policy": s.CSP,
    "content-security-policy-report-only": s.CSP,
    "permissions-policy": s.PERMISSIONS,
    "x-frame-options": s.FRAME_OPTIONS,
    "x-content-type-options": s.CONTENT_TYPE_OPTIONS,
    "referrer-policy": s.REFERRER,
}


@pytest.mark.parametrize("name", NAMES)
@s.FUZZ_SHARE
@given(data=st.data())
def test_registry(name: str, data: st.DataObject) -> None:
    """validate, normalise and compare by header name: no traceback; compare(v, v) and
    compare(v, normalise(v)) find nothing; compare is symmetric in what it calls equal."""
    texts = BY_NAME.get(name, s.VALUE)
    a, b = data.draw(texts), data.draw(texts)
    valid = parsed(lambda t: headers.validate(name, t), a) is not None
    for text in (a, b):
        result = headers.compare(name, text, text)
        assert result is None or ("\n" not in result and result)
    same = headers.compare(name, a, b)
    assert (same is None) == (headers.compare(name, b, a) is None), (a, b)
    if valid:
        assert headers.compare(name, a, a) is None
        assert headers.compare(name, a, headers.normalise(name, a)) is None
    if same is None and valid:
        assert parsed(lambda t: headers.validate(name, t), headers.normalise(name, b)) is not None


@pytest.mark.parametrize("name", NAMES)
@s.FUZZ_SHARE
@given(data=st.data(), bad=st.sampled_from(["\r", "\n", "\r\n", "\x00"]))
def test_no_header_injection_passes_validate(name: str, data: st.DataObject, bad: str) -> None:
    """A value holding CR, LF or NUL anywhere is refused, whatever the header."""
    text = data.draw(BY_NAME.get(name, s.VALUE))
    at = data.draw(st.integers(0, len(text)))
    with pytest.raises(HeaderValueError):
        headers.validate(name, text[:at] + bad + "X-Injected: 1" + text[at:])
