"""The incident path: how long `rollout --help`, `status` and a real `revert` take.

    .venv/bin/python bench/incident_speed.py [--quick] [--reps 15]

Start-up: whole processes, in rounds, against `python -c pass` and `python -c 'import
click'` run by the same interpreter. That interpreter imports rollout from a plain path,
as a wheel install does: an editable install's import hook (setuptools' finder, ~25 ms)
would be paid by every process here, `python -c pass` included, and flatter the ratios.
Revert: a loopback environment (the demo's servers: uvicorn app with rollout's
middleware looking at its stage file once a second, an aiohttp TLS edge owning two
headers, an http redirector), advanced to stage 2 outside the timing, then `rollout
revert staging` timed end to end: lock, write, record, wait for the middleware to pick
the file up, confirm live that the app's headers reverted and the edge's survived.
"""

from __future__ import annotations

import argparse
import os
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO, Goal, Row, Table, rounds

PASS = "python -c pass"
CLICK = "python -c 'import click'"
HELP = "rollout --help"
STDLIB = "python -c 'import pathlib, dataclasses, tomllib, json, datetime'"
PLAN_MODELS = "python -c 'import rollout.plan' (pydantic models)"
STATUS = "rollout status (plan remembered: no pydantic, no click)"
STATUS_FULL = "rollout status, plan not remembered (validates it: pydantic, click)"
STATUS_JSON = "rollout status staging --json (plan remembered)"
REVERT = "rollout revert staging (end to end, live confirm)"
ADVANCE = "rollout advance staging (end to end, two live verifies)"


def plain_python(tmp: Path) -> str:
    """An interpreter that imports rollout and its dependencies from plain paths.

    A venv without pip whose one .pth file lists the repository and this interpreter's
    site-packages: path lines only, so no import hook runs at start-up.
    """
    venv = tmp / "plain"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    paths = [str(REPO), *site.getsitepackages()]
    (Path(purelib) / "rollout-bench.pth").write_text("\n".join(paths) + "\n")
    return str(python)


def status_plan(tmp: Path) -> Path:
    """The example plan with staging at stage 3 and a history, for `status`."""
    from rollout import history, ladder, store
    from rollout.plan import load_plan

    folder = tmp / "status"
    folder.mkdir()
    (folder / "plan.toml").write_text((REPO / "stages" / "plan.toml").read_text())
    plan = load_plan(folder / "plan.toml")
    for stage in range(4):
        store.write_settings(plan, ladder.settings_for(plan, "staging", stage))
        history.append(
            plan, "staging", history.new_record("advance", stage - 1 if stage else None, stage)
        )
        history.append(plan, "staging", history.new_record("verify", stage, stage, verified=True))
    return folder / "plan.toml"


def process(
    argv: list[str], check: bool = True, env: dict[str, str] | None = None
) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False, env=env)
        elapsed = time.perf_counter() - start
        if check and done.returncode != 0:
            raise SystemExit(f"{argv}: exit {done.returncode}: {done.stderr.decode()[-400:]}")
        return elapsed * 1000

    return run


