"""The ladder: stages, their headers by owner, and the gates to enter each. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rollout.durations import format_duration
from rollout.errors import PlanError
from rollout.names import CSP, CSP_FAMILY, CSP_RO, HSTS, OFF
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
GATE_TEXT = {
    VERIFIED: "verified",
    SOAK: "soak",
    AFTER: "after",
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


def gates_for(stage: Stage, env: Environment) -> tuple[str, ...]:
    """The gates to enter stage in env: the stage's own, plus `after` where env sets it."""
    if env.after is None:
        return stage.gates
    return (*stage.gates[:2], AFTER, *stage.gates[2:])


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
    if csp is not None:
        if plan.policy.csp_report_uri:
            csp = _with_report_uri(csp, plan.policy.csp_report_uri)
        out[CSP if stage.csp_enforcing else CSP_RO] = csp
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


def _with_report_uri(policy: str, uri: str) -> str:
    from rollout.headers import csp

    return csp.with_report_uri(policy, uri)
