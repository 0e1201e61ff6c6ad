"""The ladder: DESIGN.md's default table, custom ramps, headers by owner and the gates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollout import durations, ladder
from rollout.errors import PlanError
from rollout.plan import Plan, parse_plan

POLICY = """\
[policy]
content-security-policy = "default-src 'self'"
permissions-policy = "geolocation=()"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
"""


def make(extra: str = "", env: str = "[environments.a]\n", policy: str = POLICY) -> Plan:
    return parse_plan(policy + extra + env, "stages/plan.toml")


def test_default_ladder_is_the_design_table() -> None:
    """The defaults give DESIGN.md's seven stages: names, HSTS values, CSP mode and gates."""
    rows = [(s.index, s.name, s.hsts, s.csp_mode, s.gates) for s in ladder.build(make())]
    v, vs, vss = ("verified",), ("verified", "soak"), ("verified", "soak", "subdomains")
    assert rows == [
        (0, "hsts-30s", "max-age=30", "report-only", v),
        (1, "hsts-5m", "max-age=300", "report-only", vs),
        (2, "hsts-1h", "max-age=3600", "report-only", vs),
        (3, "hsts-1d", "max-age=86400", "report-only", vs),
        (4, "hsts-1w", "max-age=604800", "enforcing", vs),
        (5, "hsts-30d", "max-age=2592000; includeSubDomains", "enforcing", vss),
        (6, "hsts-1y", "max-age=31536000; includeSubDomains", "enforcing", vss),
    ]


def test_preload_adds_a_final_stage() -> None:
    """preload = true adds stage 7, which sends preload and needs the preload requirements."""
    stages = ladder.build(make("[ladder]\npreload = true\n"))
    assert len(stages) == 8
    last = stages[-1]
    assert (last.index, last.name, last.hsts) == (
        7,
        "preload",
        "max-age=31536000; includeSubDomains; preload",
    )
    assert last.gates == ("verified", "soak", "subdomains", "preload")
    assert last.csp_enforcing


@pytest.mark.parametrize(
    ("ramp", "names"),
    [
        ([45, 5400, 7200], ["hsts-45s", "hsts-90m", "hsts-2h"]),
        ([60, 90, 172800, 1209600], ["hsts-1m", "hsts-90s", "hsts-2d", "hsts-2w"]),
        ([31536000, 63072000], ["hsts-1y", "hsts-2y"]),
    ],
)
def test_custom_ramps_are_named_in_the_same_style(ramp: list[int], names: list[str]) -> None:
    """A custom ramp's stages are named by their max-age in the largest whole unit."""
    top = ramp[-1]
    plan = make(
        f"[ladder]\nhsts = {ramp}\ncsp-enforce-from = {top}\ninclude-subdomains-from = {top}\n"
    )
    assert [s.name for s in ladder.build(plan)] == names


def test_thresholds_pick_the_first_stage_at_or_above() -> None:
    """CSP enforces and includeSubDomains starts at the first max-age >= the threshold."""
    plan = make(
        "[ladder]\nhsts = [60, 600, 6000]\ncsp-enforce-from = 500\ninclude-subdomains-from = 6000\n"
    )
    stages = ladder.build(plan)
    assert [s.csp_enforcing for s in stages] == [False, True, True]
    assert [s.include_subdomains for s in stages] == [False, False, True]


def test_stage_off_sends_only_edge_owned_plain_headers() -> None:
    """Off: no app headers; the edge sends its own headers other than HSTS and CSP."""
    plan = make(env='[environments.a]\nedge = ["strict-transport-security", "x-frame-options"]\n')
    off = ladder.settings_for(plan, "a", None)
    assert (off.stage, off.name, off.label) == (None, "off", "off")
    assert dict(off.app) == {}
    assert dict(off.edge) == {"x-frame-options": "DENY"}


def test_stage_splits_headers_by_owner() -> None:
    """At a stage each header goes to exactly one owner; other headers have their final value."""
    plan = make(env='[environments.a]\nedge = ["strict-transport-security", "x-frame-options"]\n')
    s = ladder.settings_for(plan, "a", 3, updated="2026-01-01T00:00:00Z")
    assert (s.environment, s.stage, s.name, s.updated) == (
        "a",
        3,
        "hsts-1d",
        "2026-01-01T00:00:00Z",
    )
    assert dict(s.edge) == {"strict-transport-security": "max-age=86400", "x-frame-options": "DENY"}
    assert dict(s.app) == {
        "content-security-policy-report-only": "default-src 'self'",
        "permissions-policy": "geolocation=()",
        "x-content-type-options": "nosniff",
    }


def test_edge_owning_csp_owns_it_in_both_modes() -> None:
    """An edge that owns content-security-policy also sends the report-only stages' CSP."""
    plan = make(env='[environments.a]\nedge = ["content-security-policy"]\n')
    assert list(ladder.settings_for(plan, "a", 0).edge) == ["content-security-policy-report-only"]
    assert list(ladder.settings_for(plan, "a", 4).edge) == ["content-security-policy"]
    assert ladder.settings_for(plan, "a", None).edge == {}


