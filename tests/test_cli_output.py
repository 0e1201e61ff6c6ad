"""`--output FILE` wherever a command prints a document: one writer, atomic, old file kept."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from rollout import history
from rollout.plan import load_plan
from tests.conftest import Result

Run = Callable[..., Result]

DOCUMENTS = [
    ["plan"],
    ["plan", "production", "--json"],
    ["status"],
    ["status", "staging", "--json"],
    ["history", "staging"],
    ["history", "staging", "--json"],
    ["revert", "staging", "--dry-run", "--json"],
    ["render", "production", "--format", "nginx"],
    ["render", "production", "--format", "json"],
]


@pytest.fixture
def plan(write_plan: Callable[..., Path]) -> Path:
    """The standard test plan, with one history record so history has rows."""
    path = write_plan()
    record = history.HistoryRecord("2026-01-01T00:00:00Z", "verify", None, None, "ok", "ann", True)
    history.append(load_plan(path), "staging", record)
    return path


@pytest.mark.parametrize("args", DOCUMENTS, ids=" ".join)
def test_output_holds_what_stdout_would(args: list[str], plan: Path, rollout: Run) -> None:
    """--output FILE gets exactly what the command prints without it; stdout stays empty
    and stderr says where it went."""
    printed = rollout(*args, "--plan", str(plan))
    assert printed.code == 0, printed.err
    target = plan.parent / "out.txt"
    written = rollout(*args, "--output", str(target), "--plan", str(plan))
    assert written.code == 0, written.err
    assert target.read_text() == printed.out
    assert written.out == ""
    assert written.err.startswith(f"rollout: wrote {target}")


@pytest.mark.parametrize("args", DOCUMENTS, ids=" ".join)
def test_a_refusal_keeps_the_old_file(
    args: list[str], write_plan: Callable[..., Path], rollout: Run
) -> None:
    """A refused plan (exit 2) leaves FILE as it was, byte for byte, with its mode."""
    plan = write_plan("[policy]\nx-frame-options = 'NOPE'\n[environments.staging]\nurls=[]\n")
    target = plan.parent / "out.txt"
    target.write_bytes(b"the old document\n")
    target.chmod(0o640)
    result = rollout(*args, "--output", str(target), "--plan", str(plan))
    assert result.code == 2
    assert target.read_bytes() == b"the old document\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in plan.parent.iterdir() if p.name.startswith(".out.txt")] == []


def test_json_refusal_with_output_goes_to_stdout(
    write_plan: Callable[..., Path], rollout: Run
) -> None:
    """With --json, a refusal still prints {"ok": false, ...} on stdout, never into FILE."""
    plan = write_plan("not toml [")
    target = plan.parent / "status.json"
    result = rollout("status", "--json", "--output", str(target), "--plan", str(plan))
    assert result.code == 2
    assert result.out.startswith('{\n  "ok": false,')
    assert not target.exists()


def test_output_replaces_atomically_through_a_rename(plan: Path, rollout: Run) -> None:
    """The file is replaced by a rename of a complete temp file: a reader holding the old
    one keeps reading it whole, and the new one is complete."""
    target = plan.parent / "status.json"
    target.write_text("old\n")
    with target.open() as reader:
        result = rollout("status", "--json", "--output", str(target), "--plan", str(plan))
        assert result.code == 0
        assert reader.read() == "old\n"  # the old inode, untouched
    assert target.read_text().startswith('{\n  "ok": ')
