"""The starting plan `rollout init` writes: what the site sends today, commented, loadable.

The text is built line by line (TOML writers drop comments, and the comments are the
point: they say what was seen and why each owner was chosen), then parsed with the plan's
own validator before anything is written, so a written plan always loads. It is written
once: `write_new` never replaces a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rollout.discover import Observation, Survey, proxies
from rollout.errors import HeaderValueError, InputError
from rollout.names import CSP, CSP_RO, HSTS, NOSNIFF, PERMISSIONS, REFERRER, XFO

__all__ = ["SUGGESTED", "Starter", "starter_plan", "write_new"]

# [policy] keys in the order the plan lists them, and a starting value for each.
SUGGESTED = {
    CSP: "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
    PERMISSIONS: "geolocation=(), camera=(), microphone=()",
    REFERRER: "strict-origin-when-cross-origin",
    XFO: "DENY",
    NOSNIFF: "nosniff",
}
# Written active when the site lacks them: CSP starts report-only, so it blocks nothing
# until the ladder enforces it; browsers already default to strict-origin-when-cross-origin;
# nosniff changes nothing for correctly typed responses. X-Frame-Options and
# Permissions-Policy apply from stage 0 and can break framing or features, so they are
# written commented out, for the user to decide.
_SAFE_WHEN_MISSING = frozenset({CSP, REFERRER, NOSNIFF})


@dataclass(frozen=True)
class Starter:
    """The plan's text and what it decided, for the command's report."""

    text: str
    environment: str
    policy: dict[str, str]
    edge: list[str]
    missing: list[str]  # [policy] headers the site does not send today
    notes: list[str] = field(default_factory=list)  # what the user should know first


def _q(value: str) -> str:
    # Header values are visible ASCII (checked before): a JSON string of them is a TOML
    # basic string, escapes included.
    return json.dumps(value)


def _qs(values: Sequence[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def starter_plan(
    survey: Survey,
    observations: Sequence[Observation],
    *,
    environment: str,
    plan_path: Path,
    connect_to: Sequence[str] = (),
    resolve: Sequence[str] = (),
    cacert: Path | None = None,
    insecure: bool = False,
) -> Starter:
    """The starting plan for one environment at the surveyed page; parsed before returned."""
    from rollout import headers
    from rollout.plan import parse_plan

    seen = {o.header: o for o in observations}
    lines = [
        f"# Written by `rollout init` on {datetime.now(UTC):%Y-%m-%d} from what "
        f"{survey.final_url} sent.",
        "# Review it, then: rollout plan; rollout verify ENV --stage off; rollout advance ENV.",
        "# Every key is documented in docs/plan.md.",
        "#",
        "# Who sends each header was judged from where it appeared (see docs/init.md):",
        "#   on the app's own address (--app-url): the app; absent there: the edge;",
        "#   on the http:// redirect, which the proxy answers alone: the edge;",
        "#   on the 404 or on the page only, not both: the edge (proxy rules lose headers,",
        "#   app middlewares stamp every response);",
        "#   on both alike: either could; assumed the app.",
    ]
    found = proxies(survey)
    if found:
        lines.append(f"# In front of the app: {'; '.join(found)}.")
    if insecure:
        lines.append("# Probed with --insecure: certificates were not checked.")
    if survey.moved_from:
        lines.append(
            f"# {survey.moved_from} redirects to {survey.final_url} (another origin): the plan "
            "lists where it lands."
        )

    policy: dict[str, str] = {}
    notes: list[str] = []
    missing: list[str] = []
    body = ["", "[policy]"]
    enforcing_today = CSP in seen
    for name, suggestion in SUGGESTED.items():
        obs = seen.get(name) or (seen.get(CSP_RO) if name == CSP else None)
        if obs is None:
            missing.append(name)
            if name in _SAFE_WHEN_MISSING:
                why = "starts report-only" if name == CSP else "changes nothing for a working page"
                body.append(f"# not sent today; a suggested start ({why})")
                body.append(f"{name} = {_q(suggestion)}")
                policy[name] = suggestion
            else:
                body.append("# not sent today; applies from stage 0 on, so decide first:")
                body.append(f"# {name} = {_q(suggestion)}")
            continue
        value = obs.values[0]
        try:
            headers.validate(name, value)
        except HeaderValueError as exc:
            body.append(f"# sent today as {_q(value)}: not valid ({exc}); a suggested start:")
            notes.append(f"{obs.header}: {value!r} is not valid ({exc}); the plan suggests another")
            value = suggestion
        else:
            body.append(f"# {_origin(obs)}")
        for note in obs.notes:
            body.append(f"# ! {note}")
        if name == CSP and obs.header == CSP_RO:
            body.append(
                "# sent today as Content-Security-Policy-Report-Only: the ladder keeps it so"
            )
        body.append(f"{name} = {_q(value)}")
        policy[name] = value

    ladder = _ladder(seen, enforcing_today and CSP in policy, notes)
    # Owning either CSP name owns both (a stage sends one of them); the plan says so.
    edge = sorted(
        {
            CSP if o.header == CSP_RO else o.header
            for o in observations
            if o.owner == "edge" and (o.header in (HSTS, CSP, CSP_RO) or o.header in policy)
        }
    )
    env = _environment(environment, survey, edge, plan_path, connect_to, resolve, cacert)
    text = "\n".join([*lines, *body, *ladder, *env]) + "\n"
    parse_plan(text, plan_path)  # a plan init writes always loads
    return Starter(text, environment, policy, edge, missing, notes)


def _origin(obs: Observation) -> str:
    return f"sent today; {obs.owner} ({obs.confidence}): {obs.why}"


def _ladder(seen: dict[str, Observation], enforcing: bool, notes: list[str]) -> list[str]:
    from rollout.headers import hsts

    out = ["", "[ladder]", "# The default ramp: HSTS max-age per stage, in seconds."]
    out.append("hsts = [30, 300, 3600, 86400, 604800, 2592000, 31536000]")
    sts = seen.get(HSTS)
    if sts is not None:
        try:
            today = hsts.parse(sts.values[0])
        except HeaderValueError:
            out.append(f"# HSTS sent today ({sts.values[0]!r}) does not parse; browsers ignore it.")
        else:
            out.append(
                f"# HSTS is sent today with max-age={today.max_age}"
                + ("; includeSubDomains" if today.include_subdomains else "")
                + ". Stage 0 sends max-age=30, which replaces it in every browser that"
            )
            out.append(
                "# comes back (RFC 6797 §8.1). To keep today's protection, start the ramp at"
            )
            out.append(
                "# or above today's max-age; browsers that saw it keep it until it runs out."
            )
            notes.append(
                f"HSTS is sent today (max-age={today.max_age}); stage 0 would lower it: see the "
                "[ladder] comments"
            )
    if enforcing:
        out.append("# The site enforces its CSP today: keep enforcing from stage 0 rather than")
        out.append("# stepping back to report-only.")
        out.append("csp-enforce-from = 30")
    else:
        out.append(
            "csp-enforce-from = 604800  # the first stage whose max-age >= this enforces CSP"
        )
    out.append("include-subdomains-from = 2592000  # the first stage that adds includeSubDomains")
    return out


def _environment(
    name: str,
    survey: Survey,
    edge: Sequence[str],
    plan_path: Path,
    connect_to: Sequence[str],
    resolve: Sequence[str],
    cacert: Path | None,
) -> list[str]:
    out = ["", f"[environments.{name}]", f"urls = {_qs([survey.final_url])}"]
    if edge:
        out.append("# The proxy/CDN sends these; `rollout render` writes its part.")
        out.append(f"edge = {_qs(edge)}")
    else:
        out.append("# The app sends every header through rollout's middleware (no edge list).")
    out.append(
        "# List every subdomain that serves traffic: includeSubDomains waits for their checks."
    )
    out.append("subdomains = []")
    if connect_to:
        out.append(
            "# From --connect-to: reach the servers by address, SNI and certificate on the name."
        )
        out.append(f"connect-to = {_qs(connect_to)}")
    if resolve:
        out.append(f"resolve = {_qs(resolve)}")
    if cacert is not None:
        out.append(f"cacert = {_q(os.path.relpath(cacert.resolve(), plan_path.parent.resolve()))}")
    if not survey.redirects_to_https():
        out.append("# ! http:// does not redirect to https:// on the same host (redirect.E001).")
    out.append(
        'soak = "max-age"  # the least time at a stage: its own max-age, as hstspreload.org advises'
    )
    return out


def write_new(path: Path, text: str) -> None:
    """Write text to path, which must not exist: all or nothing, never over a file."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # link() fails if the name exists: no window in which another writer is replaced.
        os.link(tmp, path)
    except FileExistsError:
        raise InputError(f"{path}: already exists; rollout init never replaces a plan") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