def test_report_uri_is_added_in_both_modes() -> None:
    """csp-report-uri is added as report-uri and report-to (announced by Reporting-Endpoints),
    report-only and enforcing alike."""
    plan = make(policy=POLICY + 'csp-report-uri = "https://csp.example.test/r"\n')
    early = ladder.headers_for(plan, ladder.build(plan)[0])
    late = ladder.headers_for(plan, ladder.build(plan)[6])
    want = "default-src 'self'; report-uri https://csp.example.test/r; report-to rollout-csp"
    assert early["content-security-policy-report-only"] == want
    assert late["content-security-policy"] == want
    assert "content-security-policy" not in early
    assert "content-security-policy-report-only" not in late
    for headers in (early, late):
        assert headers["reporting-endpoints"] == 'rollout-csp="https://csp.example.test/r"'


def test_a_plan_without_csp_sends_no_csp() -> None:
    """Without content-security-policy in the policy no stage sends either CSP header."""
    plan = make(policy='[policy]\nx-frame-options = "DENY"\n')
    assert ladder.headers_for(plan, ladder.build(plan)[5]) == {
        "strict-transport-security": "max-age=2592000; includeSubDomains",
        "x-frame-options": "DENY",
    }


def test_stage_out_of_range_is_refused() -> None:
    """Asking for a stage the ladder lacks names the range it has."""
    with pytest.raises(
        PlanError,
        match=r"^stages/plan.toml: ladder: there is no stage 7; the ladder has stages 0 to 6",
    ):
        ladder.settings_for(make(), "a", 7)


def test_after_is_a_gate_of_every_forward_move() -> None:
    """An environment with after gets the after gate on every stage, stage 0 included."""
    plan = make(env='[environments.a]\n[environments.b]\nafter = "a"\n')
    stages = ladder.build(plan)
    b = plan.environments["b"]
    assert ladder.gates_for(stages[0], b) == ("verified", "after")
    assert ladder.gates_for(stages[5], b) == ("verified", "soak", "after", "subdomains")
    assert ladder.gates_for(stages[5], plan.environments["a"]) == stages[5].gates


def test_navigation_helpers() -> None:
    """next_stage and stage_by_name walk the ladder; off sits below stage 0."""
    stages = ladder.build(make())
    assert ladder.next_stage(stages, None) == stages[0]
    assert ladder.next_stage(stages, 2) == stages[3]
    assert ladder.next_stage(stages, 6) is None
    assert ladder.stage_by_name(stages, "hsts-1w") == stages[4]
    assert ladder.stage_by_name(stages, "hsts-2h") is None


def test_soak_max_age_waits_the_current_stage_max_age() -> None:
    """With soak "max-age" an environment waits its current stage's max-age; off waits nothing."""
    plan = make()
    env = plan.environments["a"]
    stages = ladder.build(plan)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert ladder.when_may_advance(t, stages[3], env) == t + timedelta(days=1)
    assert ladder.when_may_advance(t, None, env) == t
    assert ladder.soak_seconds(stages[0], env) == 30


def test_explicit_soak_overrides_max_age() -> None:
    """An explicit soak applies at every stage."""
    plan = make(env='[environments.a]\nsoak = "15m"\n')
    stages = ladder.build(plan)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert ladder.when_may_advance(t, stages[6], plan.environments["a"]) == t + timedelta(
        minutes=15
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30, "30s"), (300, "5m"), (3600, "1h"), (86400, "1d"), (604800, "1w"), (2592000, "30d")],
)
def test_format_duration(seconds: int, text: str) -> None:
    """Durations read in the largest unit that divides them."""
    assert durations.format_duration(seconds) == text


def test_include_subdomains_never() -> None:
    """include-subdomains-from = false: no stage adds includeSubDomains or its gate."""
    stages = ladder.build(make("[ladder]\ninclude-subdomains-from = false\n"))
    assert not any(s.include_subdomains for s in stages)
    assert not any("subdomains" in s.gates for s in stages)
    assert stages[-1].hsts == "max-age=31536000"


def test_preload_without_include_subdomains_is_refused() -> None:
    """preload needs includeSubDomains: it cannot stand beside include-subdomains-from = false."""
    with pytest.raises(PlanError) as refused:
        make("[ladder]\ninclude-subdomains-from = false\npreload = true\n")
    assert str(refused.value) == (
        "stages/plan.toml: ladder.preload: preload needs includeSubDomains, which "
        "include-subdomains-from = false turns off; remove one of them"
    )


def test_include_subdomains_true_is_refused() -> None:
    """true is no number of seconds: say what the key takes."""
    with pytest.raises(PlanError, match=r"ladder.include-subdomains-from: true is not a number"):
        make("[ladder]\ninclude-subdomains-from = true\n")


def test_a_short_ramp_keeps_its_default_thresholds_unreached() -> None:
    """hsts = [30, 3600] alone is accepted: CSP stays report-only, no includeSubDomains, and
    the ladder says so."""
    plan = make("[ladder]\nhsts = [30, 3600]\n")
    stages = ladder.build(plan)
    assert [(s.csp_enforcing, s.include_subdomains) for s in stages] == [(False, False)] * 2
    notes = plan.ladder.unreached_defaults()
    assert notes == [
        "csp-enforce-from is not set and its default (604800) is above the ramp's top "
        "(3600): CSP stays report-only at every stage; set it to enforce",
        "include-subdomains-from is not set and its default (2592000) is above the ramp's "
        "top (3600): no stage adds includeSubDomains; set it, or false to say never",
    ]
