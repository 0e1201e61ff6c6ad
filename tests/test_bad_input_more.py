"""More bad input, one row each: flags, history files and planted files (directories, sockets,
symlink loops, device files, unreadable files) at every path rollout reads.

Every row is what a user sees: exit 2, exactly one line on stderr naming the flag or the
file (and key or line) with the reason, no traceback, and nothing in the stages folder
written, created or removed. The planted-file rows run the real CLI in a subprocess with a
time bound, so a regression that blocks on a device or a socket fails instead of hanging.
docs/reliability.md counts these rows with the other tables of tests/test_bad_input*.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result

BOUND = 20  # seconds; every hang these rows look for would be forever
ROOT = Path(__file__).resolve().parent.parent
OK_RECORD = {
    "time": "2026-01-01T00:00:00Z",
    "action": "verify",
    "from": "off",
    "to": "off",
    "reason": "",
    "user": "u",
    "verified": True,
}


def state(folder: Path) -> dict[str, tuple[str, bytes | str | None]]:
    """Every entry under folder as (kind, content): regular files by their bytes, symlinks by
    their target, anything else by its kind only (never opened: a FIFO or device could block)."""
    out: dict[str, tuple[str, bytes | str | None]] = {}
    for path in sorted(folder.rglob("*")):
        mode = path.lstat().st_mode
        name = str(path.relative_to(folder))
        if stat.S_ISLNK(mode):
            out[name] = ("symlink", os.readlink(path))
        elif stat.S_ISREG(mode):
            out[name] = ("file", path.read_bytes() if mode & 0o444 else None)
        else:
            out[name] = (oct(stat.S_IFMT(mode)), None)
    return out


def one_line(code: int, out: str, err: str, fragment: str) -> None:
    """exit 2 and one line on stderr holding fragment; nothing else printed, no traceback."""
    shown = f"exit {code}\n--- stdout\n{out}--- stderr\n{err}"
    assert code == 2, shown
    assert err.startswith("rollout: ") and err.count("\n") == 1 and err.endswith("\n"), shown
    assert fragment in err, shown
    assert out == "" and "Traceback" not in err, shown


# Flags ----------------------------------------------------------------------------------

FLAGS = [
    pytest.param(["verify", "staging", "--timeout", "0"], "'--timeout'", id="timeout-zero"),
    pytest.param(["verify", "staging", "--timeout", "-1"], "'--timeout'", id="timeout-negative"),
    pytest.param(["verify", "staging", "--timeout", "nan"], "'--timeout'", id="timeout-nan"),
    pytest.param(["verify", "staging", "--timeout", "inf"], "'--timeout'", id="timeout-inf"),
    pytest.param(["verify", "staging", "--timeout", "10s"], "'--timeout'", id="timeout-unit"),
    pytest.param(["verify", "staging", "--deadline", "0"], "'--deadline'", id="deadline-zero"),
    pytest.param(["verify", "staging", "--deadline", "nan"], "'--deadline'", id="deadline-nan"),
    pytest.param(["verify", "staging", "--concurrency", "0"], "'--concurrency'", id="conc-zero"),
    pytest.param(
        ["verify", "staging", "--concurrency", "100000"], "'--concurrency'", id="conc-huge"
    ),
    pytest.param(["advance", "staging", "--lock-timeout", "-1"], "'--lock-timeout'", id="lock-neg"),
    pytest.param(["advance", "staging", "--settle", "nan"], "'--settle'", id="settle-nan"),
    pytest.param(["advance", "staging", "--force"], "--force needs --reason", id="force-no-reason"),
    pytest.param(
        ["render", "staging", "--format", "bogus"], "'--format'", id="render-unknown-format"
    ),
    pytest.param(["verify", "staging", "--stage", "-1"], "--stage: '-1'", id="stage-negative"),
    pytest.param(["verify", "staging", "--stage", "1.5"], "--stage: '1.5'", id="stage-fraction"),
    pytest.param(["verify", "staging", "--stage", ""], "--stage: ''", id="stage-empty"),
    pytest.param(["verify", "staging", "--stage", "99"], "there is no stage 99", id="stage-99"),
    pytest.param(
        ["revert", "staging", "--to", "99", "--dry-run"], "there is no stage 99", id="to-99"
    ),
    pytest.param(
        ["verify", "staging", "--resolve", "a.example.test:443:not-an-ip"],
        "--resolve: 'not-an-ip' is not an IP address",
        id="resolve-not-an-ip",
    ),
    pytest.param(
        ["verify", "staging", "--connect-to", ":443:127.0.0.1:1"],
        "--connect-to: ':443:127.0.0.1:1' is not HOST:PORT:ADDR:PORT",
        id="connect-to-wildcard-host",
    ),
    pytest.param(
        ["verify", "staging", "--connect-to", "a.example.test:443:127.0.0.1"],
        "is not HOST:PORT:ADDR:PORT",
        id="connect-to-three-parts",
    ),
    pytest.param(["verify", "staging", "--cacert", "/"], "'--cacert'", id="cacert-a-folder"),
    pytest.param(
        ["verify", "staging", "--cacert", "/dev/null"],
        "--cacert: '/dev/null' is not a file",
        id="cacert-a-device",
    ),
    pytest.param(["verify"], "Missing argument 'ENV'", id="verify-without-env"),
    pytest.param(["verify", "staging", "--colour"], "--colour", id="unknown-option"),
]


@pytest.mark.parametrize(("args", "fragment"), FLAGS)
def test_bad_flag_is_one_line(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], args: list[str], fragment: str
) -> None:
    """A bad flag value exits 2 with one line naming the flag, before anything is written."""
    plan = write_plan()
    before = state(plan.parent)
    result = rollout(*args, "--plan", str(plan))
    one_line(result.code, result.out, result.err, fragment)
    assert state(plan.parent) == before


# History files --------------------------------------------------------------------------


def line(**fields: object) -> str:
    return json.dumps({**OK_RECORD, **fields})


HISTORY = [
    pytest.param("[1, 2]\n", "1: not a JSON object", id="history-array"),
    pytest.param('"verify"\n', "1: not a JSON object", id="history-string"),
    pytest.param("42\n", "1: not a JSON object", id="history-number"),
    pytest.param("null\n", "1: not a JSON object", id="history-null"),
    pytest.param(
        "\ufeff" + line() + "\n" + line() + "\n", "1: not a JSON object", id="history-bom"
    ),
    pytest.param(line(to="NaN").replace('"NaN"', "NaN") + "\n", "1: to: nan", id="history-nan"),
    pytest.param(
        line(to="inf").replace('"inf"', "1e400") + "\n", "1: to: inf", id="history-overflow"
    ),
    pytest.param(line(to=-1) + "\n", "1: to: -1", id="history-negative-stage"),
    pytest.param(line(to=True) + "\n", "1: to: True", id="history-stage-true"),
    pytest.param(line(to="up") + "\n", "1: to: 'up'", id="history-stage-word"),
    pytest.param(line(verified="yes") + "\n", "1: verified: 'yes'", id="history-verified-str"),
    pytest.param(
        line() + "\n" + line(verified=1) + "\n" + line() + "\n", "2: verified", id="history-line-2"
    ),
]


@pytest.mark.parametrize("command", ["status", "history"])
@pytest.mark.parametrize(("content", "fragment"), HISTORY)
def test_bad_history_is_one_line(
    write_plan: Callable[..., Path],
    rollout: Callable[..., Result],
    command: str,
    content: str,
    fragment: str,
) -> None:
    """A history file rollout could not have written exits 2 naming the file and line."""
    plan = write_plan()
    history = plan.parent / "staging.history.jsonl"
    history.write_text(content, encoding="utf-8")
    before = state(plan.parent)
    result = rollout(command, "staging", "--plan", str(plan))
    one_line(result.code, result.out, result.err, f"{history}:{fragment}")
    assert state(plan.parent) == before


# Planted files --------------------------------------------------------------------------


def plant_dir(path: Path) -> None:
    path.mkdir()


def plant_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))


def plant_loop(path: Path) -> None:
    other = path.with_name(path.name + ".loop")
    other.symlink_to(path.name)
    path.symlink_to(other.name)


def plant_device(target: str) -> Callable[[Path], None]:
    def plant(path: Path) -> None:
        path.symlink_to(target)

    return plant


def plant_unreadable(path: Path) -> None:
    path.write_text("# nobody may read this\n")
    path.chmod(0)


PLANTED = [
    pytest.param("plan.toml", plant_socket, "plan.toml: is not a regular file", id="plan-socket"),
    pytest.param("plan.toml", plant_loop, "plan.toml: cannot read the plan", id="plan-loop"),
    pytest.param(
        "plan.toml", plant_device("/dev/zero"), "plan.toml: is not a regular", id="plan-dev-zero"
    ),
    pytest.param("plan.toml", plant_unreadable, "plan.toml' is not readable", id="plan-0000"),
    pytest.param("staging.toml", plant_dir, "staging.toml: is not a regular", id="stage-dir"),
    pytest.param("staging.toml", plant_socket, "staging.toml: is not a regular", id="stage-sock"),
    pytest.param("staging.toml", plant_loop, "staging.toml: cannot read", id="stage-loop"),
    pytest.param(
        "staging.toml", plant_device("/dev/zero"), "staging.toml: is not a regular", id="stage-zero"
    ),
    pytest.param("staging.toml", plant_unreadable, "staging.toml: cannot read", id="stage-0000"),
    pytest.param(
        "staging.history.jsonl", plant_dir, "jsonl: is not a regular file", id="history-dir"
    ),
    pytest.param(
        "staging.history.jsonl", plant_socket, "staging.history.jsonl", id="history-socket"
    ),
    pytest.param("staging.history.jsonl", plant_loop, "jsonl: cannot read", id="history-loop"),
    pytest.param(
        "staging.history.jsonl",
        plant_device("/dev/zero"),
        "staging.history.jsonl",
        id="history-dev-zero",
    ),
    pytest.param(
        "staging.history.jsonl", plant_unreadable, "jsonl: cannot read", id="history-0000"
    ),
    pytest.param("staging.lock", plant_dir, "staging.lock: is not a regular file", id="lock-dir"),
    pytest.param("staging.lock", plant_socket, "lock: is not a regular file", id="lock-socket"),
    pytest.param(
        "staging.lock", plant_device("/dev/zero"), "lock: is a symlink", id="lock-dev-zero"
    ),
]


def _unprivileged() -> list[str]:
    """A prefix that takes away root's power to read any file (as an operator would lack it):
    a user namespace without a mapping, where file permission bits apply to us again."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None:
        why = "needs unshare (util-linux) to test an unreadable file as root"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return ["unshare", "--user"]


