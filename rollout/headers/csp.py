"""Content-Security-Policy(-Report-Only): CSP Level 3 §2.2.1 and its source lists."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes, unquote_to_bytes

from rollout.errors import HeaderValueError
from rollout.headers.value import clean

# Every pattern is used with fullmatch: `$` would also match before a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9-]+")  # CSP3 directive-name
_HOST_SOURCE = re.compile(
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?(?P<host>[^/]*)(?P<path>/.*)?", re.DOTALL
)
_PORT = re.compile(r"(?P<host>.*):(?P<port>[0-9]+)", re.DOTALL)
# CSP3 §6.7.2.10: an explicit port equal to the URL scheme's default matches a URL without
# a port. With https or wss as scheme-part only those schemes match, whose default is 443.
# For http and ws browsers also move port 80 to 443 when they upgrade the scheme.
_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}
# Percent-decoded path pieces are written back with only these left as they are.
_PATH_SAFE = "!$&'()*+,;=:@-._~"
# Bare words that are keywords only when quoted; unquoted they name a host.
_KEYWORDS = frozenset(
    {"self", "none", "unsafe-inline", "unsafe-eval", "strict-dynamic", "unsafe-hashes"}
    | {"report-sample", "wasm-unsafe-eval"}
)
# Their values are names chosen by the site, so case matters.
_CASE_SENSITIVE = frozenset({"report-to", "trusted-types"})
_HASHES = ("'sha256-", "'sha384-", "'sha512-")
_BASE64URL = str.maketrans("-_", "+/")


@dataclass(frozen=True)
class Directive:
    """One directive: a lower-case name and its values as written."""

    name: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """One serialized policy: its directives in order, first occurrence of each name."""

    directives: tuple[Directive, ...]
    # Names that appeared again and were ignored, as browsers do; kept for warnings.
    duplicates: tuple[str, ...] = field(default=(), compare=False)

    def get(self, name: str) -> Directive | None:
        """The directive called name, if the policy has one."""
        return next((d for d in self.directives if d.name == name), None)


@dataclass(frozen=True)
class CSP:
    """A header value: one or more policies separated by ','; browsers enforce them all."""

    policies: tuple[Policy, ...]


def _parse_policy(text: str, start: int, strict: bool) -> Policy:
    directives: list[Directive] = []
    duplicates: list[str] = []
    pieces = text.split(";")
    offset = start
    for number, piece in enumerate(pieces):
        # clean() lets no whitespace through but spaces and tabs: strip() takes those.
        token, piece_start = piece.strip(), offset
        where = offset + len(piece) - len(piece.lstrip()) + 1
        offset += len(piece) + 1
        if not token:
            if strict and number == len(pieces) - 1:
                raise HeaderValueError(f"trailing ';' at character {piece_start}: remove it")
            if strict:
                raise HeaderValueError(
                    f"empty directive before the ';' at character {offset}: remove that ';'"
                )
            continue
        name, *values = token.split()
        lower = name.lower()
        if strict and not _NAME.fullmatch(name):
            raise HeaderValueError(
                f"{name!r} at character {where} is not a directive name: "
                "use letters, digits and '-', like script-src"
            )
        if any(d.name == lower for d in directives):
            if strict:
                raise HeaderValueError(
                    f"directive {lower} appears again at character {where} and browsers "
                    f"ignore the repeat: merge its values into the first {lower}"
                )
            duplicates.append(lower)
            continue
        if strict:
            _check_keywords(lower, values)
        directives.append(Directive(lower, tuple(values)))
    return Policy(tuple(directives), tuple(duplicates))


def _is_source_list(name: str) -> bool:
    return name.endswith("-src") or name in {"base-uri", "form-action", "frame-ancestors"}


def _check_keywords(name: str, values: list[str]) -> None:
    if not _is_source_list(name):
        return
    for value in values:
        if value.lower() in _KEYWORDS:
            raise HeaderValueError(
                f"{name} {value}: without quotes this names a host called {value!r}; "
                f"write '{value.lower()}'"
            )


def parse(value: str, *, strict: bool = False) -> CSP:
    """Parse a header value; strict (plan values) also refuses what browsers would skip."""
    text = clean(value)
    policies: list[Policy] = []
    offset = 0
    parts = text.split(",")
    for number, part in enumerate(parts):
        if strict and not part.strip():
            if number == len(parts) - 1:
                raise HeaderValueError(f"trailing ',' at character {offset}: remove it")
            raise HeaderValueError(
                f"empty policy before the ',' at character {offset + len(part) + 1}: "
                "remove that ','"
            )
        policy = _parse_policy(part, offset, strict)
        offset += len(part) + 1
        # CSP3 §2.2.2: a policy with no directives is dropped.
        if policy.directives:
            policies.append(policy)
    if not policies:
        raise HeaderValueError(f"{text!r} holds no directives: write one like default-src 'self'")
    return CSP(tuple(policies))


def _serialise_policy(policy: Policy) -> str:
    return "; ".join(" ".join((d.name, *d.values)) for d in policy.directives)


def serialise(csp: CSP) -> str:
    """Write csp as `name value value; name value`, policies separated by ', '."""
    return ", ".join(_serialise_policy(p) for p in csp.policies)


def _source(directive: str, value: str) -> str:
    """A value in a form where equal sources are equal strings."""
    if directive in _CASE_SENSITIVE:
        return value
    lower = value.lower()
    if value.startswith("'"):
        # Nonces and hashes: the prefix is a keyword, the base64 after it is not.
        if lower.startswith("'nonce-"):
            return "'nonce-" + value[7:]  # a nonce matches only as written
        for prefix in _HASHES:
            if lower.startswith(prefix):
                # CSP3 §2.3.1 and "Does element match source list": base64url digits
                # match as base64 ones ('-' is '+', '_' is '/'); padding still counts.
                return prefix + value[len(prefix) :].translate(_BASE64URL)
        return lower
    match = _HOST_SOURCE.fullmatch(value)
    if match is None:  # pragma: no cover - the pattern matches every string
        return value
    # Scheme and host are case-insensitive, a path is not.
    scheme, host, path = (match["scheme"] or "").lower(), match["host"].lower(), match["path"]
    if _is_source_list(directive) or directive == "report-uri":
        host, path = _host_source(scheme, host, path, decode=directive != "report-uri")
    return (f"{scheme}://" if scheme else "") + host + (path or "")


def _host_source(scheme: str, host: str, path: str | None, decode: bool) -> tuple[str, str | None]:
    """Port and path of a host-source in a form where ones matching the same URLs are equal."""
    port = _PORT.fullmatch(host)
    if port is not None:
        number = int(port["port"])  # CSP3 allows leading zeros: :0443 is :443
        # Without a scheme-part the page's own scheme applies, so no port is a default.
        default = _DEFAULT_PORTS.get(scheme)
        host = port["host"] + ("" if number == default else f":{number}")
    # CSP3 §6.7.2.12: a path of exactly "/" matches every path, as no path does. Elsewhere
    # each piece between '/' is compared percent-decoded, and a trailing '/' is significant.
    if path == "/" and host:
        return host, None
    if path and decode:
        path = "/".join(quote_from_bytes(unquote_to_bytes(p), _PATH_SAFE) for p in path.split("/"))
    return host, path


def _sources(d: Directive) -> frozenset[str]:
    return frozenset(_source(d.name, v) for v in d.values)


def _semantic(policy: Policy) -> dict[str, frozenset[str]]:
    return {d.name: _sources(d) for d in policy.directives}


def _as_csp(value: CSP | str) -> CSP:
    return parse(value) if isinstance(value, str) else value


def _key(policy: Policy) -> str:
    """A policy's canonical text: equal policies give equal keys."""
    sem = _semantic(policy)
    return _serialise_policy(
        Policy(tuple(Directive(name, tuple(sorted(sem[name]))) for name in sorted(sem)))
    )


