"""The ladder: stages, their headers by owner, and the gates to enter each. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rollout.durations import format_duration
from rollout.errors import PlanError
from rollout.names import CSP, CSP_FAMILY, CSP_RO, HSTS, OFF, REPORTING_ENDPOINTS
from rollout.names import Stage as StageRef
from rollout.settings import StageSettings

if TYPE_CHECKING:
    # Annotations only: `rollout status` reads a cached, validated plan without pydantic.
    from rollout.plan import Environment, Plan

# Gate names, in the order they are checked, and how `rollout plan` describes them.
VERIFIED = "verified"
SOAK = "soak"
AFTER = "after"
SUBDOMAINS = "subdomains"
PRELOAD = "preload"
CSP_REPORTS = "csp-reports"
GATE_TEXT = {
    VERIFIED: "verified",
    SOAK: "soak",
    AFTER: "after",
    CSP_REPORTS: "CSP reports",
    SUBDOMAINS: "subdomain checks",
    PRELOAD: "preload requirements",
}


@dataclass(frozen=True)
class Stage:
    """One rung of the ladder: its HSTS directives, CSP mode and gates."""

    index: int
    name: str
    max_age: int
    include_subdomains: bool
    preload: bool
    csp_enforcing: bool
    gates: tuple[str, ...]
    csp_starts: bool = False  # the first enforcing stage: entering it turns CSP enforcing

    @property
    def hsts(self) -> str:
        """The Strict-Transport-Security value this stage sends."""
        value = f"max-age={self.max_age}"
        if self.include_subdomains:
            value += "; includeSubDomains"
        if self.preload:
            value += "; preload"
        return value

    @property
    def csp_mode(self) -> str:
        """ "enforcing" or "report-only"."""
        return "enforcing" if self.csp_enforcing else "report-only"


def build(plan: Plan) -> list[Stage]:
    """Every stage of the plan's ladder, in order (stage off is not a stage)."""
    ladder = plan.ladder
    enforce_from, subdomains_from = ladder.enforce_from, ladder.subdomains_from
    stages: list[Stage] = []
    for i, age in enumerate(ladder.hsts):
        subs = subdomains_from is not None and age >= subdomains_from
        gates = (VERIFIED,) if i == 0 else (VERIFIED, SOAK)
        stages.append(
            Stage(
                index=i,
                name=f"hsts-{format_duration(age)}",
                max_age=age,
                include_subdomains=subs,
                preload=False,
                csp_enforcing=enforce_from is not None and age >= enforce_from,
                gates=(*gates, SUBDOMAINS) if subs else gates,
                csp_starts=enforce_from is not None
                and age >= enforce_from
                and (i == 0 or ladder.hsts[i - 1] < enforce_from),
            )
        )
    if ladder.preload:
        top = ladder.hsts[-1]
        stages.append(
            Stage(
                index=len(stages),
                name="preload",
                max_age=top,
                include_subdomains=True,
                preload=True,
                csp_enforcing=enforce_from is not None and top >= enforce_from,
                gates=(VERIFIED, SOAK, SUBDOMAINS, PRELOAD),
            )
        )
    return stages


# The Reporting API endpoint name (Reporting-Endpoints) that CSP's report-to points at.
REPORT_TO = "rollout-csp"


def gates_for(stage: Stage, env: Environment) -> tuple[str, ...]:
    """The gates to enter stage in env: the stage's own, plus `after` where env sets it and
    the CSP reports gate on the step that makes CSP enforcing where env sets csp-violations."""
    extra: tuple[str, ...] = (AFTER,) if env.after is not None else ()
    if env.csp_violations is not None and stage.csp_starts:
        extra += (CSP_REPORTS,)
    if not extra:
        return stage.gates
    return (*stage.gates[:2], *extra, *stage.gates[2:])


def stage_at(plan: Plan, index: StageRef) -> Stage | None:
    """The stage numbered index (None is stage off); PlanError when there is no such stage."""
    if index is None:
        return None
    stages = build(plan)
    if not 0 <= index < len(stages):
        raise PlanError(
            f"{plan.path}: ladder: there is no stage {index}; "
            f"the ladder has stages 0 to {len(stages) - 1} and off"
        )
    return stages[index]


def stage_by_name(stages: list[Stage], name: str) -> Stage | None:
    """The stage called name, or None (also for "off")."""
    return next((s for s in stages if s.name == name), None)


def next_stage(stages: list[Stage], current: StageRef) -> Stage | None:
    """The stage after current (None is off); None at the top of the ladder."""
    index = 0 if current is None else current + 1
    return stages[index] if index < len(stages) else None


