"""Findings with permanent ids, and the checks that judge one response against a stage.

Each finding is a module constant, as in Django's system checks: its id never changes
meaning once released, and docs/findings.md explains every one with its fix. A check is
one finding applied to one response (or one probe that got none); checks that pass are
kept too, with the id of the finding they guarded against, so reports list everything
that was looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rollout import headers
from rollout.errors import HeaderValueError
from rollout.headers import csp as csp_grammar
from rollout.headers import hsts as hsts_grammar
from rollout.names import CSP, CSP_RO, HSTS, ONE_YEAR
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


def _e(id: str, title: str, fix: str) -> Finding:
    return Finding(id, "error", title, fix)


def _w(id: str, title: str, fix: str) -> Finding:
    return Finding(id, "warning", title, fix)


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
                      "answer every http:// request with a 301 or 308 to the same host over "
                      "https")
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
STALE_HEADER = _e("revert.E001", "a header the reverted stage does not send is still sent by "
                  "the app", "check that the middleware reads this stage file and that `apply` "
                  "reloaded the app")
# fmt: on

FINDINGS: dict[str, Finding] = {f.id: f for f in list(globals().values()) if isinstance(f, Finding)}

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
    severity: Severity
    expected: str | None
    actual: tuple[str, ...]
    message: str
    id: str

    @property
    def failed(self) -> bool:
        """True for a failed error; warnings never fail a report."""
        return not self.ok and self.severity == "error"

    def to_json(self) -> dict[str, object]:
        return {
            "probe": self.probe,
            "url": self.url,
            "header": self.header,
            "ok": self.ok,
            "severity": self.severity,
            "expected": self.expected,
            "actual": list(self.actual),
            "message": self.message,
            "id": self.id,
        }


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
) -> Check:
    """A Check of `finding`; passed checks carry the id of the finding they ruled out."""
    return Check(
        probe, url, header, ok, finding.severity, expected, tuple(actual), message, finding.id
    )


def fault(probe: Probe, result: Result) -> Check:
    """The failed check for a probe that got no usable response."""
    assert result.fault is not None
    finding = _FAULT_FINDINGS[result.fault]
    return check(finding, probe, result.url, ok=False, message=result.reason)


def expected_header(probe: Probe, result: Result, name: str, value: str) -> Check:
    """One expected header: present exactly once and semantically equal to value."""
    actual = result.get_all(name)
    missing, wrong = (HSTS_MISSING, HSTS_WRONG) if name == HSTS else (HEADER_MISSING, HEADER_WRONG)
    if name == CSP and len(actual) > 1:
        finding = CSP_TWO_POLICIES
        message = f"{len(actual)} enforcing policies are sent; browsers enforce all of them"
    elif not actual:
        finding, message = missing, f"{name} is missing"
    elif len(actual) > 1:
        finding, message = HEADER_DUPLICATED, f"{name} is sent {len(actual)} times"
    else:
        finding = None
    if finding is not None:
        return check(
            finding,
            probe,
            result.url,
            ok=False,
            header=name,
            expected=value,
            actual=actual,
            message=message,
        )
    reason = headers.compare(name, value, actual[0])
    return check(
        wrong,
        probe,
        result.url,
        ok=reason is None,
        header=name,
        expected=value,
        actual=actual,
        message=reason or "as expected",
    )


def csp_mode(probe: Probe, result: Result, expected: Mapping[str, str]) -> list[Check]:
    """The CSP mode: no enforcing policy while report-only, no report-only once enforcing."""
    enforcing, report_only = result.get_all(CSP), result.get_all(CSP_RO)
    if CSP_RO in expected and CSP not in expected and enforcing:
        finding, name, sent = CSP_ENFORCING_EARLY, CSP, enforcing
        message = "an enforcing policy is sent during a report-only stage"
    elif CSP in expected and CSP_RO not in expected and report_only:
        finding, name, sent = CSP_REPORT_ONLY_LATE, CSP_RO, report_only
        message = "a report-only policy is still sent at an enforcing stage"
    elif CSP not in expected and len(enforcing) > 1:
        # Browsers enforce every policy they get: two tighten each other silently.
        finding, name, sent = CSP_TWO_POLICIES, CSP, enforcing
        message = f"{len(enforcing)} enforcing policies are sent"
    else:
        return []
    return [check(finding, probe, result.url, ok=False, header=name, actual=sent, message=message)]


def warnings(probe: Probe, result: Result) -> list[Check]:
    """The warnings DESIGN.md lists, for whatever this response sends."""
    found: list[Check] = []

    def warn(finding: Finding, name: str, values: list[str], message: str) -> None:
        found.append(
            check(finding, probe, result.url, ok=False, header=name, actual=values, message=message)
        )

    https = result.url.lower().startswith("https:")
    if (sts := result.get_all(HSTS)) and not https:
        warn(HSTS_OVER_HTTP, HSTS, sts, "sent over plain http, where browsers ignore it")
    for value in sts if https else []:
        try:
            parsed = hsts_grammar.parse(value)
        except HeaderValueError:
            continue  # the value check reports it
        if parsed.max_age > ONE_YEAR:
            warn(HSTS_ABOVE_YEAR, HSTS, [value], f"max-age={parsed.max_age} is capped at one year")
        elif odd := headers.warnings(HSTS, value):
            warn(HSTS_ODD, HSTS, [value], odd[0])
    xss = [v for v in result.get_all("x-xss-protection") if v.strip() != "0"]
    if xss:
        warn(XSS_PROTECTION, "x-xss-protection", xss, f"X-XSS-Protection is {xss[0]!r}, not 0")
    if fp := result.get_all("feature-policy"):
        warn(FEATURE_POLICY, "feature-policy", fp, "Feature-Policy is obsolete")
    allow = [v for v in result.get_all("x-frame-options") if "allow-from" in v.lower()]
    if allow:
        warn(XFO_ALLOW_FROM, "x-frame-options", allow, "ALLOW-FROM is ignored by browsers")
    for name in (CSP, CSP_RO):
        for value in result.get_all(name):
            try:
                policy = csp_grammar.parse(value)
            except HeaderValueError:
                continue
            if name == CSP_RO and not csp_grammar.has_reporting(policy):
                warn(CSP_NO_REPORTS, name, [value], "report-only without report-uri or report-to")
            if odd := headers.warnings(name, value):
                warn(CSP_ODD, name, [value], odd[0])
    return found


def redirect(finding: Finding, probe: Probe, result: Result, *, to_scheme: str = "https") -> Check:
    """http:// answers 301/302/307/308 with a Location on https:// and the same host."""
    host = origin_of(result.url)[1]
    expected = f"301/302/307/308 to https://{host}/..."
    location = result.get_all("location")
    actual = [f"{result.status} {location[0]}" if location else f"{result.status}"]
    target = result.location
    good = (
        result.status in (301, 302, 307, 308)
        and target is not None
        and origin_of(target)[:2] == (to_scheme, host)
    )
    if good:
        message = f"redirects to {target}"
    elif target is None:
        message = f"answers {result.status} without a redirect to https"
    elif origin_of(target)[:2] != (to_scheme, host):
        message = f"redirects to {target}, not to https://{host}"
    else:
        # The right place, the wrong status: 303 turns the request into a GET elsewhere
        # and 300/304 are no redirects at all, so browsers would not upgrade reliably.
        message = f"answers {result.status}, not 301, 302, 307 or 308, to {target}"
    return check(
        finding, probe, result.url, ok=good, expected=expected, actual=actual, message=message
    )
