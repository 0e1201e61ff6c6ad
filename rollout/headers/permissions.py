"""Permissions-Policy: an RFC 9651 dictionary of allowlists (W3C Permissions Policy §5).

The dictionary is read by `http_sf`, the structured-field library its RFC's author keeps,
imported on first use: the registry imports every grammar, and most of what imports the
registry never reads a Permissions-Policy value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from rollout.errors import HeaderValueError
from rollout.headers.value import clean

if TYPE_CHECKING:
    from http_sf import StructuredFieldError
    from http_sf.types import BareItemType, ParamsType

EXAMPLE = 'geolocation=(), camera=(self "https://a.example")'
# Used with fullmatch: `$` would also match before a trailing newline.
_ORIGIN = re.compile(r"(?P<origin>[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]+)/?")
_FP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_PORT = re.compile(r"(?P<rest>.*):(?P<port>[0-9]+)")
# An allowlist origin is URL-parsed, which drops the scheme's default port.
_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


@dataclass(frozen=True)
class Feature:
    """One member: a feature and who may use it, each item as RFC 9651 writes it."""

    name: str
    allowlist: tuple[str, ...]  # self, *, "https://a.example"
    params: tuple[str, ...] = ()  # report-to=endpoint
    # Written as a single item (camera=self) rather than an inner list (camera=(self)).
    bare: bool = False


@dataclass(frozen=True)
class PermissionsPolicy:
    """A parsed Permissions-Policy value, members in order."""

    features: tuple[Feature, ...]

    def get(self, name: str) -> Feature | None:
        """The member for feature name, if the policy has one."""
        return next((f for f in self.features if f.name == name), None)


def from_feature_policy(text: str) -> str | None:
    """The Permissions-Policy spelling of an old Feature-Policy value, or None if it is not one."""
    members = []
    for part in text.split(";"):
        if not part.strip():
            continue
        name, *sources = part.split()
        if not (_FP_NAME.fullmatch(name) and sources):
            return None
        items = []
        for source in sources:
            lower = source.lower()
            if lower == "'self'":
                items.append("self")
            elif lower == "*":
                items.append("*")
            elif _ORIGIN.fullmatch(source):
                items.append(f'"{source}"')
            # 'none' means an empty list; 'src' only means something in an iframe's allow.
            elif lower not in ("'none'", "'src'"):
                return None
        members.append(f"{name.lower()}=({' '.join(dict.fromkeys(items))})")
    return ", ".join(members) or None


def _syntax_error(text: str, why: StructuredFieldError) -> HeaderValueError:
    converted = from_feature_policy(text)
    if converted:
        return HeaderValueError(
            "this is the old Feature-Policy syntax, which browsers ignore in "
            f"Permissions-Policy: write {converted}"
        )
    # http_sf always says what and where; it counts from 0, our messages count from 1.
    assert why.position is not None
    detail = f"{ValueError.__str__(why)} at character {why.position + 1}"
    hints = [f"not an RFC 9651 dictionary like {EXAMPLE} ({detail})"]
    if "'" in text:
        hints.append("write self and * without quotes, origins in double quotes")
    if re.search(r"(^|,)\s*[^=,\s]*[A-Z][^=,]*=", text):
        hints.append("feature names are lower-case")
    return HeaderValueError("; ".join(hints))


def _check_item(name: str, item: str) -> None:
    if item in ("self", "*"):
        return
    if item.startswith('"') and item.endswith('"') and _ORIGIN.fullmatch(item[1:-1]):
        return
    fix = f"{name}=()" if item.lower() == "none" else f"{name}=(self)"
    raise HeaderValueError(
        f"{name}: {item} is not self, * or an origin in double quotes like "
        f'"https://a.example"; e.g. {fix}'
    )


def _params(params: ParamsType) -> tuple[str, ...]:
    from http_sf.bare_item import ser_bare_item

    return tuple(
        key if value is True else f"{key}={ser_bare_item(value)}" for key, value in params.items()
    )


def _feature(name: str, member: object, strict: bool) -> Feature:
    from http_sf.bare_item import ser_bare_item
    from http_sf.item import ser_item

    # The parser always pairs a member with its parameters: (item or inner list, params).
    # (A cast does nothing at run time, so mutants of it are not counted.)
    value, params = cast("tuple[object, ParamsType]", member)  # pragma: no mutate
    if isinstance(value, list):
        allowlist, bare = tuple(ser_item(item) for item in value), False
    else:
        if strict and value is True:
            raise HeaderValueError(
                f"{name} has no allowlist: write {name}=() to block it or {name}=(self) to "
                "allow this origin"
            )
        # A bare item's parameters are the member's, kept apart below.
        item = cast("BareItemType", value)  # pragma: no mutate
        allowlist, bare = (ser_bare_item(item),), True
    if strict:
        for entry in allowlist:
            _check_item(name, entry)
    return Feature(name, allowlist, _params(params), bare)


def parse(value: str, *, strict: bool = False) -> PermissionsPolicy:
    """Parse a header value; strict (plan values) also refuses what browsers would ignore."""
    from http_sf import StructuredFieldError
    from http_sf import parse as parse_sf

    text = clean(value)
    try:
        dictionary = parse_sf(text.encode(), tltype="dictionary")  # clean(): ASCII only
    except StructuredFieldError as why:
        raise _syntax_error(text, why) from None
    assert isinstance(dictionary, dict)
    return PermissionsPolicy(
        tuple(_feature(name, member, strict) for name, member in dictionary.items())
    )


def serialise(policy: PermissionsPolicy) -> str:
    """Write policy as RFC 9651 does: `name=(item item);param, name=()`."""
    members = []
    for f in policy.features:
        value = f.allowlist[0] if f.bare and len(f.allowlist) == 1 else f"({' '.join(f.allowlist)})"
        members.append(f"{f.name}={value}" + "".join(f";{p}" for p in f.params))
    return ", ".join(members)


def _item(item: str) -> str:
    """An allowlist item in a form where equal origins are equal strings."""
    # A string item is serialised in double quotes; a token never starts with one.
    match = _ORIGIN.fullmatch(item[1:-1]) if item.startswith('"') else None
    if match is None:
        return item
    origin = match["origin"].lower()
    port = _PORT.fullmatch(origin)
    if port is not None:
        number = int(port["port"])
        default = _DEFAULT_PORTS.get(origin.partition(":")[0])
        origin = port["rest"] + ("" if number == default else f":{number}")
    return f'"{origin}"'


def _allowlist(f: Feature) -> tuple[frozenset[str], tuple[str, ...]]:
    items = frozenset(_item(i) for i in f.allowlist)
    # The spec: a * anywhere in the list allows every origin, whatever else is listed.
    return (frozenset({"*"}) if "*" in items else items), tuple(sorted(f.params))


def _as_policy(value: PermissionsPolicy | str) -> PermissionsPolicy:
    return parse(value) if isinstance(value, str) else value


def normalise(value: str) -> str:
    """The canonical form: members sorted, allowlists sorted inner lists."""
    features = []
    for f in sorted(_as_policy(value).features, key=lambda f: f.name):
        items, params = _allowlist(f)
        features.append(Feature(f.name, tuple(sorted(items)), params))
    return serialise(PermissionsPolicy(tuple(features)))


def equal(a: PermissionsPolicy | str, b: PermissionsPolicy | str) -> bool:
    """Whether a and b give every feature the same allowlist and parameters."""

    def semantic(p: PermissionsPolicy) -> dict[str, object]:
        return {f.name: _allowlist(f) for f in p.features}

    return semantic(_as_policy(a)) == semantic(_as_policy(b))


def _show(f: Feature) -> str:
    return f"({' '.join(f.allowlist)})" + "".join(f";{p}" for p in f.params)


def diff(expected: PermissionsPolicy, actual: PermissionsPolicy) -> str | None:
    """None if equal, else what differs, in one line."""
    reasons = []
    for f in expected.features:
        got = actual.get(f.name)
        if got is None:
            reasons.append(f"{f.name} is missing, the stage wants {f.name}={_show(f)}")
        elif _allowlist(got) != _allowlist(f):
            reasons.append(f"{f.name} allows {_show(got)}, the stage wants {_show(f)}")
    for f in actual.features:
        if expected.get(f.name) is None:
            reasons.append(f"{f.name}={_show(f)} is not in the stage's policy")
    return "; ".join(reasons) or None
