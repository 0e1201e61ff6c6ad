"""Shell completion (click's `_ROLLOUT_COMPLETE`): environments and stages from the plan."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PLAN

BIN = Path(sys.executable).parent


def complete(
    words: str, shell: str = "bash", env: dict[str, str] | None = None, cword: str | None = None
) -> subprocess.CompletedProcess[str]:
    """What the shell's completion function gets back for the command line `words`."""
    environ = {k: v for k, v in os.environ.items() if k != "ROLLOUT_PLAN"}
    environ |= {
        "_ROLLOUT_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": cword if cword is not None else str(len(words.split(" ")) - 1),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "rollout"], capture_output=True, text=True, env=environ, timeout=60
    )


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    """The standard test plan (staging, production) with preload on a default ramp."""
    path = tmp_path / "plan.toml"
    path.write_text(
        PLAN.replace("[environments.staging]", "[ladder]\npreload = true\n\n[environments.staging]")
    )
    return path


@pytest.mark.parametrize(
    "words",
    [
        "rollout verify ",
        "rollout advance ",
        "rollout revert ",
        "rollout history ",
        "rollout render ",
    ],
)
def test_env_names_complete_from_plan_flag(words: str, plan: Path) -> None:
    """ENV completes to the environments of the plan named by --plan before the command."""
    words = words.replace("rollout ", f"rollout --plan {plan} ")
    out = complete(words)
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.splitlines() == ["plain,staging", "plain,production"]


def test_env_names_complete_from_rollout_plan_and_prefix(plan: Path) -> None:
    """With $ROLLOUT_PLAN and a typed prefix, only the matching environments are offered."""
    out = complete("rollout verify pro", env={"ROLLOUT_PLAN": str(plan)})
    assert out.stdout.splitlines() == ["plain,production"]


def test_plan_after_the_command_wins(plan: Path, tmp_path: Path) -> None:
    """A --plan after the command name beats $ROLLOUT_PLAN, as it does when running."""
    other = tmp_path / "other.toml"
    other.write_text("[environments.qa]\nurls = []\n")
    out = complete(f"rollout status --plan {other} ", env={"ROLLOUT_PLAN": str(plan)})
    assert out.stdout.splitlines() == ["plain,qa"]


@pytest.mark.parametrize("flag", ["--stage", "--to"])
def test_stage_values_complete_with_their_names(flag: str, plan: Path) -> None:
    """--stage/--to complete to off and each stage number, their names as help (zsh)."""
    command = "verify" if flag == "--stage" else "revert"
    out = complete(
        f"rollout {command} staging {flag} ", shell="zsh", env={"ROLLOUT_PLAN": str(plan)}
    )
    triples = out.stdout.splitlines()
    pairs = [(triples[i + 1], triples[i + 2]) for i in range(0, len(triples), 3)]
    assert pairs == [
        ("off", "off"),
        ("0", "hsts-30s"),
        ("1", "hsts-5m"),
        ("2", "hsts-1h"),
        ("3", "hsts-1d"),
        ("4", "hsts-1w"),
        ("5", "hsts-30d"),
        ("6", "hsts-1y"),
        ("7", "preload"),
    ]


def test_commands_complete_with_their_help_in_fish() -> None:
    """Command names complete with their one-line help (fish shows it)."""
    out = complete("rollout ve", shell="fish", cword="ve")
    assert out.stdout.splitlines() == ["plain,verify\tProve a stage against the live servers."]


@pytest.mark.parametrize("case", ["missing", "not-toml", "fifo", "folder", "not-a-table", "deep"])
def test_a_broken_plan_completes_nothing_quietly(case: str, tmp_path: Path) -> None:
    """A plan that is missing, broken, a FIFO or a folder: no completions, no traceback, no hang."""
    path = tmp_path / "plan.toml"
    if case == "not-toml":
        path.write_text("[environments\n")
    elif case == "fifo":
        os.mkfifo(path)
    elif case == "folder":
        path.mkdir()
    elif case == "not-a-table":
        path.write_text("environments = 3\n")
    elif case == "deep":
        path.write_text("x = " + "[" * 50000 + "]" * 50000 + "\n")
    out = complete(f"rollout --plan {path} verify ")
    assert out.returncode == 0
    assert out.stdout.strip() == "" and out.stderr == ""
    stages = complete(f"rollout --plan {path} verify staging --stage ")
    assert stages.returncode == 0 and stages.stderr == ""
    if case != "not-a-table":  # that one has no [ladder], so the default ramp's stages
        assert stages.stdout.splitlines() == ["plain,off"]


def test_a_fifo_plan_does_not_hang_the_missing_env_refusal(tmp_path: Path) -> None:
    """`rollout verify` with a FIFO for a plan refuses at once, in one line, exit 2."""
    path = tmp_path / "plan.toml"
    os.mkfifo(path)
    out = subprocess.run(
        [sys.executable, "-m", "rollout", "verify", "--plan", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"rollout: Missing argument 'ENV' ({path} cannot be read: is not a regular file)."
    ]


def test_completing_imports_no_pydantic_nor_aiohttp(plan: Path) -> None:
    """Completing ENV and --stage loads neither pydantic nor aiohttp, so Tab answers fast."""
    code = (
        "import sys\n"
        "from rollout.cli import main\n"
        "try:\n    main([])\nexcept SystemExit:\n    pass\n"
        "heavy = {'pydantic', 'aiohttp', 'rollout.plan', 'rollout.probe', 'rollout.headers'}\n"
        "print(sorted(heavy & set(sys.modules)), file=sys.stderr)"
    )
    for words in (f"rollout --plan {plan} verify ", f"rollout --plan {plan} revert s --to "):
        environ = os.environ | {
            "_ROLLOUT_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split(" ")) - 1),
        }
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=60
        )
        assert out.stdout.strip(), words  # it did complete something
        assert out.stderr.strip() == "[]", words


def test_default_ramp_matches_the_plans() -> None:
    """Completion's copy of the default HSTS ramp is the plan's, so stage names agree."""
    from rollout.cli.complete import DEFAULT_HSTS
    from rollout.plan import DEFAULT_HSTS as PLAN_DEFAULT

    assert DEFAULT_HSTS == PLAN_DEFAULT


def test_bash_completion_script_works_in_bash(plan: Path) -> None:
    """The documented `eval "$(_ROLLOUT_COMPLETE=bash_source rollout)"` completes ENV in a
    real bash."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    script = (
        'eval "$(_ROLLOUT_COMPLETE=bash_source rollout)"\n'
        'COMP_WORDS=(rollout verify ""); COMP_CWORD=2\n'
        "_rollout_completion rollout\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    environ = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}", "ROLLOUT_PLAN": str(plan)}
    out = subprocess.run(
        [bash, "--norc", "-c", script], capture_output=True, text=True, env=environ, timeout=60
    )
    assert out.stderr == ""
    assert out.stdout.splitlines() == ["staging", "production"]
