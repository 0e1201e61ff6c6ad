"""Permissions-Policy as an RFC 8941 dictionary of allowlists."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout.errors import HeaderValueError
from rollout.headers import permissions
from rollout.headers.permissions import Feature, PermissionsPolicy

POLICY = 'geolocation=(), camera=(self "https://a.example"), microphone=()'
HEADERISH = st.text(alphabet="camerglo=()*, ;'\"selfnoneSELF:/.x-_?1", max_size=40)


@pytest.mark.parametrize(
    "value",
    [
        POLICY,
        'microphone=(), camera=("https://a.example" self), geolocation=()',
        'geolocation=(),camera=(self  "https://A.EXAMPLE"),microphone=()',
        'geolocation=(), camera=(self "https://a.example/" self), microphone=()',
        'geolocation=(), camera=(self "https://a.example"), microphone=(), geolocation=()',
    ],
)
def test_equal_spellings(value: str) -> None:
    """Member and item order, spacing, repeats and origin case are free."""
    assert permissions.equal(value, POLICY)
    assert permissions.normalise(value) == permissions.normalise(POLICY)


def test_origin_default_port_is_free() -> None:
    """An origin with its scheme's default port is that origin; another port is not."""
    assert permissions.equal('camera=("https://a.example:443")', 'camera=("https://a.example")')
    assert permissions.equal('camera=("http://a.example:80/")', 'camera=("http://a.example")')
    assert permissions.diff(
        permissions.parse('camera=("https://a.example")'),
        permissions.parse('camera=("https://a.example:80")'),
    ) == ('camera allows ("https://a.example:80"), the stage wants ("https://a.example")')


def test_bare_item_equals_a_list_of_one() -> None:
    """The spec treats camera=self like camera=(self), and a string like a list of it."""
    assert permissions.equal("camera=self, usb=*", "camera=(self), usb=(*)")
    assert permissions.equal('camera="https://a.example"', 'camera=("https://a.example")')


def test_star_anywhere_allows_everyone() -> None:
    """A * in a list allows every origin, whatever else the list holds."""
    assert permissions.equal("camera=(self *)", "camera=*")


def test_parameters_are_compared() -> None:
    """Member parameters such as report-to count; their order does not."""
    assert not permissions.equal("camera=();report-to=ep", "camera=()")
    assert permissions.equal("camera=();a=1;b", "camera=();b;a=1")


@pytest.mark.parametrize(
    ("actual", "reason"),
    [
        (
            "geolocation=(), camera=(self), microphone=()",
            'camera allows (self), the stage wants (self "https://a.example")',
        ),
        (
            'geolocation=(), camera=(self "https://a.example")',
            "microphone is missing, the stage wants microphone=()",
        ),
        (
            POLICY + ", usb=()",
            "usb=() is not in the stage's policy",
        ),
        (
            'geolocation=(self), camera=(self "https://a.example"), microphone=();report-to=x',
            "geolocation allows (self), the stage wants (); "
            "microphone allows ();report-to=x, the stage wants ()",
        ),
    ],
)
def test_diff_names_the_feature(actual: str, reason: str) -> None:
    """A different policy fails naming the feature and both allowlists."""
    assert not permissions.equal(actual, POLICY)
    assert permissions.diff(permissions.parse(POLICY), permissions.parse(actual)) == reason


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("geolocation 'none'; camera 'self'", "geolocation=(), camera=(self)"),
        ("geolocation 'none'", "geolocation=()"),
        (
            "Camera 'self' https://a.example; usb *; fullscreen 'src'",
            'camera=(self "https://a.example"), usb=(*), fullscreen=()',
        ),
    ],
)
def test_feature_policy_syntax_is_refused_with_the_fix(old: str, new: str) -> None:
    """The old Feature-Policy syntax is refused with the corrected Permissions-Policy value."""
    with pytest.raises(HeaderValueError) as caught:
        permissions.parse(old)
    assert str(caught.value) == (
        "this is the old Feature-Policy syntax, which browsers ignore in Permissions-Policy: "
        f"write {new}"
    )
    assert permissions.equal(new, permissions.from_feature_policy(old) or "")


