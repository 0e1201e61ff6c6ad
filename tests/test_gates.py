"""The gates judged from what was observed and a clock passed in: no sleeping, no network."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollout import gates, history, ladder, store
from rollout.checks import Check
from rollout.plan import Plan, load_plan
from rollout.verify import Report

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def plan(write_plan: Callable[..., Path]) -> Plan:
    return load_plan(write_plan())


def check(probe: str, ok: bool, header: str | None = None, actual: tuple[str, ...] = ()) -> Check:
    return Check(probe, "https://x.example.test/", header, ok, "error", None, actual, "m", "id.E1")  # type: ignore[arg-type]


def test_soak_defaults_to_the_stage_max_age(plan: Plan) -> None:
    """With soak unset, stage 2 (max-age=3600) must be held an hour; the gate says when."""
    env = plan.environment("staging")
    here = ladder.build(plan)[2]
    early = gates.soak(env, here, T0, T0 + timedelta(minutes=59))
    assert (early.ok, early.ends_at) == (False, T0 + timedelta(hours=1))
    assert early.reason == ("1m left of 1h (the stage's max-age); over at 2026-01-01T01:00:00Z")
    late = gates.soak(env, here, T0, T0 + timedelta(hours=1))
    assert late.ok and late.reason == "at this stage for 1h (the stage's max-age: 1h)"


def test_soak_without_a_start_time_fails(plan: Plan) -> None:
    """No record of when the stage began is no pass."""
    gate = gates.soak(plan.environment("staging"), ladder.build(plan)[0], None, T0)
    assert (gate.ok, gate.reason) == (False, "no record of when the current stage began")


def test_verified_needs_certificates_checked() -> None:
    """A report made without certificate checks never passes the verified gate."""
    ok = Report("staging", 0, [check("page", True)])
    assert gates.verified(ok).ok
    assert not gates.verified(Report("staging", 0, [check("page", True)], insecure=True)).ok
    assert not gates.verified(Report("staging", 0, [])).ok  # nothing checked is no pass


def test_after_reads_the_other_environment(plan: Plan) -> None:
    """production may enter a stage only when staging has reached and verified it."""
    prod = plan.environment("production")
    stages = ladder.build(plan)
    assert not gates.after(plan, prod, stages[0]).ok
    store.write_settings(plan, ladder.settings_for(plan, "staging", 1))
    history.append(plan, "staging", history.new_record("advance", 0, 1))
    assert gates.after(plan, prod, stages[0]).ok  # 1 unverified: 0 counts as reached
    assert not gates.after(plan, prod, stages[1]).ok
    history.append(plan, "staging", history.new_record("verify", 1, 1, verified=True))
    assert gates.after(plan, prod, stages[1]).ok


def test_subdomains_gate_needs_every_subdomain_check(plan: Plan) -> None:
    """No subdomain listed, or any failed subdomain check, fails the gate."""
    env = plan.environment("staging")
    none_listed = gates.subdomains(env, Report("staging", 4, [check("subdomain", True)]))
    assert not none_listed.ok and "lists no subdomains" in none_listed.reason
    listed = env.model_copy(update={"subdomains": ["api.example.test"]})
    assert gates.subdomains(listed, Report("staging", 4, [check("subdomain", True)])).ok
    bad = Report("staging", 4, [check("subdomain", True), check("subdomain", False)])
    assert not gates.subdomains(listed, bad).ok


def test_preload_gate_applies_hstspreload_rules(write_plan: Callable[..., Path]) -> None:
    """The preload stage's header passes; a duplicated HSTS or a missing redirect fails."""
    text = (Path(write_plan()).read_text()).replace(
        "[environments.staging]", "[ladder]\npreload = true\n\n[environments.staging]"
    )
    plan = load_plan(write_plan(text))
    top = ladder.build(plan)[-1]
    good = Report(
        "staging",
        6,
        [check("page", True, "strict-transport-security", ("a",)), check("http", True)],
    )
    assert gates.preload(top, good).ok
    twice = Report(
        "staging",
        6,
        [check("page", False, "strict-transport-security", ("a", "b")), check("http", True)],
    )
    assert "sends 2 HSTS headers" in gates.preload(top, twice).reason
    assert not gates.preload(top, Report("staging", 6, [])).ok  # no http probe: no pass


def test_force_skips_only_soak_after_and_verified(plan: Plan) -> None:
    """Forced, the soak and verified gates pass as skipped; subdomain checks still fail."""
    env = plan.environment("staging").model_copy(update={"subdomains": ["api.example.test"]})
    stages = ladder.build(plan)
    failing = Report("staging", 4, [check("page", False), check("subdomain", False)])
    found = gates.evaluate(plan, env, stages[4], stages[5], failing, T0, T0, force=True)
    assert [(g.name, g.ok, g.skipped) for g in found] == [
        ("verified", True, True),
        ("soak", True, True),
        ("subdomains", False, False),
    ]
