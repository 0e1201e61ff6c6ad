"""Strict-Transport-Security by RFC 6797 §6.1 and hstspreload.org's rules."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout import headers
from rollout.errors import HeaderValueError
from rollout.headers import hsts
from rollout.headers.hsts import HSTS
from rollout.names import HSTS as HSTS_NAME

HEADERISH = st.text(
    alphabet="maxgeMAXGE-=;\"\\ \t0123456789includeSubDomainsPRELOADfoo,'", max_size=40
)


@pytest.mark.parametrize(
    "value",
    [
        "max-age=300",
        'max-age="300"',
        'MAX-AGE="300"',
        "Max-Age=300",
        "max-age = 300",
        "max-age=0300",
        ";max-age=300;",
        "max-age=300;;",
        "  max-age=300  ",
        "max-age=300; unknown=1",
        "max-age=300;\tfoo",
        'max-age="30\\0"',
        'max-age="\\3\\0\\0"',
    ],
)
def test_equal_spellings_of_max_age_300(value: str) -> None:
    """Quoting, case, spacing, empty directives and unknown directives do not change the value."""
    assert hsts.equal(value, "max-age=300")


@pytest.mark.parametrize(
    "value",
    [
        "max-age=31536000; includeSubDomains; preload",
        "preload; includeSubDomains; max-age=31536000",
        "INCLUDESUBDOMAINS;PRELOAD;MAX-AGE=31536000",
        'includesubdomains ; max-age="31536000" ; preload',
    ],
)
def test_equal_spellings_with_flags(value: str) -> None:
    """Directive order and case are free."""
    assert hsts.equal(value, "max-age=31536000; includeSubDomains; preload")


def test_parse_keeps_quoting_and_extensions() -> None:
    """The typed value remembers a quoted max-age and unknown directives as written."""
    assert hsts.parse('max-age="60"; Foo=bar; baz="q;x"') == HSTS(
        60, extensions=(("Foo", "bar"), ("baz", '"q;x"')), quoted_max_age=True
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "includeSubDomains",
            "max-age is missing and browsers require it: add max-age=SECONDS, like max-age=300",
        ),
        ("max-age", "max-age has no value: write max-age=SECONDS"),
        ("max-age=", "max-age= has no value at character 9: write max-age=VALUE or drop '='"),
        (
            "max-age=-1",
            "max-age=-1 is not a whole number of seconds: use digits only, like max-age=86400",
        ),
        (
            "max-age=+1",
            "max-age=+1 is not a whole number of seconds: use digits only, like max-age=86400",
        ),
        (
            "max-age=1.5",
            "max-age=1.5 is not a whole number of seconds: use digits only, like max-age=86400",
        ),
        (
            'max-age=""',
            'max-age="" is not a whole number of seconds: use digits only, like max-age=86400',
        ),
        (
            "max-age=1e3",
            "max-age=1e3 is not a whole number of seconds: use digits only, like max-age=86400",
        ),
        (
            "max-age=1; Max-Age=2",
            "directive Max-Age appears more than once, so browsers ignore the whole header: "
            "keep one",
        ),
        (
            "max-age=1; preload; PRELOAD",
            "directive PRELOAD appears more than once, so browsers ignore the whole header: "
            "keep one",
        ),
        (
            "max-age=1; foo; foo=2",
            "directive foo appears more than once, so browsers ignore the whole header: keep one",
        ),
        (
            "max-age=1; includeSubDomains=true",
            "includeSubDomains takes no value: write includeSubDomains, not includeSubDomains=true",
        ),
        ('max-age=1; preload=""', 'preload takes no value: write preload, not preload=""'),
        (
            "max-age=1 includeSubDomains",
            "unexpected 'i' at character 11 after max-age: separate directives with ';'",
        ),
        (
            "max-age=1, includeSubDomains",
            "unexpected ',' at character 10 after max-age: separate directives with ';'",
        ),
        (
            'max-age="1',
            "a quoted value is not closed: add the missing '\"' at the end of 'max-age=\"1'",
        ),
        (
            "=1",
            "expected a directive name at character 1, found '=': "
            "directives look like max-age=300; includeSubDomains",
        ),
        (
            "max-age=1\r\n",
            "the value has a carriage return (CR) '\\r' at character 10: "
            "header values are a single line; remove it",
        ),
    ],
)
def test_invalid_values_are_refused(value: str, message: str) -> None:
    """Each value browsers would ignore is refused with what is wrong and the fix."""
    with pytest.raises(HeaderValueError) as caught:
        hsts.parse(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("expected", "actual", "reason"),
    [
        ("max-age=86400", "max-age=300000", "max-age is 300000, the stage wants 86400"),
        (
            "max-age=300; includeSubDomains",
            "max-age=300",
            "includeSubDomains is missing, the stage wants it",
        ),
        (
            "max-age=300",
            "max-age=300; includeSubDomains",
            "includeSubDomains is present, the stage does not want it",
        ),
        ("max-age=300; preload", "max-age=300", "preload is missing, the stage wants it"),
        (
            "max-age=300",
            "max-age=60; preload",
            "max-age is 60, the stage wants 300; preload is present, the stage does not want it",
        ),
    ],
)
def test_diff_names_each_difference(expected: str, actual: str, reason: str) -> None:
    """A different value fails with every difference in one line."""
    assert not hsts.equal(expected, actual)
    assert hsts.diff(hsts.parse(expected), hsts.parse(actual)) == reason


def test_serialise_is_canonical() -> None:
    """Serialising writes max-age, includeSubDomains, preload, then extensions."""
    h = hsts.parse("preload; foo; includesubdomains; MAX-AGE=10")
    assert hsts.serialise(h) == "max-age=10; includeSubDomains; preload; foo"
    assert hsts.normalise('preload; foo; includesubdomains; MAX-AGE="10"') == (
        "max-age=10; includeSubDomains; preload"
    )


def test_warnings_for_live_values() -> None:
    """Above one year, zero and unknown directives are worth a warning."""
    assert hsts.warnings(hsts.parse("max-age=63072000; includeSubDomain")) == [
        "max-age=63072000 is above 31536000: browsers cap it at one year, "
        "so write max-age=31536000",
        "unknown directive includeSubDomain is ignored by browsers: remove it or fix its name",
    ]
    assert hsts.warnings(hsts.parse("max-age=0")) == [
        "max-age=0 tells browsers to forget HSTS for this host"
    ]
    assert hsts.warnings(hsts.parse("max-age=31536000")) == []


def test_preload_ready_header_has_no_problems() -> None:
    """max-age of a year or more, unquoted, with includeSubDomains and preload may be preloaded."""
    assert hsts.preload_problems(hsts.parse("max-age=63072000; includeSubDomains; preload")) == []


def test_preload_problems_list_every_missing_requirement() -> None:
    """A short, quoted max-age without the flags fails each preload rule."""
    assert hsts.preload_problems(hsts.parse('max-age="300"')) == [
        "max-age is 300; preloading needs at least 31536000 (one year)",
        "max-age is quoted; hstspreload.org needs it unquoted: max-age=300",
        "includeSubDomains is missing; preloading needs it",
        "preload is missing; preloading needs it",
    ]


def test_quoted_year_fails_only_the_quoting_rule() -> None:
    """hstspreload.org refuses a quoted max-age that RFC 6797 accepts."""
    assert hsts.preload_problems(hsts.parse('max-age="31536000"; includeSubDomains; preload')) == [
        "max-age is quoted; hstspreload.org needs it unquoted: max-age=31536000"
    ]


@given(st.one_of(st.text(max_size=40), HEADERISH))
def test_parse_raises_only_header_value_error(text: str) -> None:
    """Arbitrary text parses or is refused with HeaderValueError, nothing else."""
    with contextlib.suppress(HeaderValueError):
        hsts.parse(text)


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789-_.!", min_size=1, max_size=8)
_EXTENSION = st.tuples(
    _TOKEN.filter(lambda n: n.lower() not in {"max-age", "includesubdomains", "preload"}),
    st.one_of(st.none(), _TOKEN, _TOKEN.map(lambda t: f'"{t}; \\"x"')),
)


@st.composite
def hsts_values(draw: st.DrawFn) -> HSTS:
    """Any typed HSTS value, unknown directives included."""
    extensions = draw(st.lists(_EXTENSION, max_size=3, unique_by=lambda e: e[0].lower()))
    return HSTS(
        draw(st.integers(0, 10**12)),
        draw(st.booleans()),
        draw(st.booleans()),
        tuple(extensions),
        draw(st.booleans()),
    )


@given(hsts_values())
def test_parse_inverts_serialise(h: HSTS) -> None:
    """parse(serialise(v)) gives v back, and normalising keeps it equal."""
    assert hsts.parse(hsts.serialise(h)) == h
    assert hsts.equal(hsts.normalise(hsts.serialise(h)), h)


@pytest.mark.parametrize("digits", [45, 4301, 9000])
def test_any_length_of_max_age_is_valid(digits: int) -> None:
    """RFC 6797 sets no length on max-age: a very long one parses and differs, it is not invalid."""
    age = "1" + "0" * (digits - 1)
    parsed = hsts.parse(f"max-age={age}; includeSubDomains")
    assert parsed.max_age == 10 ** (digits - 1) and parsed.include_subdomains
    assert hsts.serialise(parsed) == f"max-age={age}; includeSubDomains"
    shown = age if digits <= 50 else f"100000000000… ({digits} digits)"
    assert headers.compare(HSTS_NAME, "max-age=86400", f"max-age={age}") == (
        f"max-age is {shown}, the stage wants 86400"
    )
    assert hsts.warnings(parsed) == [
        f"max-age={shown} is above 31536000: browsers cap it at one year, so write max-age=31536000"
    ]


def test_a_45_digit_max_age_is_named_in_full() -> None:
    """The issue's case: 45 digits differ from the stage, and the message shows them all."""
    age = "9" * 45
    assert headers.compare(HSTS_NAME, "max-age=86400", f"max-age={age}") == (
        f"max-age is {age}, the stage wants 86400"
    )
    leading_zeros = "max-age=" + "0" * 60 + "86400"
    assert headers.compare(HSTS_NAME, "max-age=86400", leading_zeros) is None


@pytest.mark.parametrize("digits", [50, 51, 640, 641, 700, 1281])
def test_long_max_ages_convert_exactly_at_every_length(digits: int) -> None:
    """Around each conversion piece's edge the number is read and written back exactly."""
    age = "7" + "3" * (digits - 1)
    parsed = hsts.parse(f"max-age={age}")
    assert hsts.serialise(parsed) == f"max-age={age}"
    assert hsts.show(parsed.max_age) == (age if digits <= 50 else f"{age[:12]}… ({digits} digits)")
    assert hsts.show(10**digits) == f"1{'0' * 11}… ({digits + 1} digits)"
