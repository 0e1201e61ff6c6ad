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


def test_two_csp_modes_in_one_table_are_refused_before_enforcing(plan: Plan) -> None:
    """Before CSP enforces, a table sending it in both modes is refused, naming both."""
    wanted = ladder.settings_for(plan, "staging", 3)
    app = {**wanted.app, CSP: wanted.app[CSP_RO]}
    assert check(plan, StageSettings("staging", 3, wanted.name, app, {})) == (
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


def accepted(plan: Plan, settings: StageSettings) -> StageSettings:
    """stagefile.check's answer for a file it accepts."""
    env = plan.environment(settings.environment)
    return stagefile.check(plan, env, settings, Path("stages") / "x.toml")


def edge_owns_csp(write_plan: Callable[..., Path], ladder_keys: str = "") -> Plan:
    """The standard plan with production's edge owning CSP too."""
    owners = '["strict-transport-security", "x-content-type-options"'
    text = PLAN.replace(owners, owners + ', "content-security-policy"')
    return load_plan(write_plan(text + (f"\n[ladder]\n{ladder_keys}\n" if ladder_keys else "")))


def test_cleared_hsts_fits_off_and_any_stage_and_is_no_drift(plan: Plan) -> None:
    """max-age=0 from revert --clear-hsts is accepted at off and at stage 3, and is no drift."""
    off = StageSettings("staging", None, "off", {HSTS: "max-age=0"}, {})
    assert accepted(plan, off) == off and stagefile.drift(plan, off) == []
    at3 = ladder.settings_for(plan, "staging", 3)
    app = {**at3.app, HSTS: "Max-Age=0", "x-frame-options": "SAMEORIGIN"}
    cleared = StageSettings("staging", 3, at3.name, app, {})
    assert accepted(plan, cleared) == cleared
    # Drift after the cleared HSTS is still listed, in name order.
    assert stagefile.drift(plan, cleared) == [
        "app.x-frame-options: X-Frame-Options is SAMEORIGIN, the plan wants DENY"
    ]


@pytest.mark.parametrize(("name", "value"), [(HSTS, "max-age=30"), ("x-frame-options", "DENY")])
def test_stage_off_sends_no_app_headers(plan: Plan, name: str, value: str) -> None:
    """An app-owned header in a stage-off file, other than max-age=0, is refused."""
    off = StageSettings("staging", None, "off", {name: value}, {})
    assert check(plan, off).startswith(f"app.{name}: stage off sends no app-owned headers; undo")


def test_a_wrong_app_hsts_names_the_stage(plan: Plan) -> None:
    """A hand-edited app HSTS names the stage and what differs."""
    at3 = ladder.settings_for(plan, "staging", 3)
    edited = StageSettings("staging", 3, at3.name, {**at3.app, HSTS: "max-age=60"}, {})
    assert check(plan, edited).startswith(
        f"app.{HSTS}: 'max-age=60' is not stage 3 (hsts-1d)'s value: max-age is 60, the stage "
        "wants 86400; undo"
    )


def test_edge_csp_in_either_mode_the_ladder_uses_is_accepted(
    write_plan: Callable[..., Path],
) -> None:
    """The edge may hold CSP report-only or enforcing, whichever stage it was left at."""
    plan = edge_owns_csp(write_plan)
    at2, at5 = (ladder.settings_for(plan, "production", n) for n in (2, 5))
    assert CSP_RO in at2.edge and CSP in at5.edge
    assert accepted(plan, at2) == at2
    # Reverted from 5 to 2: the edge still enforces, as stage 5 left it; no drift either.
    left = StageSettings("production", 2, at2.name, at2.app, at5.edge)
    assert accepted(plan, left) == left and stagefile.drift(plan, left) == []


def test_an_edge_enforcing_csp_no_rung_uses_is_refused(write_plan: Callable[..., Path]) -> None:
    """On a ramp that never enforces, an edge enforcing CSP is refused, saying so."""
    plan = edge_owns_csp(write_plan, "hsts = [30, 300]")
    at1 = ladder.settings_for(plan, "production", 1)
    edge = {k: v for k, v in at1.edge.items() if k != CSP_RO}
    edge[CSP] = at1.edge[CSP_RO]
    message = check(plan, StageSettings("production", 1, at1.name, at1.app, edge))
    assert message.startswith(f"edge.{CSP}: no stage of the ladder sends CSP enforcing; undo")


def test_edge_csp_drift_is_named_at_a_stage_and_left_at_off(
    write_plan: Callable[..., Path],
) -> None:
    """The edge's CSP text drifts at a stage; at off, where the last advance left it, not."""
    plan = edge_owns_csp(write_plan)
    at5 = ladder.settings_for(plan, "production", 5)
    edge = {**at5.edge, CSP: "default-src 'none'"}
    assert stagefile.drift(plan, StageSettings("production", 5, at5.name, at5.app, edge)) == [
        "edge.content-security-policy: default-src lacks 'self'; default-src has 'none', which "
        "the plan does not; object-src is missing, the plan wants object-src 'none'"
    ]
    off_edge = {**edge, "x-content-type-options": "sniff"}
    off = StageSettings("production", None, "off", {}, off_edge)
    assert stagefile.drift(plan, off) == [
        "edge.x-content-type-options: the value is invalid: X-Content-Type-Options "
        "'sniff' is not nosniff: send nosniff"
    ]


def test_the_next_policy_beside_the_enforcing_one(write_plan: Callable[..., Path]) -> None:
    """Once CSP enforces, the plan's next policy goes report-only beside it, app or edge:
    accepted, and no drift; before that both modes at once are refused."""
    text = PLAN.replace(
        "[policy]\n", "[policy]\ncontent-security-policy-next = \"default-src 'none'\"\n"
    ).replace(
        'edge = ["strict-transport-security", "x-content-type-options"]',
        'edge = ["content-security-policy"]',
    )
    plan = load_plan(write_plan(text))
    for env, table in (("staging", "app"), ("production", "edge")):
        at4 = ladder.settings_for(plan, env, 4)
        owned = at4.app if table == "app" else at4.edge
        assert {CSP, CSP_RO} <= set(owned)
        assert accepted(plan, at4) == at4 and stagefile.drift(plan, at4) == []
    at4 = ladder.settings_for(plan, "production", 4)
    swapped = {CSP: at4.edge[CSP_RO], CSP_RO: at4.edge[CSP]}
    assert stagefile.drift(plan, StageSettings("production", 4, at4.name, at4.app, swapped)) == [
        "edge.content-security-policy: default-src lacks 'self'; default-src has 'none', which "
        "the plan does not; object-src is missing, the plan wants object-src 'none'",
        "edge.content-security-policy-report-only: default-src lacks 'none'; default-src has "
        "'self', which the plan does not; object-src 'none' is not in the plan's policy",
    ]
