"""Checks that apply to every header name and value."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout.errors import HeaderValueError
from rollout.headers.value import check_name, check_value, clean, describe, list_members


@pytest.mark.parametrize(
    "value",
    ["nosniff", "max-age=300; includeSubDomains", "a\tb", "default-src 'self'", "~!#$%&*"],
)
def test_clean_values_pass_unchanged(value: str) -> None:
    """One line of visible ASCII, spaces and inner tabs is returned as is."""
    assert check_value(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "a\r\nSet-Cookie: x=1",
            "the value has a carriage return (CR) '\\r' at character 2: "
            "header values are a single line; remove it",
        ),
        (
            "max-age=1\n",
            "the value has a line feed (LF) '\\n' at character 10: "
            "header values are a single line; remove it",
        ),
        ("a\x00b", "the value has a NUL byte '\\x00' at character 2: remove it"),
        ("a\x1bb", "the value has a control character '\\x1b' at character 2: remove it"),
        ("a\x7fb", "the value has a DEL character '\\x7f' at character 2: remove it"),
        (
            "caf\u00e9",
            "the value has a non-ASCII character 'é' (U+00E9) at character 4: "
            "write it as visible ASCII, e.g. percent-encode it in URLs",
        ),
        ("", "the value is empty; give a value or leave the header out"),
        (" DENY", "the value has leading or trailing whitespace at character 1: remove it"),
        ("DENY\t", "the value has leading or trailing whitespace at character 5: remove it"),
    ],
)
def test_bad_values_are_refused_with_where_and_how(value: str, message: str) -> None:
    """Each refused value names the character, its position and the fix."""
    with pytest.raises(HeaderValueError) as caught:
        check_value(value)
    assert str(caught.value) == message


def test_clean_trims_like_an_http_parser() -> None:
    """Live values are trimmed before the checks, as servers and clients trim them."""
    assert clean("  DENY \t") == "DENY"


@pytest.mark.parametrize("name", ["X-Frame-Options", "x-custom_header", "a", "A.B~c"])
def test_token_names_pass(name: str) -> None:
    """RFC 9110 tokens are valid header names."""
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "the header name is empty"),
        (
            "X Frame",
            "the header name 'X Frame' has ' ' at character 2: "
            "header names are letters, digits and !#$%&'*+-.^_`|~ only",
        ),
        (
            "x:y",
            "the header name 'x:y' has ':' at character 2: "
            "header names are letters, digits and !#$%&'*+-.^_`|~ only",
        ),
    ],
)
def test_bad_names_are_refused(name: str, message: str) -> None:
    """A header name that is not a token is refused with the offending character."""
    with pytest.raises(HeaderValueError) as caught:
        check_name(name)
    assert str(caught.value) == message


@given(st.text())
def test_check_value_raises_only_header_value_error(text: str) -> None:
    """Arbitrary text is either accepted unchanged or refused with HeaderValueError."""
    with contextlib.suppress(HeaderValueError):
        assert check_value(text) == text


@given(st.text())
def test_check_name_raises_only_header_value_error(text: str) -> None:
    """Arbitrary text is either a valid name or refused with HeaderValueError."""
    with contextlib.suppress(HeaderValueError):
        assert check_name(text) == text


@pytest.mark.parametrize(
    ("text", "members"),
    [
        ("DENY", ["DENY"]),
        ("DENY, DENY", ["DENY", "DENY"]),
        (" a ,\tb,, ,c ", ["a", "b", "c"]),
        (",", []),
        ('max-age=1; foo="a,b"', ['max-age=1; foo="a,b"']),
        ('a="x\\",y", b', ['a="x\\",y"', "b"]),
        ('a="x\\\\", b', ['a="x\\\\"', "b"]),
        ('a="open, b', ['a="open, b']),
        ('"\\"", x', ['"\\""', "x"]),
        ("a\x0b, b", ["a\x0b", "b"]),
        ("\x0b,a", ["\x0b", "a"]),
    ],
)
def test_list_members_split_on_commas_outside_quotes(text: str, members: list[str]) -> None:
    """RFC 9110 §5.6.1: members trimmed, empty ones skipped, quoted commas and escapes kept."""
    assert list_members(text) == members


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\x7f", "a DEL character '\\x7f'"),
        ("\x80", "a non-ASCII character '\\x80' (U+0080)"),
        ("\x1b", "a control character '\\x1b'"),
        ("~", "'~'"),
    ],
)
def test_describe_names_the_character(char: str, shown: str) -> None:
    """Messages name a character the way a user can find it."""
    assert describe(char) == shown


@pytest.mark.parametrize(
    ("value", "how"),
    [
        ("a\x80", "write it as visible ASCII, e.g. percent-encode it in URLs"),
        ("a\x7f", "remove it"),
        ("a\rb", "header values are a single line; remove it"),
        ("a\nb", "header values are a single line; remove it"),
    ],
)
def test_each_refused_character_says_what_to_do(value: str, how: str) -> None:
    """Non-ASCII is to be encoded, a line break joined, any other control removed."""
    with pytest.raises(HeaderValueError) as caught:
        check_value(value)
    assert str(caught.value).endswith(f"at character 2: {how}")
