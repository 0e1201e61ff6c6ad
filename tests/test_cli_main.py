"""The command group itself: help, lazy imports, and how refusals are reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PLAN


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "ROLLOUT_PLAN"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "rollout", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )


def test_help_lists_every_command() -> None:
    """`rollout --help` lists each command with its one-line help."""
    out = run("--help")
    assert out.returncode == 0
    for name in ("plan", "status", "verify", "history", "render"):
        assert f"\n  {name} " in out.stdout


def test_help_imports_nothing_heavy() -> None:
    """`rollout --help` starts fast: pydantic, aiohttp and the grammars stay unimported."""
    code = (
        "import sys\n"
        "from rollout.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'pydantic', 'aiohttp', 'httpx', 'tomli_w', 'rollout.headers', 'rollout.plan'}\n"
        "print(sorted(heavy & set(sys.modules)), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stderr.strip() == "[]"


def test_version() -> None:
    """`rollout --version` prints the package version."""
    from rollout import __version__

    assert run("--version").stdout.strip() == f"rollout, version {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "rollout: No such command 'nope'."),
        (["--colour"], "rollout: No such option '--colour'."),
        (
            ["status", "--timeout", "x"],
            "rollout: Invalid value for '--timeout': 'x' is not a number of seconds",
        ),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    """A bad command or flag gets one line on stderr, exit 2 and no traceback."""
    out = run(*args)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [message]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--timeout", "nan"], "'nan' is not a finite number of seconds"),
        (["verify", "staging", "--timeout", "inf"], "'inf' is not a finite number of seconds"),
        (["verify", "staging", "--deadline", "nan"], "'nan' is not a finite number of seconds"),
    ],
)
def test_seconds_must_be_finite(args: list[str], message: str) -> None:
    """nan or inf seconds would let a probe wait forever: refused before anything runs."""
    out = run(*args)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [f"rollout: Invalid value for '{args[-2]}': {message}"]


def test_bare_rollout_prints_the_help_page() -> None:
    """`rollout` alone prints the whole help page, as --help does, and exits 0."""
    out = run()
    assert out.returncode == 0
    assert out.stdout == run("--help").stdout


def test_json_errors_also_go_to_stdout() -> None:
    """With --json, a refusal also prints {"ok": false, "error": ...} on stdout."""
    out = run("status", "--json", "--timeout", "x")
    assert out.returncode == 2
    assert json.loads(out.stdout) == {
        "ok": False,
        "error": "Invalid value for '--timeout': 'x' is not a number of seconds",
    }


@pytest.mark.parametrize(
    ("typed", "meant"), [("verfy", "verify"), ("stat", "status"), ("hisotry", "history")]
)
def test_a_mistyped_command_gets_did_you_mean(typed: str, meant: str) -> None:
    """A mistyped command is refused in one line that suggests the command meant, exit 2."""
    out = run(typed, "staging")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"rollout: No such command '{typed}'. Did you mean '{meant}'?"
    ]


@pytest.mark.parametrize("command", ["verify", "advance", "revert", "history", "render"])
def test_a_missing_env_lists_the_plans_environments(command: str, tmp_path: Path) -> None:
    """`rollout COMMAND` without ENV: one line naming the plan's environments, exit 2."""
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    out = run(command, "--plan", str(plan))
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"rollout: Missing argument 'ENV': one of staging, production (the environments of {plan})."
    ]
    assert json.loads(run(command, "--json", "--plan", str(plan)).stdout)["ok"] is False


def test_a_missing_env_reads_the_plan_from_rollout_plan(tmp_path: Path) -> None:
    """The environments listed come from $ROLLOUT_PLAN when no --plan is given."""
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.replace("production", "prod"))
    out = run("verify", env={"ROLLOUT_PLAN": str(plan)})
    assert out.stderr.splitlines() == [
        f"rollout: Missing argument 'ENV': one of staging, prod (the environments of {plan})."
    ]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (None, "(and there is no plan at {plan})."),
        ("[environments", "({plan} cannot be read: "),  # then tomllib's own words
        ("[policy]\n", "({plan} lists no environments)."),
    ],
)
def test_a_missing_env_with_no_usable_plan_says_why(
    text: str | None, why: str, tmp_path: Path
) -> None:
    """Without a readable plan the refusal is still one line, exit 2, and says why."""
    plan = tmp_path / "plan.toml"
    if text is not None:
        plan.write_text(text)
    out = run("verify", "--plan", str(plan))
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()
    assert line.startswith("rollout: Missing argument 'ENV' " + why.format(plan=plan))


NETWORK = ["--resolve", "--connect-to", "--cacert", "--insecure", "--timeout", "--lock-timeout"]


@pytest.mark.parametrize("command", ["plan", "status", "history", "render"])
def test_read_only_commands_offer_no_network_options(command: str) -> None:
    """plan, status, history and render never probe: --help offers none of the probe options,
    only --plan, --json and --output."""
    out = run(command, "--help").stdout
    for option in NETWORK:
        assert option not in out, option
    for option in ("--plan", "--json", "--output"):
        assert option in out, option


@pytest.mark.parametrize("command", ["verify", "advance", "revert"])
def test_probing_commands_offer_the_network_options(command: str) -> None:
    """verify, advance and revert list every connection option in --help."""
    out = run(command, "--help").stdout
    for option in [*NETWORK, "--plan", "--json", "--output"]:
        assert option in out, option


def test_read_only_commands_still_accept_network_options(tmp_path: Path) -> None:
    """A script passing the common options DESIGN.md allows to status keeps working."""
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    out = run(
        "status", "--timeout", "5", "--insecure", "--lock-timeout", "1",
        "--connect-to", "www.example.test:443:127.0.0.1:8443", "--plan", str(plan),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("staging: stage off")


def test_an_explicit_plan_beats_rollout_plan(tmp_path: Path) -> None:
    """`rollout --plan A status` reads A even when $ROLLOUT_PLAN names another plan."""
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    out = run("--plan", str(plan), "status", env={"ROLLOUT_PLAN": str(tmp_path / "nope.toml")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("staging: stage off")
