"""`rollout demo` as a new user runs it: one command, real servers, exit 0, a clean machine."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_the_whole_job_and_cleans_up() -> None:
    """The demo climbs off -> preload (the CSP reports gate holding on a reported violation
    until the plan allows it), reverts twice, prints its summary and leaves no folder."""
    before = set(Path(tempfile.gettempdir()).glob("rollout-demo-*"))
    proc = subprocess.run(
        [sys.executable, "-m", "rollout", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("✓ demo done in ")
    assert lines[-1].endswith(
        "8 advances from stage off to preload, each verified live; 2 reverts, each "
        "confirming the edge's headers survived; the last one sent max-age=0 to clear HSTS"
    )
    assert sum(line.startswith("✓ staging is at stage ") for line in lines) == 8
    assert "✓ staging is at stage 7 (preload), verified live" in lines
    assert "✓ staging reverted to stage off, confirmed live; 2 edge-owned headers survived" in lines
    # The CSP reports gate: a reported violation holds it, the fixed policy opens it.
    held = [
        x for x in lines if x.startswith("✗ staging stays at stage 3 (hsts-1d): gate csp-reports")
    ]
    assert len(held) == 1 and "https://cdn.shop.demo.test" in held[0]
    assert (
        "✓ staging sends the plan's new CSP report-only (its soak starts now) at stage 3 "
        "(hsts-1d), verified live"
    ) in lines
    assert "  ✓ csp-reports  0 distinct violations (csp-violations = 0), 1 page view, 0 " in (
        "\n".join(lines)
    )
    assert "the CSP reports gate held on a violation a visitor reported" in lines[-1]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert set(Path(tempfile.gettempdir()).glob("rollout-demo-*")) == before


def test_demo_keep_leaves_a_working_environment_until_ctrl_c() -> None:
    """--keep prints the plan and commands to try; they work until Ctrl-C stops it."""
    import os
    import shutil
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "rollout", "demo", "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:  # bounded: the demo prints a few hundred lines, then waits
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                break
        plan = next(x.split("=", 1)[1] for x in lines if x.startswith("  export ROLLOUT_PLAN="))
        assert "  rollout verify staging" in lines
        verify = subprocess.run(
            [sys.executable, "-m", "rollout", "verify", "staging"],
            env={**os.environ, "ROLLOUT_PLAN": plan},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert verify.stderr.startswith("staging off: verified: ")
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert rest.splitlines()[-1] == "stopping"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        shutil.rmtree(Path(plan).parent.parent, ignore_errors=True)
