"""An environment's reports as `rollout reports` shows them: each CSP it sends now, what
that policy drew in the window, and whether it is within the plan's budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rollout import gates, history, ladder, store
from rollout.names import CSP, CSP_RO, Stage, stage_label
from rollout.plan import Environment, Plan
from rollout.reports import summary
from rollout.reports.parse import url_origin
from rollout.reports.store import open_store

ENFORCING, REPORT_ONLY, NEXT = "enforcing", "report-only", "next"


@dataclass
class EnvironmentReports:
    """The reports of each policy an environment sends now, in one window."""

    environment: str
    stage: Stage
    name: str
    since: datetime
    budget: int  # csp-violations (0 when the plan does not set it)
    gated: bool  # whether the plan sets csp-violations
    policies: list[tuple[str, summary.PolicyReports]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every policy drew at most `budget` distinct violations."""
        return all(len(p.violations) <= self.budget for _, p in self.policies)

    def to_json(self) -> dict[str, object]:
        """DESIGN.md's object for the current policy; a next policy under "next"."""
        main = next((p for role, p in self.policies if role != NEXT), None)
        out: dict[str, object] = {
            "environment": self.environment,
            "stage": stage_label(self.stage),
            "ok": self.ok,
            "reports": main.reports if main else 0,
            "violations": [v.to_json() for v in main.violations] if main else [],
            "policy": next((role for role, p in self.policies if p is main), None),
            "since": history.format_time(self.since),
            "page_views": main.page_views if main else 0,
            "noise": [v.to_json() for v in main.noise] if main else [],
            "budget": self.budget,
        }
        later = next((p for role, p in self.policies if role == NEXT), None)
        out["next"] = None if later is None else later.to_json()
        return out


def read(
    plan: Plan, env: Environment, *, since: int | None = None, now: datetime
) -> EnvironmentReports:
    """What the environment's live policies drew: in the last `since` seconds, or (None)
    since its current stage began, the window the csp-reports gate judges."""
    current = store.read_settings(plan, env.name) or ladder.settings_for(plan, env.name, None)
    records = history.read(plan, env.name)
    began = gates.entered_at(records, current.stage, current.updated)
    start = now - timedelta(seconds=since) if since is not None else (began or now)
    out = EnvironmentReports(
        environment=env.name,
        stage=current.stage,
        name=current.name,
        since=start,
        budget=env.csp_violations or 0,
        gated=env.csp_violations is not None,
    )
    headers = current.headers()
    wanted = []
    if CSP in headers:
        wanted.append((ENFORCING, CSP))
        if CSP_RO in headers:
            wanted.append((NEXT, CSP_RO))
    elif CSP_RO in headers:
        wanted.append((REPORT_ONLY, CSP_RO))
    if not wanted:
        return out
    origins = [url_origin(url) for url in env.urls]
    reports = open_store(summary.location(plan.folder, env.name, env.reports_store), create=False)
    try:
        for role, name in wanted:
            seen = summary.read(reports, env.name, name, headers[name], start, origins)
            out.policies.append((role, seen))
    finally:
        reports.close()
    return out
