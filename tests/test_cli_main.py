"""The command group itself: help, lazy imports, and how refusals are reported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollout", *args], capture_output=True, text=True, timeout=60
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
