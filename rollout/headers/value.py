"""Checks that apply to any header field: its name is a token, its value one clean line."""

from __future__ import annotations

from rollout.errors import HeaderValueError

# RFC 9110 §5.6.2 tchar.
TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
OWS = " \t"

# Names users recognise beat code points in a message.
_CONTROL_NAMES = {
    "\r": "a carriage return (CR)",
    "\n": "a line feed (LF)",
    "\x00": "a NUL byte",
    "\x7f": "a DEL character",
}


def describe(char: str) -> str:
    """Name one character the way a message should show it."""
    if char in _CONTROL_NAMES:
        return f"{_CONTROL_NAMES[char]} {char!r}"
    if ord(char) < 0x20:
        return f"a control character {char!r}"
    if ord(char) >= 0x80:
        return f"a non-ASCII character {char!r} (U+{ord(char):04X})"
    return repr(char)


def check_value(value: str) -> str:
    """Return value if it is one line of visible ASCII, spaces and tabs, trimmed; else raise."""
    if value == "":
        raise HeaderValueError("the value is empty; give a value or leave the header out")
    for index, char in enumerate(value):
        if char == "\t" or 0x20 <= ord(char) <= 0x7E:
            continue
        # A CR or LF would let a value smuggle in a second header (response splitting).
        how = (
            "header values are a single line; remove it"
            if char == "\r" or char == "\n"
            else "write it as visible ASCII, e.g. percent-encode it in URLs"
            if ord(char) >= 0x80
            else "remove it"
        )
        raise HeaderValueError(f"the value has {describe(char)} at character {index + 1}: {how}")
    if value[0] in OWS or value[-1] in OWS:
        # Servers and proxies trim these, so the value sent would differ from the one written.
        where = 1 if value[0] in OWS else len(value)
        raise HeaderValueError(
            f"the value has leading or trailing whitespace at character {where}: remove it"
        )
    return value


def clean(value: str) -> str:
    """Trim surrounding whitespace as HTTP parsers do, then check what is left."""
    return check_value(value.strip(OWS))


def check_name(name: str) -> str:
    """Return name if it is an RFC 9110 token, the only form a header name can take."""
    if name == "":
        raise HeaderValueError("the header name is empty")
    for index, char in enumerate(name):
        if char not in TCHAR:
            raise HeaderValueError(
                f"the header name {name!r} has {describe(char)} at character {index + 1}: "
                "header names are letters, digits and !#$%&'*+-.^_`|~ only"
            )
    return name


def list_members(text: str) -> list[str]:
    """RFC 9110 §5.6.1: the comma-separated members of a field value, trimmed, empty ones
    skipped as recipients must; a comma inside a quoted-string separates nothing."""
    members, start, quoted, index = [], 0, False, 0
    while index < len(text):
        char = text[index]
        if quoted and char == "\\":
            index += 1  # a quoted-pair: the character after the backslash is taken as is
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            members.append(text[start:index])
            start = index + 1
        index += 1
    members.append(text[start:])
    return [m.strip(OWS) for m in members if m.strip(OWS)]