def test_from_feature_policy_declines_other_text() -> None:
    """Text that is not Feature-Policy gets no conversion."""
    assert permissions.from_feature_policy("camera") is None
    assert permissions.from_feature_policy("camera=()") is None
    assert permissions.from_feature_policy("camera 'bogus'") is None
    assert permissions.from_feature_policy(";") is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "camera",
            "camera has no allowlist: write camera=() to block it or camera=(self) to allow "
            "this origin",
        ),
        (
            "camera=none",
            'camera: none is not self, * or an origin in double quotes like "https://a.example"; '
            "e.g. camera=()",
        ),
        (
            "camera=(self foo)",
            'camera: foo is not self, * or an origin in double quotes like "https://a.example"; '
            "e.g. camera=(self)",
        ),
        (
            'camera=("a.example")',
            'camera: "a.example" is not self, * or an origin in double quotes like '
            '"https://a.example"; e.g. camera=(self)',
        ),
        (
            "camera=1",
            'camera: 1 is not self, * or an origin in double quotes like "https://a.example"; '
            "e.g. camera=(self)",
        ),
    ],
)
def test_strict_parse_refuses_what_browsers_ignore(value: str, message: str) -> None:
    """Plan values: every member needs an allowlist of self, * or quoted origins."""
    with pytest.raises(HeaderValueError) as caught:
        permissions.parse(value, strict=True)
    assert str(caught.value) == message
    permissions.parse(value)  # a live value like this still parses, for compare to explain


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "Camera=()",
            'not an RFC 9651 dictionary like geolocation=(), camera=(self "https://a.example") '
            "(Key cannot begin with an uppercase character at character 1); feature names are "
            "lower-case",
        ),
        (
            "camera=('self')",
            'not an RFC 9651 dictionary like geolocation=(), camera=(self "https://a.example") '
            "(Strings must be double-quoted at character 9); write self and * without quotes, "
            "origins in double quotes",
        ),
        (
            "camera=(),",
            'not an RFC 9651 dictionary like geolocation=(), camera=(self "https://a.example") '
            "(Dictionary has trailing comma at character 11)",
        ),
        (
            "camera=(self",
            'not an RFC 9651 dictionary like geolocation=(), camera=(self "https://a.example") '
            "(End of inner list not found at character 13)",
        ),
    ],
)
def test_syntax_errors_are_explained(value: str, message: str) -> None:
    """A value that is not a structured-field dictionary is refused with a hint."""
    with pytest.raises(HeaderValueError) as caught:
        permissions.parse(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("v=1.", "Decimal ends in '.' at character 4"),
        (":=aGVsbG8=:", "Key does not begin with lcalpha or * at character 1"),
        ("camera=(), geolocation=1.", "Decimal ends in '.' at character 25"),
        # RFC 9651 §4.2.4: at most three fractional digits; §4.2.4 also caps integers at 15.
        ("a=1.2345", None),
        ("a=1234567890123456", None),
        ("a=?2", None),
        ("a=(self", None),
    ],
)
def test_rfc_9651_refusals_are_refused(value: str, detail: str | None) -> None:
    """Values RFC 9651's parsing algorithm rejects (browsers drop the header) never pass."""
    with pytest.raises(HeaderValueError) as caught:
        permissions.parse(value)
    assert detail is None or f"({detail})" in str(caught.value)
    assert permissions_compare(value).startswith("the value is invalid: not an RFC 9651 dictionary")


def permissions_compare(actual: str) -> str:
    """What verify says of a live Permissions-Policy value against the stage's policy."""
    from rollout import headers

    return headers.compare("permissions-policy", "geolocation=()", actual) or ""


