"""X-Frame-Options, X-Content-Type-Options, Referrer-Policy, and any other one-word header."""

from __future__ import annotations

from dataclasses import dataclass

from rollout.errors import HeaderValueError
from rollout.headers.value import clean, list_members

# Referrer Policy §3, in the spec's order.
REFERRER_POLICIES = (
    "no-referrer",
    "no-referrer-when-downgrade",
    "same-origin",
    "origin",
    "strict-origin",
    "origin-when-cross-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
)
_FRAME_MODES = ("DENY", "SAMEORIGIN")


@dataclass(frozen=True)
class FrameOptions:
    """X-Frame-Options: DENY, SAMEORIGIN, or the obsolete ALLOW-FROM and its origin."""

    mode: str
    origin: str | None = None


@dataclass(frozen=True)
class ContentTypeOptions:
    """X-Content-Type-Options; nosniff is its only value."""

    value: str = "nosniff"


@dataclass(frozen=True)
class ReferrerPolicy:
    """Referrer-Policy: lower-case tokens in order; a browser uses the last one it knows."""

    tokens: tuple[str, ...]

    @property
    def effective(self) -> str | None:
        """The policy a current browser applies, or None if no token is known."""
        return next((t for t in reversed(self.tokens) if t in REFERRER_POLICIES), None)


@dataclass(frozen=True)
class Other:
    """Any header without a grammar of its own: compared trimmed and case-insensitively."""

    text: str


Simple = FrameOptions | ContentTypeOptions | ReferrerPolicy | Other


def parse_frame_options(value: str, *, strict: bool = False) -> FrameOptions:
    """Parse X-Frame-Options; strict (plan values) refuses ALLOW-FROM and lists."""
    text = clean(value)
    # HTML §7.1.7: a browser lower-cases each list element and needs exactly one distinct value.
    modes = dict.fromkeys(item.upper() for item in list_members(text))
    if len(modes) != 1 or (strict and "," in text):
        raise HeaderValueError(
            f"X-Frame-Options {text!r} holds more than one value: send exactly one, DENY or "
            "SAMEORIGIN"
        )
    (mode,) = modes
    if mode.split()[0] == "ALLOW-FROM":
        if strict:
            raise HeaderValueError(
                "ALLOW-FROM is obsolete and browsers ignore it: use DENY or SAMEORIGIN, and "
                "CSP frame-ancestors to allow other origins"
            )
        # The origin comes from the one distinct element, not the whole (maybe joined) line.
        member = next(m for m in list_members(text) if m.upper() == mode)
        parts = member.split(None, 1)
        return FrameOptions("ALLOW-FROM", parts[1] if len(parts) > 1 else None)
    if mode not in _FRAME_MODES:
        raise HeaderValueError(f"X-Frame-Options {text!r} is not DENY or SAMEORIGIN")
    return FrameOptions(mode)


def parse_content_type_options(value: str, *, strict: bool = False) -> ContentTypeOptions:
    """Parse X-Content-Type-Options; strict (plan values) wants exactly nosniff."""
    text = clean(value)
    items = list_members(text)
    # Fetch §3.5: a browser looks at the first list element only.
    if not items or items[0].lower() != "nosniff" or (strict and len(items) != 1):
        raise HeaderValueError(f"X-Content-Type-Options {text!r} is not nosniff: send nosniff")
    return ContentTypeOptions()


def parse_referrer_policy(value: str, *, strict: bool = False) -> ReferrerPolicy:
    """Parse Referrer-Policy; strict (plan values) refuses empty list items and unknown tokens."""
    text = clean(value)
    # clean() leaves no whitespace but spaces and tabs, which strip() removes.
    if strict and "" in (item.strip() for item in text.split(",")):
        raise HeaderValueError(
            f"Referrer-Policy {text!r} has an empty item between ',': remove the extra ','"
        )
    policy = ReferrerPolicy(tuple(item.lower() for item in list_members(text)))
    unknown = [t for t in policy.tokens if t not in REFERRER_POLICIES]
    # An unknown-only list is no policy at all; in a plan, any unknown token is most
    # likely a typo that leaves an older fallback token in force.
    if (strict and unknown) or policy.effective is None:
        shown = ", ".join(unknown) or repr(text)
        what = "are not referrer policies" if len(unknown) > 1 else "is not a referrer policy"
        raise HeaderValueError(
            f"Referrer-Policy: {shown} {what}: use one of {', '.join(REFERRER_POLICIES)}"
        )
    return policy


def parse_other(value: str) -> Other:
    """Any header value: trimmed and checked, nothing more."""
    return Other(clean(value))


def serialise(v: Simple) -> str:
    """Write v as a header value."""
    match v:
        case FrameOptions(mode="ALLOW-FROM", origin=origin):
            return f"ALLOW-FROM {origin}" if origin else "ALLOW-FROM"
        case FrameOptions(mode=mode):
            return mode
        case ContentTypeOptions(value=text) | Other(text=text):
            return text
        case ReferrerPolicy(tokens=tokens):
            return ", ".join(tokens)


def canonical(v: Simple) -> str:
    """v's normalised text: equal values give the same text (a referrer list its policy)."""
    if isinstance(v, ReferrerPolicy) and v.effective is not None:
        return v.effective
    return serialise(v)


def equal(a: Simple, b: Simple) -> bool:
    """Whether a and b are the same value; parsing already dropped case and spacing."""
    return diff(a, b) is None


def diff(expected: Simple, actual: Simple) -> str | None:
    """None if equal, else what differs, in one line."""
    match expected, actual:
        case Other(), Other():
            if expected.text.lower() == actual.text.lower():
                return None
            return f"value is {actual.text!r}, the stage wants {expected.text!r}"
        case ReferrerPolicy(), ReferrerPolicy():
            # Referrer Policy §8.1: a browser applies the last token it knows. Earlier tokens
            # are fallbacks for browsers that do not know it, and no current browser is one.
            if expected.effective == actual.effective:
                return None
            shown = "" if actual.tokens == (actual.effective,) else f" (from {serialise(actual)!r})"
            return (
                f"Referrer-Policy is {actual.effective}{shown}, the stage wants "
                f"{expected.effective}"
            )
    # Left: X-Frame-Options, and X-Content-Type-Options, whose one valid value is nosniff.
    if expected == actual:
        return None
    return f"X-Frame-Options is {serialise(actual)}, the stage wants {serialise(expected)}"


def warnings(v: Simple) -> list[str]:
    """What a live value does that is legal but probably not meant."""
    if isinstance(v, FrameOptions) and v.mode == "ALLOW-FROM":
        return [
            "X-Frame-Options: ALLOW-FROM is obsolete and browsers ignore it, leaving framing "
            "open: send DENY or SAMEORIGIN and use CSP frame-ancestors"
        ]
    return []