def headers_for(plan: Plan, stage: Stage | None) -> dict[str, str]:
    """Every header a stage sends, whoever owns it; stage off sends no HSTS and no CSP."""
    policy = plan.policy.headers()
    csp = policy.pop(CSP, None)
    if stage is None:
        return policy
    out = {HSTS: stage.hsts}
    uri = plan.policy.csp_report_uri
    if csp is not None:
        out[CSP if stage.csp_enforcing else CSP_RO] = _reporting(csp, uri)
        after = plan.policy.content_security_policy_next
        if stage.csp_enforcing and after is not None:
            # The next, tighter policy goes out report-only beside the enforcing one.
            out[CSP_RO] = _reporting(after, uri)
        if uri:
            out[REPORTING_ENDPOINTS] = f'{REPORT_TO}="{uri}"'
    return {**out, **policy}


def settings_for(plan: Plan, env_name: str, stage: StageRef, *, updated: str = "") -> StageSettings:
    """What env must send at stage (None is off), split into app-owned and edge-owned."""
    env = plan.environment(env_name)
    current = stage_at(plan, stage)
    headers = headers_for(plan, current)
    edge = {name: value for name, value in headers.items() if name in env.edge}
    app = {name: value for name, value in headers.items() if name not in env.edge}
    if current is None:
        # Off: the app has not started climbing; the edge is already configured.
        app = {}
        edge = {n: v for n, v in edge.items() if n != HSTS and n not in CSP_FAMILY}
    return StageSettings(
        environment=env.name,
        stage=stage,
        name=OFF if current is None else current.name,
        app=app,
        edge=edge,
        updated=updated,
    )


# Policy steps: what `advance` does at the current stage, before any move up the ladder,
# for an environment that sets csp-violations (docs/reports.md).
STAGE_POLICY = "stage-policy"  # the plan's new policy goes out report-only at this stage
PROMOTE_POLICY = "promote-policy"  # the report-only policy that soaked becomes enforcing
POLICY_STEP_GATES = {
    STAGE_POLICY: (VERIFIED,),  # sending a report-only policy cannot break a page
    PROMOTE_POLICY: (VERIFIED, SOAK, CSP_REPORTS),
}


def policy_step(
    plan: Plan, env: Environment, current: StageSettings
) -> tuple[str, StageSettings] | None:
    """The CSP change to make at the current stage before climbing, and the stage file it
    writes; None when the live CSP is what the plan wants there (or csp-violations is off).

    A policy the plan wants enforced but that has not run report-only is first staged
    report-only (beside the enforcing one, once enforcing); one that has is promoted.
    """
    if env.csp_violations is None or current.stage is None:
        return None
    from rollout.reports.fingerprint import policy_ids

    def same(a: str | None, b: str | None) -> bool:
        return a == b or (a is not None and b is not None and policy_ids(a) == policy_ids(b))

    want = settings_for(plan, env.name, current.stage).headers()
    have = current.headers()
    want_enforce, want_report = want.get(CSP), want.get(CSP_RO)
    enforce, report = have.get(CSP), have.get(CSP_RO)
    endpoints = want.get(REPORTING_ENDPOINTS)
    if want_enforce is not None and not same(want_enforce, enforce):
        if report is not None and same(want_enforce, report):
            step = PROMOTE_POLICY, _with_csp(current, env, want_enforce, want_report, endpoints)
        else:
            step = STAGE_POLICY, _with_csp(current, env, enforce, want_enforce, endpoints)
        return step
    if not same(want_report, report):
        return STAGE_POLICY, _with_csp(current, env, enforce, want_report, endpoints)
    return None


def _with_csp(
    current: StageSettings,
    env: Environment,
    enforce: str | None,
    report: str | None,
    endpoints: str | None,
) -> StageSettings:
    """current with its CSP headers (and Reporting-Endpoints) replaced, owner kept."""
    owner = "edge" if CSP in env.edge else "app"
    sent = {CSP: enforce, CSP_RO: report, REPORTING_ENDPOINTS: endpoints}
    table = {k: v for k, v in getattr(current, owner).items() if k not in sent}
    table.update({k: v for k, v in sent.items() if v is not None})
    if owner == "edge":
        return replace(current, edge=table, updated="")
    return replace(current, app=table, updated="")


def soak_seconds(stage: Stage | None, env: Environment) -> int:
    """Least time env stays at stage before it may advance ("max-age": the stage's max-age)."""
    if stage is None:
        return 0  # off -> stage 0 has no soak gate
    return stage.max_age if env.soak is None else env.soak


def when_may_advance(
    last_transition_time: datetime, stage: Stage | None, env: Environment
) -> datetime:
    """The earliest time env, at stage since last_transition_time, passes the soak gate."""
    return last_transition_time + timedelta(seconds=soak_seconds(stage, env))


def _reporting(policy: str, uri: str | None) -> str:
    """The policy with csp-report-uri as both report-uri and report-to (Reporting API)."""
    if not uri:
        return policy
    from rollout.headers import csp

    return csp.with_report_uri(policy, uri, REPORT_TO)
