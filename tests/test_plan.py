"""The plan model: what a good plan.toml turns into, and the overrides from the command line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from rollout.durations import parse_duration
from rollout.errors import PlanError
from rollout.plan import (
    DEFAULT_HSTS,
    ConnectTo,
    Resolve,
    load_plan,
    parse_plan,
    with_overrides,
)

REPO = Path(__file__).resolve().parent.parent
BASE = '[policy]\nx-frame-options = "DENY"\n'


def test_shipped_example_plan_loads() -> None:
    """stages/plan.toml, the example in the repo, is accepted as it stands."""
    plan = load_plan(REPO / "stages" / "plan.toml")
    assert list(plan.environments) == ["staging", "production"]
    production = plan.environments["production"]
    assert production.after == "staging"
    assert production.edge == {"strict-transport-security", "x-content-type-options"}
    assert plan.environments["staging"].edge == frozenset()
    assert plan.policy.csp_report_uri == "https://csp.example.test/report"


def test_defaults_fill_a_minimal_plan() -> None:
    """A plan with a policy and a bare environment gets the default ladder and max-age soak."""
    plan = parse_plan(BASE + "[environments.staging]\n", "stages/plan.toml")
    assert plan.ladder.hsts == list(DEFAULT_HSTS)
    assert (plan.ladder.csp_enforce_from, plan.ladder.include_subdomains_from) == (
        604800,
        2592000,
    )
    assert plan.ladder.preload is False
    env = plan.environments["staging"]
    assert (env.urls, env.edge, env.soak, env.after, env.apply, env.cacert) == (
        [],
        frozenset(),
        None,
        None,
        None,
        None,
    )
    assert plan.folder == Path("stages")


def test_policy_headers_keep_their_values_in_order() -> None:
    """policy.headers() lists the header values as written, without csp-report-uri."""
    plan = parse_plan(
        '[policy]\nreferrer-policy = "no-referrer"\nx-frame-options = "DENY"\n'
        "content-security-policy = \"default-src 'self'\"\n"
        'csp-report-uri = "/csp"\n[environments.a]\n'
    )
    assert plan.policy.headers() == {
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
        "content-security-policy": "default-src 'self'",
    }
    assert plan.policy.csp_report_uri == "/csp"


def test_network_entries_are_parsed_like_curl() -> None:
    """connect-to and resolve entries become typed tuples; IPv6 addresses keep their brackets."""
    plan = parse_plan(
        BASE + "[environments.a]\n"
        'connect-to = ["Www.Example.test:443:127.0.0.1:8443", "b.example.test:443:[::1]:9443"]\n'
        'resolve = ["api.example.test:443:[::1]", "c.example.test:8443:10.0.0.2"]\n'
    )
    env = plan.environments["a"]
    assert env.connect_to == [
        ConnectTo("www.example.test", 443, "127.0.0.1", 8443),
        ConnectTo("b.example.test", 443, "::1", 9443),
    ]
    assert [str(c) for c in env.connect_to][1] == "b.example.test:443:[::1]:9443"
    assert env.resolve == [
        Resolve("api.example.test", 443, "::1"),
        Resolve("c.example.test", 8443, "10.0.0.2"),
    ]
    assert str(env.resolve[0]) == "api.example.test:443:[::1]"


def test_edge_owning_one_csp_name_owns_both() -> None:
    """Naming either CSP header in edge gives the edge the whole CSP family (with the
    Reporting-Endpoints header that announces where its reports go), lower-cased."""
    plan = parse_plan(BASE + '[environments.a]\nedge = ["Content-Security-Policy"]\n')
    assert plan.environments["a"].edge == {
        "content-security-policy",
        "content-security-policy-report-only",
        "reporting-endpoints",
    }


@pytest.mark.parametrize(
    ("value", "argv"),
    [
        ('"systemctl reload myapp"', ["systemctl", "reload", "myapp"]),
        ("\"sh -c 'nginx -s reload'\"", ["sh", "-c", "nginx -s reload"]),
        ('["/usr/bin/reload", "my app"]', ["/usr/bin/reload", "my app"]),
    ],
)
def test_apply_becomes_an_argv(value: str, argv: list[str]) -> None:
    """apply is split like a shell would (no shell runs it) or taken as a list."""
    plan = parse_plan(BASE + f"[environments.a]\napply = {value}\n")
    assert plan.environments["a"].apply == argv


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("24h", 86400), ("7d", 604800), ("2w", 1209600), ("0s", 0)],
)
def test_durations(text: str, seconds: int) -> None:
    """Soak durations are a number and one unit: s, m, h, d or w."""
    assert parse_duration(text) == seconds
    plan = parse_plan(BASE + f'[environments.a]\nsoak = "{text}"\n')
    assert plan.environments["a"].soak == seconds


def test_soak_max_age_is_none() -> None:
    """soak = "max-age" (the default) is kept as None: the current stage's max-age."""
    plan = parse_plan(BASE + '[environments.a]\nsoak = "max-age"\n')
    assert plan.environments["a"].soak is None


