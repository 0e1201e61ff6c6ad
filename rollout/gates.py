"""The gates to enter a stage, judged: verified, soak, after, subdomains, preload.

Each gate is a pure function of what was observed (a verify Report, the history, the
other environment's files) and of `now`, passed in, so soak is testable without sleeping.
`--force` skips soak, after and the live pre-check only; the subdomain checks and the
preload requirements are never skipped, because what they protect cannot be undone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rollout import history, ladder, store
from rollout.durations import describe, format_duration
from rollout.errors import HeaderValueError
from rollout.headers import hsts as hsts_grammar
from rollout.history import HistoryRecord
from rollout.ladder import AFTER, CSP_REPORTS, PRELOAD, SOAK, SUBDOMAINS, VERIFIED, Stage
from rollout.names import CSP, CSP_RO, HSTS
from rollout.settings import StageSettings

if TYPE_CHECKING:
    # Annotations only: `rollout status` judges soak and after without loading pydantic
    # (it reads a cached, validated plan) or the prober (aiohttp builds TLS contexts at
    # import, ~100 ms).
    from rollout.plan import Environment, Plan
    from rollout.verify import Report

FORCEABLE = frozenset({VERIFIED, SOAK, AFTER, CSP_REPORTS})


@dataclass(frozen=True)
class Gate:
    """One gate's verdict: its name, whether it passed, and why, in user terms."""

    name: str
    ok: bool
    reason: str
    skipped: bool = False  # passed only because --force skipped it
    ends_at: datetime | None = None  # soak: when it is over
    figures: Mapping[str, object] = field(default_factory=dict)  # csp-reports: the counts

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "ok": self.ok, "reason": self.reason}
        if self.skipped:
            out["skipped"] = True
        if self.ends_at is not None:
            out["ends_at"] = history.format_time(self.ends_at)
        return {**out, **self.figures}


def verified(report: Report) -> Gate:
    """The current stage holds live, right now, with certificates checked."""
    if report.insecure:
        return Gate(
            VERIFIED, False, "probed without certificate checks, which proves nothing to browsers"
        )
    if report.ok:
        return Gate(VERIFIED, True, f"all {len(report.checks)} checks passed live")
    failed = report.failures
    first = failed[0] if failed else None
    why = f"{len(failed)} of {len(report.checks)} checks failed"
    if first is not None:
        why += f", first: {first.probe} {first.url or ''} {first.message} [{first.id}]"
    return Gate(VERIFIED, False, " ".join(why.split()))


def soak(
    env: Environment,
    here: Stage | None,
    since: datetime | None,
    now: datetime,
    *,
    policy: bool = False,
) -> Gate:
    """The environment has been at its current stage at least its soak time (policy: its
    report-only policy at least csp-soak, where the plan sets it)."""
    needed = ladder.soak_seconds(here, env)
    what = "the stage's max-age" if env.soak is None else "the plan's soak"
    if policy and env.csp_soak is not None:
        needed, what = env.csp_soak, "the plan's csp-soak"
    if since is None:
        return Gate(SOAK, False, "no record of when the current stage began")
    ends = since + timedelta(seconds=needed)
    if now >= ends:
        waited = describe((now - since).total_seconds())
        return Gate(
            SOAK,
            True,
            f"at this stage for {waited} ({what}: {format_duration(needed)})",
            ends_at=ends,
        )
    left = describe((ends - now).total_seconds())
    return Gate(
        SOAK,
        False,
        f"{left} left of {format_duration(needed)} ({what}); over at {history.format_time(ends)}",
        ends_at=ends,
    )


def after(plan: Plan, env: Environment, target: Stage) -> Gate:
    """The environment named by `after` has reached and verified the target stage."""
    assert env.after is not None
    other = store.read_settings(plan, env.after)
    records = history.read(plan, env.after)
    at = None if other is None else other.stage
    top = history.reached(at, records)
    if top is not None and top >= target.index:
        return Gate(AFTER, True, f"{env.after} has reached and verified stage {top}")
    got = "no stage" if top is None else f"stage {top}"
    return Gate(
        AFTER, False, f"{env.after} has reached and verified {got}; it must reach {target.index}"
    )


