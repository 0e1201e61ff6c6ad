"""X-Frame-Options, X-Content-Type-Options, Referrer-Policy and other one-word headers."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout.errors import HeaderValueError
from rollout.headers import simple
from rollout.headers.simple import (
    REFERRER_POLICIES,
    ContentTypeOptions,
    FrameOptions,
    Other,
    ReferrerPolicy,
)

HEADERISH = st.text(alphabet="denysamorigDENYSAMEORIGIN-, \tallowfrmnsifctp:/.", max_size=40)


@pytest.mark.parametrize("value", ["DENY", "deny", "Deny", " DENY ", "DENY, deny"])
def test_frame_options_spellings_of_deny(value: str) -> None:
    """Case and spacing are free, and a repeated value is one value."""
    assert simple.parse_frame_options(value) == FrameOptions("DENY")


def test_frame_options_differ() -> None:
    """SAMEORIGIN is not DENY."""
    reason = simple.diff(
        simple.parse_frame_options("DENY"), simple.parse_frame_options("sameorigin")
    )
    assert reason == "X-Frame-Options is SAMEORIGIN, the stage wants DENY"


def test_frame_options_allow_from_is_read_live_and_warned() -> None:
    """A live ALLOW-FROM parses, so verify can warn about it and say it differs."""
    live = simple.parse_frame_options("ALLOW-FROM https://a.example")
    assert live == FrameOptions("ALLOW-FROM", "https://a.example")
    assert simple.warnings(live) == [
        "X-Frame-Options: ALLOW-FROM is obsolete and browsers ignore it, leaving framing open: "
        "send DENY or SAMEORIGIN and use CSP frame-ancestors"
    ]
    assert simple.diff(FrameOptions("DENY"), live) == (
        "X-Frame-Options is ALLOW-FROM https://a.example, the stage wants DENY"
    )


@pytest.mark.parametrize(
    ("value", "strict", "message"),
    [
        (
            "ALLOW-FROM https://a.example",
            True,
            "ALLOW-FROM is obsolete and browsers ignore it: use DENY or SAMEORIGIN, and CSP "
            "frame-ancestors to allow other origins",
        ),
        (
            "DENY, SAMEORIGIN",
            False,
            "X-Frame-Options 'DENY, SAMEORIGIN' holds more than one value: send exactly one, "
            "DENY or SAMEORIGIN",
        ),
        (
            "DENY, DENY",
            True,
            "X-Frame-Options 'DENY, DENY' holds more than one value: send exactly one, "
            "DENY or SAMEORIGIN",
        ),
        ("ALLOWALL", False, "X-Frame-Options 'ALLOWALL' is not DENY or SAMEORIGIN"),
        (
            ",",
            False,
            "X-Frame-Options ',' holds more than one value: send exactly one, DENY or SAMEORIGIN",
        ),
    ],
)
def test_frame_options_refusals(value: str, strict: bool, message: str) -> None:
    """Obsolete, conflicting and unknown values are refused with the fix."""
    with pytest.raises(HeaderValueError) as caught:
        simple.parse_frame_options(value, strict=strict)
    assert str(caught.value) == message


@pytest.mark.parametrize("value", ["nosniff", "NOSNIFF", "NoSniff"])
def test_nosniff_any_case(value: str) -> None:
    """nosniff is case-insensitive."""
    assert simple.parse_content_type_options(value, strict=True) == ContentTypeOptions()


def test_nosniff_live_list_uses_first_element() -> None:
    """Browsers look at the first element of a live list only; a plan wants exactly nosniff."""
    assert simple.parse_content_type_options("nosniff, nosniff") == ContentTypeOptions()
    with pytest.raises(HeaderValueError) as caught:
        simple.parse_content_type_options("nosniff, nosniff", strict=True)
    assert (
        str(caught.value)
        == "X-Content-Type-Options 'nosniff, nosniff' is not nosniff: send nosniff"
    )


def test_nosniff_refuses_other_values() -> None:
    """Anything but nosniff is refused."""
    with pytest.raises(HeaderValueError) as caught:
        simple.parse_content_type_options("sniff")
    assert str(caught.value) == "X-Content-Type-Options 'sniff' is not nosniff: send nosniff"


def test_referrer_policy_effective_token_is_the_last_known() -> None:
    """A browser uses the last token it knows, skipping unknown ones."""
    policy = simple.parse_referrer_policy("no-referrer, Strict-Origin-When-Cross-Origin, future")
    assert policy.tokens == ("no-referrer", "strict-origin-when-cross-origin", "future")
    assert policy.effective == "strict-origin-when-cross-origin"


@pytest.mark.parametrize(
    "value", ["no-referrer, same-origin", "NO-REFERRER,SAME-ORIGIN", " no-referrer ,  same-origin"]
)
def test_referrer_policy_equal_spellings(value: str) -> None:
    """Case and spacing are free."""
    assert simple.equal(
        simple.parse_referrer_policy(value),
        simple.parse_referrer_policy("no-referrer, same-origin"),
    )


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ("no-referrer", "no-referrer, no-referrer"),
        ("strict-origin-when-cross-origin", "no-referrer, strict-origin-when-cross-origin"),
        ("no-referrer, same-origin", "same-origin"),
        ("same-origin", "same-origin, future-policy"),
        ("unsafe-url, no-referrer", "NO-REFERRER"),
    ],
)
def test_referrer_policy_equal_by_effective_policy(expected: str, actual: str) -> None:
    """Values whose last known token is the same policy are equal, whatever the fallbacks."""
    wanted, got = simple.parse_referrer_policy(expected), simple.parse_referrer_policy(actual)
    assert simple.diff(wanted, got) is None
    assert simple.diff(got, wanted) is None
    assert simple.canonical(wanted) == simple.canonical(got)


@pytest.mark.parametrize(
    ("expected", "actual", "reason"),
    [
        (
            "strict-origin-when-cross-origin",
            "no-referrer",
            "Referrer-Policy is no-referrer, the stage wants strict-origin-when-cross-origin",
        ),
        (
            "no-referrer",
            "no-referrer, unsafe-url",
            "Referrer-Policy is unsafe-url (from 'no-referrer, unsafe-url'), the stage wants "
            "no-referrer",
        ),
        (
            "no-referrer, same-origin",
            "same-origin, no-referrer",
            "Referrer-Policy is no-referrer (from 'same-origin, no-referrer'), the stage wants "
            "same-origin",
        ),
    ],
)
def test_referrer_policy_differences(expected: str, actual: str, reason: str) -> None:
    """Another effective policy differs, and the reason names the one the browser applies."""
    assert (
        simple.diff(simple.parse_referrer_policy(expected), simple.parse_referrer_policy(actual))
        == reason
    )


def test_referrer_policy_canonical_is_the_effective_policy() -> None:
    """The normalised text of a list is the policy a browser applies."""
    assert simple.canonical(simple.parse_referrer_policy("no-referrer, Same-Origin")) == (
        "same-origin"
    )


@pytest.mark.parametrize(
    ("value", "strict", "message"),
    [
        (
            "no-referer",
            False,
            "Referrer-Policy: no-referer is not a referrer policy: use one of "
            + ", ".join(REFERRER_POLICIES),
        ),
        (
            "no-referer, same-origin",
            True,
            "Referrer-Policy: no-referer is not a referrer policy: use one of "
            + ", ".join(REFERRER_POLICIES),
        ),
        (
            "no-referrer,,same-origin",
            True,
            "Referrer-Policy 'no-referrer,,same-origin' has an empty item between ',': "
            "remove the extra ','",
        ),
        (
            ",",
            False,
            "Referrer-Policy: ',' is not a referrer policy: use one of "
            + ", ".join(REFERRER_POLICIES),
        ),
        (
            "X, origin, nope",
            True,
            "Referrer-Policy: x, nope are not referrer policies: use one of "
            + ", ".join(REFERRER_POLICIES),
        ),
    ],
)
def test_referrer_policy_refusals(value: str, strict: bool, message: str) -> None:
    """Unknown-only lists always, and unknown tokens or empty items in a plan, are refused."""
    with pytest.raises(HeaderValueError) as caught:
        simple.parse_referrer_policy(value, strict=strict)
    assert str(caught.value) == message


def test_other_headers_compare_trimmed_and_case_insensitively() -> None:
    """A header without a grammar compares trimmed and ignoring case."""
    assert simple.diff(simple.parse_other("0"), simple.parse_other(" 0 ")) is None
    assert simple.diff(simple.parse_other("Same-Origin"), simple.parse_other("same-origin")) is None
    assert (
        simple.diff(simple.parse_other("0"), simple.parse_other("1; mode=block"))
        == "value is '1; mode=block', the stage wants '0'"
    )


@given(st.one_of(st.text(max_size=30), HEADERISH), st.booleans())
def test_parsers_raise_only_header_value_error(text: str, strict: bool) -> None:
    """Arbitrary text parses or is refused with HeaderValueError, by every parser here."""
    for parse in (
        simple.parse_frame_options,
        simple.parse_content_type_options,
        simple.parse_referrer_policy,
    ):
        with contextlib.suppress(HeaderValueError):
            parse(text, strict=strict)
    with contextlib.suppress(HeaderValueError):
        simple.parse_other(text)


_ORIGIN = st.from_regex(r"https://[a-z]{1,8}\.example", fullmatch=True)
_TOKENS = st.lists(
    st.one_of(
        st.sampled_from(REFERRER_POLICIES), st.from_regex(r"[a-z][a-z-]{0,8}", fullmatch=True)
    ),
    max_size=3,
)


@given(
    st.one_of(
        st.sampled_from([FrameOptions("DENY"), FrameOptions("SAMEORIGIN"), ContentTypeOptions()]),
        st.builds(FrameOptions, st.just("ALLOW-FROM"), _ORIGIN),
        st.builds(
            lambda head, known: ReferrerPolicy((*head, known)),
            _TOKENS,
            st.sampled_from(REFERRER_POLICIES),
        ),
        st.builds(Other, st.from_regex(r"[!-~]([ -~]{0,10}[!-~])?", fullmatch=True)),
    )
)
def test_parse_inverts_serialise(value: simple.Simple) -> None:
    """parse(serialise(v)) gives v back for every simple header."""
    parse = {
        FrameOptions: simple.parse_frame_options,
        ContentTypeOptions: simple.parse_content_type_options,
        ReferrerPolicy: simple.parse_referrer_policy,
        Other: simple.parse_other,
    }[type(value)]
    assert parse(simple.serialise(value)) == value


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("ALLOW-FROM", None),
        ("allow-from https://a.example", "https://a.example"),
        ("ALLOW-FROM\thttps://a.example  and more", "https://a.example  and more"),
    ],
)
def test_allow_from_keeps_what_follows_it(value: str, origin: str | None) -> None:
    """Live ALLOW-FROM parses (to warn), keeping everything after the first blank as origin."""
    assert simple.parse_frame_options(value) == simple.FrameOptions("ALLOW-FROM", origin)


def test_allow_from_serialises_with_or_without_its_origin() -> None:
    """ALLOW-FROM is written back as sent: with its origin, or bare when it had none."""
    assert simple.serialise(simple.FrameOptions("ALLOW-FROM")) == "ALLOW-FROM"
    assert (
        simple.serialise(simple.parse_frame_options("allow-from https://a.example"))
        == "ALLOW-FROM https://a.example"
    )


@pytest.mark.parametrize("value", ["DENY", "sameorigin"])
def test_deny_and_sameorigin_draw_no_warning(value: str) -> None:
    """Only ALLOW-FROM warns; the two modes browsers honour do not."""
    assert simple.warnings(simple.parse_frame_options(value)) == []
    assert simple.warnings(simple.parse_referrer_policy("origin")) == []