def startup(python: str, plan: Path, reps: int) -> Table:
    rollout = [python, "-m", "rollout"]
    runs = {
        PASS: process([python, "-c", "pass"]),
        CLICK: process([python, "-c", "import click"]),
        # What any status written in Python pays to read TOML and JSON and keep records.
        STDLIB: process([python, "-c", "import pathlib, dataclasses, tomllib, json, datetime"]),
        PLAN_MODELS: process([python, "-c", "import rollout.plan"]),
        HELP: process([*rollout, "--help"]),
        STATUS: process([*rollout, "--plan", str(plan), "status"]),
        # A relative XDG_CACHE_HOME is invalid (XDG spec): nothing is recalled or kept.
        STATUS_FULL: process(
            [*rollout, "--plan", str(plan), "status"],
            env=os.environ | {"XDG_CACHE_HOME": "not-absolute"},
        ),
        STATUS_JSON: process([*rollout, "--plan", str(plan), "status", "staging", "--json"]),
    }
    samples = rounds(runs, reps)
    table = Table(
        key="incident-startup",
        title="Start-up: whole processes, same interpreter",
        unit="ms wall",
        baselines=[PASS, CLICK],
        command=f"{reps} rounds; `python -m rollout`, imported from a plain path (wheel-like)",
        rows=[Row(name, values) for name, values in samples.items()],
    )
    help_ratio = table.ratio(HELP, CLICK)
    status_ratio = table.ratio(STATUS, PASS)
    click_ratio = table.ratio(CLICK, PASS)
    stdlib_ratio = table.ratio(STDLIB, PASS)
    table.goals += [
        Goal("`rollout --help` ≤ 1.5× `import click`", f"{help_ratio:.2f}×", help_ratio <= 1.5),
        Goal(
            "`rollout status` ≤ 3× `python -c pass`",
            f"{status_ratio:.2f}× ({table.ratio(STATUS_FULL, PASS):.2f}× when it validates the "
            f"plan; `import click` alone is {click_ratio:.2f}×, the stdlib a Python status "
            f"needs {stdlib_ratio:.2f}×)",
            status_ratio <= 3,
        ),
    ]
    return table


def revert(python: str, tmp: Path, reps: int) -> Table:
    from rollout.cli.demo import CSP, EDGE, ENV, HOST, PLAN, SUBDOMAIN
    from rollout.demo import servers

    stages = tmp / "revert" / "stages"
    plan = stages / "plan.toml"
    # check_interval 1.0: the middleware's default, the tick a revert waits for.
    local = servers.start(
        stages, stages / f"{ENV}.toml", EDGE, host=HOST, subdomain=SUBDOMAIN, check_interval=1.0
    )
    try:
        connect = '", "'.join(local.connect_to())
        plan.write_text(
            PLAN.format(
                env=ENV,
                csp=CSP,
                host=HOST,
                subdomain=SUBDOMAIN,
                connect_to=f'["{connect}"]',
                xfo=EDGE["x-frame-options"],
                nosniff=EDGE["x-content-type-options"],
            )
        )
        rollout = [python, "-m", "rollout", "--plan", str(plan)]
        advance = process([*rollout, "advance", ENV, "--settle", "15"])
        for _ in range(2):  # off -> 0 -> 1, untimed
            advance()
        revert_once = process([*rollout, "revert", ENV, "--reason", "bench", "--settle", "15"])
        samples: dict[str, list[float]] = {REVERT: [], ADVANCE: []}
        for _ in range(reps):  # 1 -> 2, then back to 1: each round leaves it where it began
            samples[ADVANCE].append(advance())
            samples[REVERT].append(revert_once())
    finally:
        local.stop()
    table = Table(
        key="incident-revert",
        title="A real revert on loopback (app + rollout middleware + edge)",
        unit="ms wall",
        baselines=[REVERT],
        command=f"{reps} rounds; the middleware looks at its stage file once a second "
        "(its default); stage 2 back to 1 each round",
        rows=[Row(name, values) for name, values in samples.items()],
    )
    median = table.row(REVERT).median
    table.goals.append(Goal("revert end to end ≤ 2 s", f"{median / 1000:.2f} s", median <= 2000))
    return table


def run(quick: bool, reps: int | None = None) -> list[Table]:
    """Both tables; `quick` is the CI smoke run (three rounds, one revert)."""
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as d:
        tmp = Path(d)
        python = plain_python(tmp)
        plan = status_plan(tmp)
        env = os.environ.copy()
        try:
            os.environ.pop("ROLLOUT_PLAN", None)
            # `rollout status` remembers validated plans: here, not in the user's cache.
            os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
            a = startup(python, plan, reps or (3 if quick else 21))
            b = revert(python, tmp, 1 if quick else (reps or 5))
        finally:
            os.environ.clear()
            os.environ.update(env)
    return [a, b]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, one revert (CI smoke)")
    parser.add_argument("--reps", type=int, help="rounds (default 21 start-ups, 5 reverts)")
    args = parser.parse_args()
    for table in run(args.quick, args.reps):
        print(table.text())


if __name__ == "__main__":
    main()
