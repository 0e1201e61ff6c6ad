"""Start-up time of the CLI, as ratios to bare Python measured in the same run.

    .venv/bin/python bench/cli_startup.py [--runs 15]

ANCHORS.md: `python -c pass` 20 ms; importing click, httpx, pydantic and tomli_w plus one
model 353 ms (~18x). `rollout --help` imports click only; the heavy modules load inside the
command that needs them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAN = Path(__file__).resolve().parent.parent / "stages" / "plan.toml"

CASES = {
    "python -c pass": ["-c", "pass"],
    "import click, httpx, pydantic, tomli_w": ["-c", "import click, httpx, pydantic, tomli_w"],
    "rollout --help": ["-m", "rollout", "--help"],
    "rollout plan (loads the plan)": ["-m", "rollout", "--plan", str(PLAN), "plan"],
    "rollout status --json": ["-m", "rollout", "--plan", str(PLAN), "status", "--json"],
    "rollout revert --help": ["-m", "rollout", "revert", "--help"],
}


def _incident_plan() -> Path:
    """A copy of the example plan with staging at stage 3, for `revert --dry-run`."""
    from rollout import history, ladder, store
    from rollout.plan import load_plan

    folder = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    (folder / "plan.toml").write_text(PLAN.read_text())
    plan = load_plan(folder / "plan.toml")
    for stage in range(4):
        store.write_settings(plan, ladder.settings_for(plan, "staging", stage))
        history.append(
            plan, "staging", history.new_record("advance", stage - 1 if stage else None, stage)
        )
        history.append(plan, "staging", history.new_record("verify", stage, stage, verified=True))
    return folder / "plan.toml"


def median_ms(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], capture_output=True, check=False)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    # The incident path up to the first probe: read plan, stage file and history, pick the
    # target, print the rollback (a dry run probes nothing, so only start-up is measured).
    incident = _incident_plan()
    CASES["rollout revert --dry-run (incident start-up)"] = [
        "-m", "rollout", "--plan", str(incident), "revert", "staging", "--dry-run",
    ]  # fmt: skip
    results = {name: median_ms(argv, runs) for name, argv in CASES.items()}
    base = results["python -c pass"]
    print(f"{'command':45} {'median ms':>10} {'x bare python':>14}")
    for name, ms in results.items():
        print(f"{name:45} {ms:10.1f} {ms / base:14.2f}")


if __name__ == "__main__":
    main()