def normalise(value: str) -> str:
    """The canonical form: policies, directives and values sorted, values normalised."""
    return ", ".join(sorted(_key(p) for p in _as_csp(value).policies))


def equal(a: CSP | str, b: CSP | str) -> bool:
    """Whether a and b are the same policies (policy, directive and source order free)."""
    # Browsers enforce every policy of a list, so their order means nothing.
    return sorted(map(_key, _as_csp(a).policies)) == sorted(map(_key, _as_csp(b).policies))


def _policy_diff(expected: Policy, actual: Policy) -> list[str]:
    reasons = []
    for d in expected.directives:
        got = actual.get(d.name)
        if got is None:
            reasons.append(f"{d.name} is missing, the stage wants {' '.join((d.name, *d.values))}")
            continue
        wanted, have = _sources(d), _sources(got)
        by_norm = {_source(got.name, v): v for v in got.values}
        lacks = [v for v in d.values if _source(d.name, v) in wanted - have]
        extra = [by_norm[s] for s in sorted(have - wanted)]
        if lacks:
            reasons.append(f"{d.name} lacks {' '.join(dict.fromkeys(lacks))}")
        if extra:
            reasons.append(f"{d.name} has {' '.join(extra)}, which the stage does not")
    for d in actual.directives:
        if expected.get(d.name) is None:
            reasons.append(f"{' '.join((d.name, *d.values))} is not in the stage's policy")
    return reasons


