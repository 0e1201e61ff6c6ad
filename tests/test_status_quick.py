"""`rollout status` from a remembered plan: the CLI's answer, without pydantic or click."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rollout.__main__ import status_request
from tests.conftest import PLAN, Result

QUICK_PLAN = PLAN.replace(
    '[environments.staging]\nurls = ["https://staging.example.test/"]',
    '[environments.staging]\nurls = ["https://staging.example.test/"]\nsoak = "0s"',
)

PROBE = """\
import atexit, sys
atexit.register(lambda: sys.stderr.write(
    f"loaded: pydantic={'pydantic' in sys.modules} click={'click' in sys.modules}\\n"))
from rollout.__main__ import main
main(sys.argv[1:])
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """`rollout ARGS` as its own process, through the console script's entry point."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
        check=False,
    )


@pytest.fixture
def at_stage_one(write_plan: Callable[..., Path]) -> Path:
    """A plan whose staging is at stage 1 with a verified history (written by rollout)."""
    from rollout import history, ladder, store
    from rollout.plan import load_plan

    path = write_plan(QUICK_PLAN)
    plan = load_plan(path)
    for stage in (0, 1):
        store.write_settings(plan, ladder.settings_for(plan, "staging", stage))
        history.append(
            plan, "staging", history.new_record("advance", None if stage == 0 else stage - 1, stage)
        )
        history.append(plan, "staging", history.new_record("verify", stage, stage, verified=True))
    return path


def test_the_second_status_loads_neither_pydantic_nor_click(at_stage_one: Path) -> None:
    """The first status validates the plan; the next one, same bytes, answers without them."""
    first = run("--plan", str(at_stage_one), "status")
    second = run("--plan", str(at_stage_one), "status")
    assert first.returncode == second.returncode == 0
    assert "loaded: pydantic=True click=True" in first.stderr
    assert "loaded: pydantic=False click=False" in second.stderr
    assert second.stdout == first.stdout
    assert "staging: stage 1 hsts-5m" in second.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["status", "staging"],
        ["status", "production", "--json"],
        ["status", "staging", "--json", "--plan", "{plan}"],
    ],
)
def test_every_form_answers_as_the_cli_does(
    at_stage_one: Path, rollout: Callable[..., Result], args: list[str]
) -> None:
    """Text and JSON, one environment or all, --plan before or after: the CLI's own output."""
    argv = ["--plan", str(at_stage_one), *(a.replace("{plan}", str(at_stage_one)) for a in args)]
    assert status_request(argv) is not None
    cli = "import sys; from rollout.cli import main; main(sys.argv[1:])"
    full = subprocess.run(
        [sys.executable, "-c", cli, *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    rollout(*argv)  # validates and remembers, as any first status
    quick = run(*argv)
    assert "pydantic=False" in quick.stderr
    assert (quick.returncode, quick.stdout) == (full.returncode, full.stdout)


def test_an_edited_plan_is_validated_again(
    at_stage_one: Path, rollout: Callable[..., Result]
) -> None:
    """A plan changed since it was remembered is refused with the file, key and reason."""
    assert rollout("--plan", str(at_stage_one), "status").code == 0
    at_stage_one.write_text(QUICK_PLAN.replace("[policy]", "[policy]\nx-colour = 'blue'"))
    refused = run("--plan", str(at_stage_one), "status")
    assert refused.returncode == 2
    assert f"{at_stage_one}: policy.x-colour: unknown key" in refused.stderr
    assert refused.stdout == ""


def test_a_cacert_gone_since_is_refused_again(
    write_plan: Callable[..., Path], stages: Path, rollout: Callable[..., Result]
) -> None:
    """Validation looked at the cacert file: a status after it is deleted refuses the plan."""
    (stages / "ca.pem").write_text("not read by status\n")
    path = write_plan(QUICK_PLAN.replace('soak = "0s"', 'soak = "0s"\ncacert = "ca.pem"'))
    assert rollout("--plan", str(path), "status").code == 0
    assert "pydantic=False" in run("--plan", str(path), "status").stderr
    (stages / "ca.pem").unlink()
    refused = run("--plan", str(path), "status")
    assert refused.returncode == 2
    assert "cacert" in refused.stderr


def test_an_unknown_environment_is_refused_as_before(
    at_stage_one: Path, rollout: Callable[..., Result]
) -> None:
    """`status NAME` for a name the plan lacks lists the plan's environments, exit 2."""
    assert rollout("--plan", str(at_stage_one), "status").code == 0
    refused = run("--plan", str(at_stage_one), "status", "nosuch")
    assert refused.returncode == 2
    assert "no environment 'nosuch' (the plan has staging, production)" in refused.stderr


def test_a_damaged_cache_entry_is_ignored(
    at_stage_one: Path, rollout: Callable[..., Result], plan_cache: Path
) -> None:
    """A cache entry that is not the JSON rollout wrote costs time, never a wrong answer."""
    good = rollout("--plan", str(at_stage_one), "status", "--json")
    (entry,) = (plan_cache / "rollout" / "plans").iterdir()
    entry.write_text('{"policy": 1}')
    again = run("--plan", str(at_stage_one), "status", "--json")
    assert again.returncode == 0
    assert again.stdout == good.out
    assert "pydantic=True" in again.stderr


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["status"], (Path("stages/plan.toml"), None, False)),
        (["--plan", "p.toml", "status", "prod", "--json"], (Path("p.toml"), "prod", True)),
        (["--plan=a.toml", "status", "--plan", "b.toml"], (Path("b.toml"), None, False)),
        (["status", "--output", "f.json"], None),
        (["status", "a", "b"], None),
        (["status", "--help"], None),
        (["verify", "staging"], None),
        (["--plan", "a", "--plan", "b", "status"], None),
        (["status", "--plan", ""], None),
    ],
)
def test_only_forms_it_reads_take_the_quick_path(
    argv: list[str], wanted: tuple[Path, str | None, bool] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any option the quick path does not read sends the command to the full CLI."""
    monkeypatch.delenv("ROLLOUT_PLAN", raising=False)
    assert status_request(argv) == wanted


RICH_PLAN = """\
[policy]
content-security-policy = "default-src 'self'"
content-security-policy-next = "default-src 'self'; img-src 'none'"
permissions-policy = "geolocation=()"
referrer-policy = "no-referrer"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
csp-report-uri = "/csp-report"

[ladder]
hsts = [60, 3600, 31536000]
include-subdomains-from = false

[environments.staging]
urls = ["https://staging.example.test/", "https://staging.example.test/a"]
edge = ["x-content-type-options", "content-security-policy"]
connect-to = ["staging.example.test:443:127.0.0.1:8443"]
resolve = ["api.staging.example.test:443:127.0.0.1"]
cacert = "ca.pem"
apply = "true"
soak = "2h"
csp-violations = 3

[environments.production]
after = "staging"
urls = ["https://www.example.test/"]
"""


def test_the_remembered_plan_holds_what_the_validated_one_does(
    write_plan: Callable[..., Path], stages: Path, rollout: Callable[..., Result]
) -> None:
    """Every field and every method the status path reads gives the validated plan's value."""
    from rollout import planview
    from rollout.plan import load_plan

    (stages / "ca.pem").write_text("x\n")
    path = write_plan(RICH_PLAN)
    plan = load_plan(path)
    assert rollout("--plan", str(path), "status").code == 0
    view = planview.recall(path)
    assert view is not None
    assert view.path == plan.path and view.folder == plan.folder
    assert view.policy.headers() == plan.policy.headers()
    for model, twin in ((plan.policy, view.policy), (plan.ladder, view.ladder)):
        for field in type(model).model_fields:
            assert getattr(twin, field) == getattr(model, field), field
    assert view.ladder.enforce_from == plan.ladder.enforce_from
    assert view.ladder.subdomains_from == plan.ladder.subdomains_from
    assert list(view.environments) == list(plan.environments)
    for name, env in plan.environments.items():
        twin = view.environment(name)
        for field in type(env).model_fields:
            assert getattr(twin, field) == getattr(env, field), (name, field)
