"""Findings with permanent ids, and the checks that judge one response against a stage.

Each finding is a module constant, as in Django's system checks: its id never changes
meaning once released, and docs/findings.md explains every one with its fix. A check is
one finding applied to one response (or one probe that got none); checks that pass are
kept too, with the id of the finding they guarded against, so reports list everything
that was looked at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from rollout import headers
from rollout.errors import HeaderValueError
from rollout.headers import csp as csp_grammar
from rollout.headers import hsts as hsts_grammar
from rollout.names import CLEAR_HSTS, CSP, CSP_RO, HSTS, ONE_YEAR, XFO
from rollout.probe import Fault, Result, origin_of

Severity = Literal["error", "warning"]
Probe = Literal["page", "404", "http", "subdomain", "edge"]


@dataclass(frozen=True)
class Finding:
    """A kind of problem: a permanent id, what it means, and how to fix it."""

    id: str
    severity: Severity
    title: str
    fix: str


# These run only while the module is imported, before mutmut can switch a mutant on, so
# mutants of them cannot be tested; test_every_finding_id_is_well_formed guards them.
def _e(id: str, title: str, fix: str) -> Finding:
    return Finding(id, "error", title, fix)  # pragma: no mutate


def _w(id: str, title: str, fix: str) -> Finding:
    return Finding(id, "warning", title, fix)  # pragma: no mutate


# fmt: off
HSTS_MISSING = _e("hsts.E001", "an https response has no Strict-Transport-Security header",
                  "send the stage's value on every https response, redirects and errors too")
HSTS_WRONG = _e("hsts.E002", "Strict-Transport-Security differs from the stage's value",
                "send exactly the stage's value; `rollout render ENV` prints it")
HEADER_MISSING = _e("header.E001", "an expected header is missing",
                    "send it from its owner: the middleware (app) or the proxy (edge)")
HEADER_DUPLICATED = _e("header.E002", "an expected header is sent more than once",
                       "send it from one layer only; the app and the proxy both add it")
HEADER_WRONG = _e("header.E003", "a header's value differs from the stage's value",
                  "send exactly the stage's value; `rollout render ENV` prints it")
CSP_ENFORCING_EARLY = _e("csp.E001", "an enforcing CSP is sent during a report-only stage",
                         "send the policy as Content-Security-Policy-Report-Only until the "
                         "ladder's enforcing stage")
CSP_REPORT_ONLY_LATE = _e("csp.E002", "a report-only CSP is still sent at an enforcing stage",
                          "drop Content-Security-Policy-Report-Only once the stage enforces")
CSP_TWO_POLICIES = _e("csp.E003", "more than one enforcing Content-Security-Policy is sent",
                      "send one policy from one layer; browsers enforce every policy they "
                      "get, so a second one silently tightens the first")
PROBE_CONNECT = _e("probe.E001", "could not connect (refused, unreachable or unresolvable)",
                   "check that the server runs and that the plan's urls, connect-to and "
                   "resolve point at it")
PROBE_TLS = _e("probe.E002", "the TLS handshake failed: certificate untrusted, expired or for "
               "another host", "serve a valid certificate for the host name, or pass the "
               "issuing CA with --cacert / the plan's cacert")
PROBE_TIMEOUT = _e("probe.E003", "no complete answer within the timeout",
                   "check the server, or raise --timeout")
PROBE_BROKEN = _e("probe.E004", "the response was cut off, reset, malformed or too large",
                  "check the server and any proxy in between; `curl -sv` shows the exchange")
NOTHING_TO_CHECK = _e("probe.E005", "nothing to check: the environment lists no urls",
                      "add urls to [environments.ENV] in plan.toml")
HTTP_NO_REDIRECT = _e("redirect.E001", "http:// does not redirect to https:// on the same host",
                      "answer every http:// request with a redirect (301 or 308 is best) to the "
                      "same host over https")
CROSS_ORIGIN = _e("redirect.E002", "a page redirects to another origin, so its headers were not "
                  "checked", "list the final URL in the plan's urls instead")
REDIRECT_LOOP = _e("redirect.E003", "redirects loop or go on for more than 5 hops",
                   "fix the redirect rules so the page answers within 5 hops")
NOT_FOUND_STATUS = _e("notfound.E001", "a path that cannot exist does not answer 404",
                      "let unknown paths answer 404 (not 200 or a redirect), with the same "
                      "headers as pages")
PAGE_SERVER_ERROR = _e("page.E001", "a listed page answers 5xx, so nothing proves the page "
                       "itself works at this stage", "fix the server error (an enforcing CSP "
                       "does not cause one), then verify again")
SUBDOMAIN_HTTPS = _e("subdomain.E001", "a subdomain does not answer over https with a valid "
                     "certificate", "fix it before includeSubDomains: browsers will refuse "
                     "plain http on every subdomain")
SUBDOMAIN_REDIRECT = _e("subdomain.E002", "a subdomain's http:// does not redirect to https:// "
                        "on the same host", "redirect it before includeSubDomains")
HSTS_OVER_HTTP = _w("hsts.W001", "Strict-Transport-Security is sent over plain http",
                    "browsers ignore it there; send it on https responses only")
HSTS_ABOVE_YEAR = _w("hsts.W002", "max-age is above 31536000; browsers cap it at one year",
                     "write max-age=31536000")
HSTS_ODD = _w("hsts.W003", "HSTS has an unknown directive or max-age=0",
              "remove unknown directives; max-age=0 only to make browsers forget HSTS")
XSS_PROTECTION = _w("xss.W001", "X-XSS-Protection is set to something other than 0",
                    "send `X-XSS-Protection: 0` or nothing: the old filter caused leaks")
FEATURE_POLICY = _w("fp.W001", "the obsolete Feature-Policy header is sent",
                    "drop it; Permissions-Policy replaces it")
XFO_ALLOW_FROM = _w("xfo.W001", "X-Frame-Options: ALLOW-FROM is ignored by browsers",
                    "send DENY or SAMEORIGIN and use CSP frame-ancestors")
CSP_NO_REPORTS = _w("csp.W001", "a report-only CSP has nowhere to send reports",
                    "set csp-report-uri in the plan's [policy]")
CSP_ODD = _w("csp.W002", "a CSP has a repeated directive or 'none' with other sources",
             "merge repeated directives; drop 'none' where other sources are listed")
PAGE_CLIENT_ERROR = _w("page.W001", "a listed page answers 4xx: its headers were checked on an "
                       "error page", "list URLs that answer 2xx (a 401/403 page behind a login "
                       "is fine to keep if that is what you mean to check)")
NO_SUBDOMAINS = _w("subdomain.W001", "includeSubDomains is on but the plan lists no subdomains",
                   "list the subdomains that serve traffic in [environments.ENV] subdomains")
EDGE_LOST = _e("edge.E001", "an edge-owned header did not survive the revert: it is missing, "
                "sent more than once, or its value changed", "a revert never changes the edge: "
                "check the proxy or CDN configuration, and whether `apply` re-rendered it")
EDGE_UNSEEN = _e("edge.E002", "an edge-owned header was not sent exactly once before the revert, "
                 "so its survival cannot be confirmed", "make the edge send it once (`rollout "
                 "render ENV --format nginx`), then verify")
STRAY = _e("header.E004", "a header the ladder manages (HSTS, CSP) is sent at a stage that does "
            "not send it: another layer bypasses the ladder", "find the layer that sends it (an "
            "old middleware, the proxy, the framework's own settings) and remove it there: the "
            "ladder's stage decides this header")
STALE_HEADER = _e("revert.E001", "a header the reverted stage does not send is still sent by "
                  "the app", "check that the middleware reads this stage file and that `apply` "
                  "reloaded the app")
# fmt: on

FINDINGS: dict[str, Finding] = {f.id: f for f in list(globals().values()) if isinstance(f, Finding)}
# The headers whose value the ladder sets stage by stage: any other layer sending them
# where the stage does not bypasses the ladder. The policy's other headers are not among
# them: they take their final value at stage 0, and frameworks send some by default.
LADDER_HEADERS = (HSTS, CSP, CSP_RO)
XSS, FEATURE, LOCATION = "x-xss-protection", "feature-policy", "location"

_FAULT_FINDINGS: dict[Fault, Finding] = {
    Fault.REFUSED: PROBE_CONNECT,
    Fault.DNS: PROBE_CONNECT,
    Fault.TLS_UNTRUSTED: PROBE_TLS,
    Fault.TLS_HOSTNAME: PROBE_TLS,
    Fault.TLS_EXPIRED: PROBE_TLS,
    Fault.TLS: PROBE_TLS,
    Fault.TIMEOUT: PROBE_TIMEOUT,
    Fault.RESET: PROBE_BROKEN,
    Fault.CLOSED: PROBE_BROKEN,
    Fault.MALFORMED: PROBE_BROKEN,
    Fault.TOO_LARGE: PROBE_BROKEN,
    Fault.REDIRECT_LOOP: REDIRECT_LOOP,
}


@dataclass(frozen=True)
class Check:
    """One thing verify looked at: which probe, URL and header, and what it found."""

    probe: Probe
    url: str | None
    header: str | None
    ok: bool
    severity: Severity  # of the finding this check guards against, passed or not
    expected: str | None
    actual: tuple[str, ...]
    message: str
    id: str
    status: int | None = None  # the response status, on checks about status or redirects
    location: str | None = None  # where the response redirects to, if it is a redirect

    @property
    def failed(self) -> bool:
        """True for a failed error; warnings never fail a report."""
        return not self.ok and self.severity == "error"

    @property
    def title(self) -> str:
        """What the finding means, in one line (docs/findings.md's "meaning")."""
        return FINDINGS[self.id].title

    @property
    def fix(self) -> str:
        """How to fix the finding, in one line; meant to be shown under a failed check."""
        return FINDINGS[self.id].fix

    def fix_for(self, environment: str | None) -> str:
        """The fix with the environment's name where the catalogue says ENV."""
        return self.fix if environment is None else re.sub(r"\bENV\b", environment, self.fix)

    def to_json(self, environment: str | None = None) -> dict[str, object]:
        """DESIGN.md's check object; see docs/verify.md for the keys added to it. With the
        environment's name, the fix names it where the catalogue says ENV."""
        out: dict[str, object] = {
            "probe": self.probe,
            "url": self.url,
            "header": self.header,
            "ok": self.ok,
            # A passed check found nothing, so it has no severity to report.
            "severity": None if self.ok else self.severity,
            "expected": self.expected,
            "actual": list(self.actual),
            "message": self.message,
            "id": self.id,
        }
        if self.status is not None:
            out["status"], out["location"] = self.status, self.location
        if not self.ok:
            out["title"], out["fix"] = self.title, self.fix_for(environment)
        return out


def check(
    finding: Finding,
    probe: Probe,
    url: str | None,
    *,
    ok: bool,
    message: str,
    header: str | None = None,
    expected: str | None = None,
    actual: tuple[str, ...] | list[str] = (),
    status: int | None = None,
    location: str | None = None,
) -> Check:
    """A Check of `finding`; passed checks carry the id of the finding they ruled out."""
    return Check(
        probe,
        url,
        header,
        ok,
        finding.severity,
        expected,
        tuple(actual),
        message,
        finding.id,
        status,
        location,
    )


def fault(probe: Probe, result: Result) -> Check:
    """The failed check for a probe that got no usable response."""
    assert result.fault is not None
    finding = _FAULT_FINDINGS[result.fault]
    return check(finding, probe, result.url, ok=False, message=result.reason)


def expected_header(probe: Probe, result: Result, name: str, value: str) -> Check:
    """One expected header: present exactly once and semantically equal to value.

    Each member of a comma-joined line counts as one occurrence (`headers.members`):
    that is what a proxy makes of two layers both sending the header.
    """
    lines = result.get_all(name)
    pairs = [(line, headers.members(name, line, value)) for line in lines]
    count = sum(len(found) for _, found in pairs)
    missing, wrong = (HSTS_MISSING, HSTS_WRONG) if name == HSTS else (HEADER_MISSING, HEADER_WRONG)
    finding: Finding | None = None
    if name == CSP and len(lines) > 1:
        finding = CSP_TWO_POLICIES
        message = f"{len(lines)} enforcing policies are sent; browsers enforce all of them"
    elif count == 0:
        finding, message = missing, f"{name} is {'sent empty' if lines else 'missing'}"
    elif count > 1:
        finding, message = HEADER_DUPLICATED, _duplicated(name, pairs, value)
    if finding is not None:
        return check(
            finding,
            probe,
            result.url,
            ok=False,
            header=name,
            expected=value,
            actual=lines,
            message=message,
        )
    (line,) = (line for line, found in pairs if found)
    reason = headers.compare(name, value, line)
    return check(
        wrong,
        probe,
        result.url,
        ok=reason is None,
        header=name,
        expected=value,
        actual=lines,
        message=reason or "as expected",
    )


def _duplicated(name: str, pairs: list[tuple[str, list[str]]], value: str) -> str:
    """Why a header sent more than once is wrong, and what browsers make of it."""
    said = f"{name} is sent {sum(len(found) for _, found in pairs)} times"
    for line, found in pairs:
        if len(found) > 1:
            said += f" ({line!r} is {len(found)} values joined by ',')"
            break
    if name != HSTS:
        return said
    first, members = pairs[0]
    # RFC 6797 §8.1: a browser processes only the first Strict-Transport-Security field.
    if len(members) > 1:
        return (
            f"{said}; browsers read only the first line (RFC 6797 §8.1), and a ',' is not "
            "allowed in it, so they ignore it: no HSTS at all"
        )
    differs = headers.compare(HSTS, value, first)
    if differs is None:
        return (
            f"{said}; browsers honour only the first (RFC 6797 §8.1), {first!r}, the stage's "
            "value, so they get it for now, but whichever layer comes first wins, and "
            "hstspreload.org refuses more than one"
        )
    return (
        f"{said}; browsers honour only the first (RFC 6797 §8.1), {first!r}, so they do "
        f"not get the stage's value: {differs}"
    )


def unwanted(
    probe: Probe,
    result: Result,
    expected: Mapping[str, str],
    *,
    names: tuple[str, ...] = LADDER_HEADERS,
    stray: bool,
) -> list[Check]:
    """The ladder's headers (of `names`) sent where the stage does not send them.

    The other CSP mode than the stage's is csp.E001 or csp.E002; anything else (HSTS or
    any CSP at stage off, say) is header.E004 unless `stray` is off. HSTS on plain http
    is left to the warnings: browsers ignore it there.
    """
    https = result.url.lower().startswith("https:")
    found: list[Check] = []
    for name in names:
        sent = result.get_all(name)
        if not sent or name in expected or (name == HSTS and not https):
            continue
        if name == CSP and CSP_RO in expected:
            finding, message = (
                CSP_ENFORCING_EARLY,
                "an enforcing policy is sent during a report-only stage",
            )
        elif name == CSP_RO and CSP in expected:
            finding, message = (
                CSP_REPORT_ONLY_LATE,
                "a report-only policy is still sent at an enforcing stage",
            )
        elif stray:
            finding, message = STRAY, _stray(name, sent)
        else:
            continue
        found.append(
            check(finding, probe, result.url, ok=False, header=name, actual=sent, message=message)
        )
    return found


def csp_mode(probe: Probe, result: Result, expected: Mapping[str, str]) -> list[Check]:
    """The CSP mode alone (csp.E001, csp.E002): what a check of the app's part can judge."""
    return unwanted(probe, result, expected, stray=False)


def _stray(name: str, sent: list[str]) -> str:
    said = f"{name} is sent ({sent[0]!r}), but this stage does not send it: another layer"
    if name == HSTS:
        return f"{said} bypasses the ladder, and browsers keep HSTS for the max-age it says"
    return f"{said} bypasses the ladder, and browsers apply the policy it carries"


def warnings(
    probe: Probe, result: Result, expected: Mapping[str, str] | None = None
) -> list[Check]:
    """The warnings DESIGN.md lists, for whatever this response sends."""
    found: list[Check] = []

    def warn(finding: Finding, name: str, values: list[str], message: str) -> None:
        found.append(
            check(finding, probe, result.url, ok=False, header=name, actual=values, message=message)
        )

    https = result.url.lower().startswith("https:")
    sts = result.get_all(HSTS)
    if sts and not https:
        warn(HSTS_OVER_HTTP, HSTS, sts, "sent over plain http, where browsers ignore it")
    # max-age=0 is what a revert with --clear-hsts sends on purpose: no warning then.
    wanted = (expected or {}).get(HSTS)
    clearing = wanted is not None and headers.compare(HSTS, CLEAR_HSTS, wanted) is None
    for value in sts if https else []:
        parsed = _hsts(value)
        if parsed is None:
            continue  # the value check reports it
        if parsed.max_age > ONE_YEAR:
            shown = hsts_grammar.show(parsed.max_age)
            warn(HSTS_ABOVE_YEAR, HSTS, [value], f"max-age={shown} is capped at one year")
        if odd := hsts_grammar.odd(parsed, clearing=clearing):
            warn(HSTS_ODD, HSTS, [value], "; ".join(odd))
    xss = [v for v in result.get_all(XSS) if v.strip() != "0"]
    if xss:
        warn(XSS_PROTECTION, XSS, xss, f"X-XSS-Protection is {xss[0]!r}, not 0")
    if fp := result.get_all(FEATURE):
        warn(FEATURE_POLICY, FEATURE, fp, "Feature-Policy is obsolete")
    allow = [v for v in result.get_all(XFO) if "allow-from" in v.lower()]
    if allow:
        warn(XFO_ALLOW_FROM, XFO, allow, "ALLOW-FROM is ignored by browsers")
    for name in (CSP, CSP_RO):
        for value in result.get_all(name):
            notes = _csp_notes(value)
            if notes is None:
                continue  # the value check reports it
            reports, oddities = notes
            if name == CSP_RO and not reports:
                warn(CSP_NO_REPORTS, name, [value], "report-only without report-uri or report-to")
            if oddities:
                warn(CSP_ODD, name, [value], "; ".join(oddities))
    return found


@lru_cache(maxsize=256)
def _hsts(value: str) -> hsts_grammar.HSTS | None:
    """value parsed (frozen, so one object serves every page that sends it), or None."""
    try:
        return hsts_grammar.parse(value)
    except HeaderValueError:
        return None


# Every page of a site sends the same policy: parse each distinct one once per process
# (the CSP parse was a third of verify's judging time on 1,000 pages).
@lru_cache(maxsize=1024)
def _csp_notes(value: str) -> tuple[bool, tuple[str, ...]] | None:
    """(whether it sends reports anywhere, its oddities), or None if it does not parse."""
    try:
        policy = csp_grammar.parse(value)
    except HeaderValueError:
        return None
    return csp_grammar.has_reporting(policy), tuple(csp_grammar.warnings(policy))


REDIRECTS = "301, 302, 303, 307 or 308"


def redirect(finding: Finding, probe: Probe, result: Result) -> Check:
    """http:// answers a redirect to https:// on the same host.

    Any redirect status browsers follow counts (Fetch's redirect statuses, which
    hstspreload.org's checker follows too): 303 included, since the probe, like a
    browser's navigation, is a GET, which 303 keeps a GET.
    """
    host = origin_of(result.url)[1]
    name = urlsplit(result.url).netloc  # the host as written in a URL: [::1] bracketed
    target = result.location
    locations = result.get_all(LOCATION)
    actual = [f"{result.status} {locations[0]}" if locations else f"{result.status}"]
    good = False
    if target is None:
        message = f"answers {result.status} without a redirect to https"
        if len(locations) > 1:
            message += f" ({len(locations)} Location headers)"
    elif origin_of(target)[:2] != ("https", host):
        message = f"redirects to {target}, not to https://{name}"
    else:
        good, message = True, f"redirects to {target}"
    return check(
        finding,
        probe,
        result.url,
        ok=good,
        expected=f"{REDIRECTS} to https://{name}/...",
        actual=actual,
        message=message,
        status=result.status,
        location=target,
    )