def diff(expected: CSP, actual: CSP) -> str | None:
    """None if equal, else what differs, in one line."""
    if len(expected.policies) != len(actual.policies):
        return (
            f"the header carries {len(actual.policies)} policies (separated by ','), "
            f"the stage wants {len(expected.policies)}"
        )
    # Policies are matched regardless of order; those left over are compared in order.
    unmatched = list(actual.policies)
    left: list[tuple[int, Policy]] = []
    for number, policy in enumerate(expected.policies, 1):
        twin = next((a for a in unmatched if _key(a) == _key(policy)), None)
        if twin is None:
            left.append((number, policy))
        else:
            unmatched.remove(twin)
    reasons: list[str] = []
    # As many left on each side: pair them in order.
    for index, (number, e) in enumerate(left):
        a = unmatched[index]
        prefix = f"policy {number}: " if len(expected.policies) > 1 else ""
        reasons.extend(prefix + r for r in _policy_diff(e, a))
    return "; ".join(reasons) or None


def with_report_uri(policy_text: str, uri: str, group: str = "") -> str:
    """policy_text with `report-uri uri` in each policy, replacing any report-uri there;
    with a group, also `report-to group` (the Reporting API), replacing any report-to."""
    if not uri or any(c in uri for c in ";,'\"") or uri != uri.strip() or len(uri.split()) != 1:
        raise HeaderValueError(
            f"report URI {uri!r} must be one URL without spaces, quotes, ';' or ','"
        )
    clean(uri)
    replaced = {"report-uri", "report-to"} if group else {"report-uri"}
    added = [f"report-uri {uri}", *([f"report-to {group}"] if group else [])]
    policies = []
    for part in clean(policy_text).split(","):
        # clean() let no whitespace through but spaces and tabs, which strip() removes.
        kept = [
            t.strip() for t in part.split(";") if t.strip() and t.split()[0].lower() not in replaced
        ]
        policies.append("; ".join([*kept, *added]))
    return ", ".join(policies)


def has_reporting(policy: CSP | str) -> bool:
    """Whether every policy names somewhere to send reports (report-uri or report-to)."""
    return all(
        p.get("report-uri") is not None or p.get("report-to") is not None
        for p in _as_csp(policy).policies
    )


def warnings(csp: CSP) -> list[str]:
    """What a live value does that is legal but probably not meant."""
    found: list[str] = []
    for policy in csp.policies:
        for name in dict.fromkeys(policy.duplicates):
            found.append(
                f"directive {name} appears more than once; browsers use the first and ignore "
                "the rest: merge them"
            )
        for d in policy.directives:
            if "'none'" in _sources(d) and len(_sources(d)) > 1:
                found.append(
                    f"{d.name} lists 'none' with other sources, so 'none' has no effect: "
                    "remove 'none' or the other sources"
                )
    return found
