"""Strict-Transport-Security: RFC 6797 §6.1, plus hstspreload.org's preload rules."""

from __future__ import annotations

from dataclasses import dataclass

from rollout.errors import HeaderValueError
from rollout.headers.value import OWS, TCHAR, clean, describe
from rollout.names import ONE_YEAR

_FLAGS = {"includesubdomains": "includeSubDomains", "preload": "preload"}
# CPython converts at most 4300 digits between str and int in one call (a limit that can
# be lowered to 640, never below); RFC 6797 sets no limit on max-age (browsers cap it), so
# longer numbers are converted in pieces of 640.
_CHUNK = 640
# Longer numbers are shortened in messages.
_SHOWN = 50


def _to_int(digits: str) -> int:
    value = 0
    for start in range(0, len(digits), _CHUNK):
        piece = digits[start : start + _CHUNK]
        value = value * 10 ** len(piece) + int(piece)
    return value


def _to_text(number: int) -> str:
    pieces: list[str] = []
    high, low = divmod(number, 10**_CHUNK)
    while high:
        pieces.append(str(low).zfill(_CHUNK))
        high, low = divmod(high, 10**_CHUNK)
    return str(low) + "".join(reversed(pieces))


def show(max_age: int) -> str:
    """max_age for a message: in full, or its first digits and length when it is very long."""
    text = _to_text(max_age)
    return text if len(text) <= _SHOWN else f"{text[:12]}… ({len(text)} digits)"


@dataclass(frozen=True)
class HSTS:
    """A parsed Strict-Transport-Security value."""

    max_age: int
    include_subdomains: bool = False
    preload: bool = False
    # Unknown directives as written: (name, value or None); browsers ignore them.
    extensions: tuple[tuple[str, str | None], ...] = ()
    # Kept because hstspreload.org refuses a quoted max-age that RFC 6797 allows.
    quoted_max_age: bool = False


def _skip_ows(text: str, i: int) -> int:
    while i < len(text) and text[i] in OWS:
        i += 1
    return i


def _token(text: str, i: int) -> int:
    while i < len(text) and text[i] in TCHAR:
        i += 1
    return i


def _quoted(text: str, i: int) -> int:
    """Return the index just past the quoted-string that starts at text[i]."""
    i += 1
    while i < len(text):
        if text[i] == '"':
            return i + 1
        i += 2 if text[i] == "\\" else 1
    raise HeaderValueError(
        f"a quoted value is not closed: add the missing '\"' at the end of {text!r}"
    )


def _unquote(raw: str) -> str:
    if not raw.startswith('"'):
        return raw
    body, out, i = raw[1:-1], [], 0
    while i < len(body):
        if body[i] == "\\":  # _quoted made sure a backslash is never the last character
            i += 1
        out.append(body[i])
        i += 1
    return "".join(out)


def _directives(text: str) -> list[tuple[str, str | None]]:
    """Split text into (name, raw value) by `[ directive ] *( ";" [ directive ] )`."""
    found: list[tuple[str, str | None]] = []
    i = _skip_ows(text, 0)
    while i < len(text):
        if text[i] == ";":  # an empty directive: the grammar allows it
            i = _skip_ows(text, i + 1)
            continue
        end = _token(text, i)
        if end == i:
            raise HeaderValueError(
                f"expected a directive name at character {i + 1}, found {describe(text[i])}: "
                "directives look like max-age=300; includeSubDomains"
            )
        name, raw = text[i:end], None
        i = _skip_ows(text, end)
        if i < len(text) and text[i] == "=":
            i = _skip_ows(text, i + 1)
            end = _quoted(text, i) if i < len(text) and text[i] == '"' else _token(text, i)
            if end == i:
                raise HeaderValueError(
                    f"{name}= has no value at character {i + 1}: write {name}=VALUE or drop '='"
                )
            raw, i = text[i:end], _skip_ows(text, end)
        if i < len(text) and text[i] != ";":
            raise HeaderValueError(
                f"unexpected {describe(text[i])} at character {i + 1} after {name}: "
                "separate directives with ';'"
            )
        found.append((name, raw))
    return found


