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
import time
from pathlib import Path

PLAN = Path(__file__).resolve().parent.parent / "stages" / "plan.toml"

CASES = {
    "python -c pass": ["-c", "pass"],
    "import click, httpx, pydantic, tomli_w": ["-c", "import click, httpx, pydantic, tomli_w"],
    "rollout --help": ["-m", "rollout", "--help"],
    "rollout plan (loads the plan)": ["-m", "rollout", "--plan", str(PLAN), "plan"],
    "rollout status --json": ["-m", "rollout", "--plan", str(PLAN), "status", "--json"],
}


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
    results = {name: median_ms(argv, runs) for name, argv in CASES.items()}
    base = results["python -c pass"]
    print(f"{'command':45} {'median ms':>10} {'x bare python':>14}")
    for name, ms in results.items():
        print(f"{name:45} {ms:10.1f} {ms / base:14.2f}")


if __name__ == "__main__":
    main()