def subdomains(env: Environment, report: Report) -> Gate:
    """Every listed subdomain answers over https and redirects its http:// to https://."""
    if not env.subdomains:
        return Gate(
            SUBDOMAINS,
            False,
            "the plan lists no subdomains to check; list them, or set "
            "include-subdomains-from = false",
        )
    checked = [c for c in report.checks if c.probe == "subdomain" and c.severity == "error"]
    bad = [c for c in checked if not c.ok]
    if not checked:
        return Gate(SUBDOMAINS, False, "no subdomain check could be made")
    if bad:
        first = bad[0]
        return Gate(
            SUBDOMAINS,
            False,
            f"{len(bad)} of {len(checked)} subdomain checks failed, first: "
            f"{first.url} {first.message} [{first.id}]",
        )
    hosts = ", ".join(env.subdomains)
    return Gate(SUBDOMAINS, True, f"{hosts}: https with a valid certificate, http redirects")


def preload(target: Stage, report: Report) -> Gate:
    """hstspreload.org's rules: the header itself, one HSTS header, and http -> https first."""
    problems = hsts_grammar.preload_problems(hsts_grammar.parse(target.hsts))
    duplicated = [
        c for c in report.checks if c.header == HSTS and c.probe == "page" and len(c.actual) > 1
    ]
    if duplicated:
        problems.append(f"{duplicated[0].url} sends {len(duplicated[0].actual)} HSTS headers")
    redirects = [c for c in report.checks if c.probe == "http"]
    if not redirects:
        problems.append("no http:// probe could be made")
    problems += [f"{c.url}: {c.message}" for c in redirects if not c.ok]
    if problems:
        return Gate(PRELOAD, False, "; ".join(problems))
    return Gate(
        PRELOAD,
        True,
        f"{target.hsts!r} meets hstspreload.org's rules; every origin redirects http to https",
    )


def csp_reports(
    plan: Plan,
    env: Environment,
    current: StageSettings,
    enforce: str,
    since: datetime | None,
    now: datetime,
) -> Gate:
    """The policy about to enforce ran report-only through the soak, drew at most
    csp-violations distinct violations, and was seen: page views, or reports."""
    from rollout.reports import summary
    from rollout.reports.fingerprint import policy_ids
    from rollout.reports.parse import url_origin
    from rollout.reports.store import StoreError, open_store

    budget = env.csp_violations or 0
    live = current.headers().get(CSP_RO)
    if live is None or policy_ids(live) != policy_ids(enforce):
        return Gate(
            CSP_REPORTS,
            False,
            "the policy to enforce has not been sent report-only at this stage, so no "
            "report can speak for it yet",
        )
    if since is None:
        return Gate(CSP_REPORTS, False, "no record of when the report-only policy went live")
    where = summary.location(plan.folder, env.name, env.reports_store)
    origins = [url_origin(url) for url in env.urls]
    try:
        store = open_store(where, create=False)
        try:
            seen = summary.read(store, env.name, CSP_RO, live, since, origins)
        finally:
            store.close()
    except StoreError as exc:
        return Gate(CSP_REPORTS, False, str(exc))
    distinct, views, reports = len(seen.violations), seen.page_views, seen.reports
    least = env.csp_min_page_views
    figures: dict[str, object] = {
        "violations": distinct,
        "budget": budget,
        "reports": reports,
        "page_views": views,
        "min_page_views": least,
        "noise": len(seen.noise),
        "since": history.format_time(since),
    }
    window = f"since {history.format_time(since)}"
    if distinct > budget:
        first = seen.violations[0]
        why = (
            f"{summary.counted(distinct, 'distinct violation')} of the report-only policy "
            f"{window} (csp-violations"
            f" = {budget}), most frequent: {first.directive} {first.blocked} on "
            f"{first.document or '?'}; see rollout reports {env.name}"
        )
        return Gate(CSP_REPORTS, False, summary.printable(why), figures=figures)
    if least is not None and views < least:
        why = (
            f"{summary.counted(views, 'page view')} {window}, csp-min-page-views = {least}: "
            "too few visits for silence to count as clean"
        )
        return Gate(CSP_REPORTS, False, why, figures=figures)
    if least is None and views + reports == 0:
        why = (
            f"no page view and no report {window}: nobody may have visited, and no data "
            "is not a pass"
        )
        return Gate(CSP_REPORTS, False, why, figures=figures)
    why = (
        f"{summary.counted(distinct, 'distinct violation')} (csp-violations = {budget}), "
        f"{summary.counted(views, 'page view')}, {summary.counted(reports, 'report')} {window}"
    )
    return Gate(CSP_REPORTS, True, why, figures=figures)