# Besides status, the command that reads each file first.
READER = {
    "plan.toml": ["plan"],
    "staging.toml": ["render", "staging", "--format", "headers"],
    "staging.history.jsonl": ["history", "staging"],
    "staging.lock": ["verify", "staging", "--timeout", "1"],
}


@pytest.mark.parametrize(("name", "plant", "fragment"), PLANTED)
@pytest.mark.parametrize("reader", [False, True], ids=["status", "reader"])
def test_planted_file_is_one_line(
    write_plan: Callable[..., Path],
    name: str,
    plant: Callable[[Path], None],
    fragment: str,
    reader: bool,
) -> None:
    """A directory, socket, symlink loop, device or unreadable file where rollout reads its
    plan, stage file, history or lock: exit 2 at once, one line naming the file."""
    command = READER[name] if reader else ["status"]
    plan = write_plan()
    target = plan.parent / name
    target.unlink(missing_ok=True)
    plant(target)
    before = state(plan.parent)
    prefix = _unprivileged() if plant is plant_unreadable else []
    ran = subprocess.run(
        [*prefix, sys.executable, "-m", "rollout", *command, "--plan", str(plan)],
        capture_output=True,
        text=True,
        timeout=BOUND,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    one_line(ran.returncode, ran.stdout, ran.stderr, fragment)
    assert state(plan.parent) == before