def parse(value: str) -> HSTS:
    """Parse a Strict-Transport-Security value; raise HeaderValueError if browsers would not."""
    text = clean(value)
    seen: set[str] = set()
    max_age: tuple[int, bool] | None = None  # the value, and whether it was quoted
    flags = {"includesubdomains": False, "preload": False}
    extensions: list[tuple[str, str | None]] = []
    for name, raw in _directives(text):
        key = name.lower()
        if key in seen:
            # RFC 6797 §6.1 rule 2: browsers then ignore the whole header.
            raise HeaderValueError(
                f"directive {name} appears more than once, so browsers ignore the whole "
                "header: keep one"
            )
        seen.add(key)
        if key == "max-age":
            if raw is None:
                raise HeaderValueError("max-age has no value: write max-age=SECONDS")
            digits = _unquote(raw)
            if not digits.isascii() or not digits.isdigit():
                raise HeaderValueError(
                    f"max-age={raw} is not a whole number of seconds: use digits only, "
                    "like max-age=86400"
                )
            max_age = _to_int(digits), raw.startswith('"')
        elif key in flags:
            if raw is not None:
                raise HeaderValueError(
                    f"{name} takes no value: write {_FLAGS[key]}, not {name}={raw}"
                )
            flags[key] = True
        else:
            extensions.append((name, raw))
    if max_age is None:
        raise HeaderValueError(
            "max-age is missing and browsers require it: add max-age=SECONDS, like max-age=300"
        )
    age, quoted = max_age
    return HSTS(age, flags["includesubdomains"], flags["preload"], tuple(extensions), quoted)


def serialise(h: HSTS) -> str:
    """Write h canonically: `max-age=N; includeSubDomains; preload`, then any extensions."""
    age = _to_text(h.max_age)
    parts = [f'max-age="{age}"' if h.quoted_max_age else f"max-age={age}"]
    if h.include_subdomains:
        parts.append("includeSubDomains")
    if h.preload:
        parts.append("preload")
    parts.extend(name if raw is None else f"{name}={raw}" for name, raw in h.extensions)
    return "; ".join(parts)


def _semantic(h: HSTS | str) -> HSTS:
    """Only what browsers act on: quoting and unknown directives make no difference."""
    h = parse(h) if isinstance(h, str) else h
    return HSTS(h.max_age, h.include_subdomains, h.preload)


def normalise(value: str) -> str:
    """The canonical form of value: equal values normalise to the same text."""
    return serialise(_semantic(value))


def equal(a: HSTS | str, b: HSTS | str) -> bool:
    """Whether a browser would act the same on a and b (order, case, quoting, extensions free)."""
    return _semantic(a) == _semantic(b)


def _flag_diff(name: str, actual: bool, wanted: bool) -> str | None:
    if actual == wanted:
        return None
    return (
        f"{name} is missing, the stage wants it"
        if wanted
        else f"{name} is present, the stage does not want it"
    )


def diff(expected: HSTS, actual: HSTS) -> str | None:
    """None if equal, else what differs, in one line."""
    reasons = []
    if actual.max_age != expected.max_age:
        reasons.append(
            f"max-age is {show(actual.max_age)}, the stage wants {show(expected.max_age)}"
        )
    for name, got, wanted in (
        ("includeSubDomains", actual.include_subdomains, expected.include_subdomains),
        ("preload", actual.preload, expected.preload),
    ):
        reason = _flag_diff(name, got, wanted)
        if reason:
            reasons.append(reason)
    return "; ".join(reasons) or None


def warnings(h: HSTS) -> list[str]:
    """What a live value does that is legal but probably not meant."""
    found = []
    if h.max_age > ONE_YEAR:
        found.append(
            f"max-age={show(h.max_age)} is above {ONE_YEAR}: browsers cap it at one year, "
            f"so write max-age={ONE_YEAR}"
        )
    return found + odd(h)


def odd(h: HSTS, *, clearing: bool = False) -> list[str]:
    """The warnings other than a max-age above one year: max-age=0 (unless `clearing`,
    when it is meant), unknown directives."""
    found = []
    if h.max_age == 0 and not clearing:
        found.append("max-age=0 tells browsers to forget HSTS for this host")
    for name, _ in h.extensions:
        found.append(f"unknown directive {name} is ignored by browsers: remove it or fix its name")
    return found


def preload_problems(h: HSTS) -> list[str]:
    """hstspreload.org's header requirements that h misses; empty if it may be preloaded."""
    problems = []
    if h.max_age < ONE_YEAR:
        problems.append(
            f"max-age is {show(h.max_age)}; preloading needs at least {ONE_YEAR} (one year)"
        )
    if h.quoted_max_age:
        problems.append(
            f"max-age is quoted; hstspreload.org needs it unquoted: max-age={show(h.max_age)}"
        )
    if not h.include_subdomains:
        problems.append("includeSubDomains is missing; preloading needs it")
    if not h.preload:
        problems.append("preload is missing; preloading needs it")
    return problems
