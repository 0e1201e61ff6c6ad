"""The header registry: validate, compare and warn about any header value by its name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from rollout.errors import HeaderValueError
from rollout.headers import csp, hsts, permissions, simple
from rollout.headers.value import check_name, check_value, list_members
from rollout.names import CSP, CSP_RO, HSTS, NOSNIFF, PERMISSIONS, REFERRER, XFO

__all__ = ["compare", "grammar_names", "members", "normalise", "validate", "warnings"]


@dataclass(frozen=True)
class _Grammar:
    """How to read one header: live (lenient) and plan (strict) parsers, diff, warnings."""

    parse: Callable[[str], Any]
    strict: Callable[[str], Any]
    diff: Callable[[Any, Any], str | None]
    warnings: Callable[[Any], list[str]]
    normalise: Callable[[str], str]
    # The header's own grammar is a comma list (CSP: policies, Permissions-Policy: a
    # dictionary, Referrer-Policy: fallbacks), so a comma in one line is part of the value.
    is_list: bool = False


def _none(_: object) -> list[str]:
    return []


_CSP = _Grammar(
    csp.parse, partial(csp.parse, strict=True), csp.diff, csp.warnings, csp.normalise, True
)
_GRAMMARS: dict[str, _Grammar] = {
    HSTS: _Grammar(hsts.parse, hsts.parse, hsts.diff, hsts.warnings, hsts.normalise),
    CSP: _CSP,
    CSP_RO: _CSP,
    PERMISSIONS: _Grammar(
        permissions.parse,
        partial(permissions.parse, strict=True),
        permissions.diff,
        _none,
        permissions.normalise,
        True,
    ),
}


def _canonical(parse: Callable[[str], Any], value: str) -> str:
    return simple.canonical(parse(value))


# Built here, at import, not by a helper function: code that runs only while the module
# is imported is out of reach of the mutation tests (docs/mutation.md).
for _name, _parse, _is_list in (
    (XFO, simple.parse_frame_options, False),
    (NOSNIFF, simple.parse_content_type_options, False),
    (REFERRER, simple.parse_referrer_policy, True),
):
    _GRAMMARS[_name] = _Grammar(
        _parse,
        partial(_parse, strict=True),
        simple.diff,
        simple.warnings,
        partial(_canonical, _parse),
        _is_list,
    )
del _name, _parse, _is_list
_OTHER = _Grammar(
    simple.parse_other,
    simple.parse_other,
    simple.diff,
    _none,
    lambda value: simple.parse_other(value).text.lower(),
)


def grammar_names() -> frozenset[str]:
    """The lower-case header names that have a grammar of their own."""
    return frozenset(_GRAMMARS)


def _grammar(name: str) -> _Grammar:
    return _GRAMMARS.get(name.lower(), _OTHER)


def validate(name: str, value: str) -> str:
    """Return value if it is a valid plan value for header name; else raise HeaderValueError."""
    check_name(name)
    _grammar(name).strict(check_value(value))
    return value


def members(name: str, line: str, expected: str) -> list[str]:
    """The occurrences of header name that one field line holds (RFC 9110 §5.3).

    An intermediary joins two layers' lines into one, comma-separated, so each member
    of a comma list counts as one occurrence: `X-Frame-Options: DENY, DENY` is the header
    twice. Not where the header's own grammar is a list, where the line is one value;
    for a header without a grammar here, where the stage's own value holds a comma.
    """
    name = name.lower()
    grammar = _GRAMMARS.get(name)
    as_list = grammar.is_list if grammar else len(list_members(expected)) > 1
    if as_list:
        return [line] if line.strip(" \t") else []
    return list_members(line)


def normalise(name: str, value: str) -> str:
    """value in canonical form: semantically equal values normalise to the same text."""
    return _grammar(name).normalise(value)


# verify judges the same few values on every page of a site: the grammars are pure
# functions of text, so each distinct (name, expected, actual) is parsed once per process.
@lru_cache(maxsize=4096)
def compare(name: str, expected: str, actual: str) -> str | None:
    """None if actual means the same as expected, else one line saying how it differs."""
    grammar = _grammar(name)
    try:
        wanted = grammar.parse(expected)
    except HeaderValueError as error:
        return f"the stage's own value {expected!r} is invalid: {error}"
    try:
        got = grammar.parse(actual)
    except HeaderValueError as error:
        return f"the value is invalid: {error}"
    return grammar.diff(wanted, got)


def warnings(name: str, value: str) -> list[str]:
    """Legal but doubtful things a live value does; [] if it does not parse (compare says so)."""
    return list(_warnings(name, value))


@lru_cache(maxsize=4096)
def _warnings(name: str, value: str) -> tuple[str, ...]:
    grammar = _grammar(name)
    try:
        return tuple(grammar.warnings(grammar.parse(value)))
    except HeaderValueError:
        return ()