def csp_status(
    plan: Plan, env: Environment, current: StageSettings, since: datetime | None, now: datetime
) -> Gate | None:
    """The csp-reports gate as it stands for the next advance (or for the staged next
    policy, once enforcing); None when no step ahead is gated by CSP reports."""
    if env.csp_violations is None or current.stage is None:
        return None
    step = ladder.policy_step(plan, env, current)
    if step is not None and step[0] == ladder.STAGE_POLICY:
        return Gate(
            CSP_REPORTS,
            False,
            "the plan's CSP is not live yet: the next advance sends it report-only, and "
            "its reports count from then",
        )
    if step is not None:
        enforce = step[1].headers().get(CSP)
    elif CSP in current.headers():
        enforce = current.headers().get(CSP_RO)  # the staged next policy, if any
    else:
        climb = ladder.next_stage(ladder.build(plan), current.stage)
        gated = climb is not None and CSP_REPORTS in ladder.gates_for(climb, env)
        enforce = ladder.headers_for(plan, climb).get(CSP) if gated else None
    if enforce is None:
        return None
    return csp_reports(plan, env, current, enforce, since, now)


def entered_at(
    records: Sequence[HistoryRecord], stage: int | None, updated: str
) -> datetime | None:
    """When the environment entered its current stage: the history, else the file's time."""
    return history.entered(records, stage) or (history.parse_time(updated) if updated else None)


def evaluate(
    plan: Plan,
    env: Environment,
    here: Stage | None,
    target: Stage,
    report: Report,
    since: datetime | None,
    now: datetime,
    *,
    force: bool = False,
    current: StageSettings | None = None,
    new: StageSettings | None = None,
    names: Sequence[str] | None = None,
) -> list[Gate]:
    """Every gate to enter `target` from `here`, in the order `rollout plan` lists them.

    `names` replaces the ladder's gates (a policy step at the current stage); `current`
    and `new` are the stage files before and after, which the csp-reports gate compares.
    """
    found: list[Gate] = []
    policy_step = names is not None
    for name in ladder.gates_for(target, env) if names is None else names:
        if name == VERIFIED:
            gate = verified(report)
        elif name == SOAK:
            gate = soak(env, here, since, now, policy=policy_step)
        elif name == CSP_REPORTS:
            enforce = new.headers().get(CSP) if new is not None else None
            if current is None or enforce is None:  # pragma: no cover - orchestrate passes both
                gate = Gate(CSP_REPORTS, False, "no policy to judge")
            else:
                gate = csp_reports(plan, env, current, enforce, since, now)
        elif name == AFTER:
            gate = after(plan, env, target)
        elif name == SUBDOMAINS:
            gate = subdomains(env, report)
        elif name == PRELOAD:
            try:
                gate = preload(target, report)
            except HeaderValueError as exc:  # the ladder writes the value: cannot happen
                gate = Gate(PRELOAD, False, str(exc))
        else:  # pragma: no cover - ladder.gates_for names only the gates above
            raise AssertionError(name)
        if force and name in FORCEABLE and not gate.ok:
            gate = replace(gate, ok=True, skipped=True, reason=f"skipped (forced): {gate.reason}")
        found.append(gate)
    return found