def test_grammar_imports_http_sf_only_when_a_value_is_read() -> None:
    """Importing the registry stays cheap: http_sf loads on the first Permissions-Policy read."""
    code = (
        "import sys, rollout.headers as h\n"
        "print('http_sf' in sys.modules)\n"
        "h.compare('permissions-policy', 'camera=()', 'camera=()')\n"
        "print('http_sf' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


@given(st.one_of(st.text(max_size=40), HEADERISH), st.booleans())
def test_parse_raises_only_header_value_error(text: str, strict: bool) -> None:
    """Arbitrary text parses or is refused with HeaderValueError, nothing else."""
    with contextlib.suppress(HeaderValueError):
        permissions.parse(text, strict=strict)


_KEY = st.from_regex(r"[a-z*][a-z0-9_.*-]{0,8}", fullmatch=True)
_ITEM = st.sampled_from(["self", "*", '"https://a.example"', '"https://b.example:8443"'])
_PARAM = st.sampled_from(["report-to=ep", 'report-to="x y"', "a", "b=1"])


@st.composite
def features(draw: st.DrawFn) -> Feature:
    """Any member: an inner list, or a bare item, with parameters."""
    bare = draw(st.booleans())
    allowlist = (draw(_ITEM),) if bare else tuple(draw(st.lists(_ITEM, max_size=3)))
    params = draw(st.lists(_PARAM, max_size=2, unique_by=lambda p: p.split("=")[0]))
    return Feature(draw(_KEY), allowlist, tuple(params), bare)


@given(st.lists(features(), min_size=1, max_size=4, unique_by=lambda f: f.name))
def test_parse_inverts_serialise(members: list[Feature]) -> None:
    """parse(serialise(v)) gives v back, and normalising keeps it equal."""
    value = PermissionsPolicy(tuple(members))
    text = permissions.serialise(value)
    assert permissions.parse(text) == value
    assert permissions.equal(permissions.normalise(text), value)


def test_strict_parse_accepts_self_star_and_quoted_origins() -> None:
    """Plan values: self, * and double-quoted origins are the allowlist items browsers know."""
    value = 'camera=*, usb=(self *), geolocation=("https://a.example" "https://b.example:8443")'
    policy = permissions.parse(value, strict=True)
    assert [f.allowlist for f in policy.features] == [
        ("*",),
        ("self", "*"),
        ('"https://a.example"', '"https://b.example:8443"'),
    ]
    # The shortest origin the pattern takes: one-letter scheme and host, quotes not part of it.
    assert permissions.parse('camera=("h://a")', strict=True).features[0].allowlist == ('"h://a"',)


def test_strict_parse_fix_for_none_in_any_case() -> None:
    """A token none, in any case, is answered with the empty list that blocks the feature."""
    with pytest.raises(HeaderValueError) as caught:
        permissions.parse("camera=NONE", strict=True)
    assert str(caught.value).endswith("e.g. camera=()")


def test_feature_policy_with_empty_parts_is_converted_whole() -> None:
    """Empty directives in an old Feature-Policy value are skipped, not an end."""
    assert permissions.from_feature_policy("geolocation 'none';; camera 'self';") == (
        "geolocation=(), camera=(self)"
    )


def test_diff_shows_every_parameter() -> None:
    """A member's parameters are all shown, each after its ';'."""
    assert (
        permissions.diff(permissions.parse("camera=()"), permissions.parse("camera=();a;b=1"))
        == "camera allows ();a;b=1, the stage wants ()"
    )


def test_tokens_are_not_origins() -> None:
    """A token that looks like an origin is no origin to browsers: compared as written."""
    assert not permissions.equal("camera=(https://A.example)", "camera=(https://a.example)")
    assert permissions.equal('camera=("https://A.example")', 'camera=("https://a.example")')


def test_a_star_list_normalises_to_star() -> None:
    """A list holding * normalises to *, which allows every origin."""
    assert permissions.normalise('camera=(self * "https://a.example")') == "camera=(*)"
