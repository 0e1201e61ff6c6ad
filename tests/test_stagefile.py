"""A stage file judged against the plan: each hand edit refused in one line, drift named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rollout import ladder, stagefile
from rollout.errors import SettingsError
from rollout.names import CSP, CSP_RO, HSTS
from rollout.plan import Plan, load_plan
from rollout.settings import StageSettings
from tests.conftest import PLAN


@pytest.fixture
def plan(write_plan: Callable[..., Path]) -> Plan:
    """The standard test plan: production's edge owns HSTS and X-Content-Type-Options."""
    return load_plan(write_plan())


def check(plan: Plan, settings: StageSettings) -> str:
    """stagefile.check's refusal, without the file name."""
    path = Path("stages") / f"{settings.environment}.toml"
    with pytest.raises(SettingsError) as caught:
        stagefile.check(plan, plan.environment(settings.environment), settings, path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_drift_names_edge_headers_after_hsts(plan: Plan) -> None:
    """Edge drift is listed for every header, x-* ones sorting after the edge's HSTS too."""
    wanted = ladder.settings_for(plan, "production", 3)
    edge = {**wanted.edge, "x-content-type-options": "sniff-please"}
    drifted = StageSettings("production", 3, wanted.name, wanted.app, edge)
    assert stagefile.drift(plan, drifted) == [
        "edge.x-content-type-options: the value is invalid: X-Content-Type-Options "
        "'sniff-please' is not nosniff: send nosniff"
    ]
    gone = {HSTS: wanted.edge[HSTS]}
    assert stagefile.drift(plan, StageSettings("production", 3, wanted.name, wanted.app, gone)) == [
        "edge.x-content-type-options: the plan sends 'nosniff'; the file does not"
    ]


def test_drift_is_empty_for_what_the_plan_writes(plan: Plan) -> None:
    """Every stage exactly as the plan writes it has no drift."""
    for env in ("staging", "production"):
        for stage in (None, *range(len(ladder.build(plan)))):
            assert stagefile.drift(plan, ladder.settings_for(plan, env, stage)) == []


def test_two_csp_modes_in_one_table_are_refused(plan: Plan) -> None:
    """A table sending CSP both enforcing and report-only is refused, naming both."""
    wanted = ladder.settings_for(plan, "staging", 4)
    app = {**wanted.app, CSP_RO: wanted.app[CSP]}
    assert check(plan, StageSettings("staging", 4, wanted.name, app, {})) == (
        f"app.{CSP_RO}: also {CSP}; CSP is sent in one mode"
    )


def test_the_app_csp_mode_must_be_the_stages(plan: Plan) -> None:
    """A report-only stage with an enforcing app CSP is a skipped rung: refused."""
    wanted = ladder.settings_for(plan, "staging", 3)
    app = {k: v for k, v in wanted.app.items() if k != CSP_RO}
    app[CSP] = wanted.app[CSP_RO]
    message = check(plan, StageSettings("staging", 3, wanted.name, app, {}))
    assert message.startswith(
        f"app.{CSP}: stage 3 (hsts-1d) sends CSP report-only, as {CSP_RO}; undo the edit"
    )


def test_an_edge_csp_mode_no_rung_uses_is_refused(write_plan: Callable[..., Path]) -> None:
    """Where every stage enforces, an edge report-only CSP is refused in one clear line."""
    owners = '["strict-transport-security", "x-content-type-options"'
    text = PLAN.replace(owners, owners + ', "content-security-policy"')
    text += "\n[ladder]\ncsp-enforce-from = 30\n"
    plan = load_plan(write_plan(text))
    wanted = ladder.settings_for(plan, "production", 0)
    edge = {k: v for k, v in wanted.edge.items() if k != CSP}
    edge[CSP_RO] = wanted.edge[CSP]
    message = check(plan, StageSettings("production", 0, wanted.name, wanted.app, edge))
    assert message.startswith(f"edge.{CSP_RO}: no stage of the ladder sends CSP report-only; undo")