def test_cacert_is_resolved_next_to_the_plan(stages: Path) -> None:
    """A relative cacert is looked up in the plan's folder and kept as an absolute path."""
    (stages / "certs").mkdir()
    (stages / "certs" / "ca.pem").write_text("pem")
    plan_path = stages / "plan.toml"
    plan_path.write_text(BASE + '[environments.a]\ncacert = "certs/ca.pem"\n')
    cacert = load_plan(plan_path).environments["a"].cacert
    assert cacert == (stages / "certs" / "ca.pem").absolute()


def test_urls_with_ports_paths_and_queries_are_accepted() -> None:
    """Any absolute https:// URL is a page to probe, ports and queries included."""
    urls = ["https://a.example.test:8443/x?y=1", "https://127.0.0.1/", "https://a.example.test/x"]
    plan = parse_plan(BASE + f"[environments.a]\nurls = {urls!r}\n".replace("'", '"'))
    assert plan.environments["a"].urls == urls


def test_the_plan_is_frozen() -> None:
    """Plans are immutable once validated."""
    plan = parse_plan(BASE + "[environments.a]\n")
    with pytest.raises(ValidationError):
        plan.environments["a"].after = "b"  # type: ignore[misc]


def test_after_chains_are_accepted() -> None:
    """after may chain environments as long as it never loops."""
    plan = parse_plan(
        BASE + '[environments.a]\n[environments.b]\nafter = "a"\n[environments.c]\nafter = "b"\n'
    )
    assert plan.environments["c"].after == "b"


def test_overrides_come_first_and_replace_the_same_host_and_port(
    write_plan: Callable[..., Path],
) -> None:
    """--resolve/--connect-to entries are added before the plan's and win for the same HOST:PORT."""
    plan = load_plan(
        write_plan(
            BASE + "[environments.a]\n"
            'resolve = ["a.example.test:443:10.0.0.1", "b.example.test:443:10.0.0.2"]\n'
            'connect-to = ["a.example.test:443:10.0.0.1:8443"]\n'
        )
    )
    env = with_overrides(
        plan,
        "a",
        resolve=["a.example.test:443:127.0.0.1"],
        connect_to=["c.example.test:443:127.0.0.1:9443"],
    )
    assert env.resolve == [
        Resolve("a.example.test", 443, "127.0.0.1"),
        Resolve("b.example.test", 443, "10.0.0.2"),
    ]
    assert env.connect_to == [
        ConnectTo("c.example.test", 443, "127.0.0.1", 9443),
        ConnectTo("a.example.test", 443, "10.0.0.1", 8443),
    ]
    assert with_overrides(plan, "a") is plan.environments["a"]


def test_override_cacert(write_plan: Callable[..., Path], tmp_path: Path) -> None:
    """--cacert replaces the plan's trust root with an absolute path."""
    plan = load_plan(write_plan(BASE + "[environments.a]\n"))
    pem = tmp_path / "ca.pem"
    pem.write_text("pem")
    assert with_overrides(plan, "a", cacert=pem).cacert == pem.absolute()


def test_override_of_unknown_environment_is_refused() -> None:
    """Asking for an environment the plan lacks names the ones it has."""
    plan = parse_plan(BASE + "[environments.a]\n[environments.b]\n", "p.toml")
    with pytest.raises(
        PlanError, match=r"^p.toml: environments: no environment 'c' \(the plan has a, b\)$"
    ):
        with_overrides(plan, "c")


@pytest.mark.parametrize(
    ("tail", "key"),
    [
        ('csp-report-uri = "https://r.example/x\\n"\n', "policy.csp-report-uri"),
        ('[environments.a]\nsubdomains = ["api.example.test\\n"]\n', "environments.a.subdomains"),
        (
            '[environments.a]\nconnect-to = ["a.example.test:443:127.0.0.1:8443\\n"]\n',
            "environments.a.connect-to",
        ),
        (
            '[environments.a]\nresolve = ["a.example.test:443:127.0.0.1\\n"]\n',
            "environments.a.resolve",
        ),
    ],
)
def test_a_trailing_newline_is_never_accepted(tail: str, key: str) -> None:
    """Values ending in a newline are refused at load, naming the key (no `$` loophole)."""
    text = BASE + tail if tail.startswith("[") else BASE.replace("[policy]\n", "[policy]\n" + tail)
    with pytest.raises(PlanError) as exc:
        parse_plan(text, "plan.toml")
    assert str(exc.value).startswith(f"plan.toml: {key}")


def test_report_uri_without_a_policy_is_refused() -> None:
    """A csp-report-uri with no content-security-policy would be silently dropped: refused."""
    text = BASE.replace("[policy]\n", '[policy]\ncsp-report-uri = "https://r.example.test/"\n')
    with pytest.raises(PlanError) as exc:
        parse_plan(text, "plan.toml")
    assert str(exc.value) == (
        "plan.toml: policy.csp-report-uri: there is no content-security-policy to add it to; "
        "set one or remove this"
    )
