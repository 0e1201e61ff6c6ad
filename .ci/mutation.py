"""Mutation testing in bounded time (docs/mutation.md): mutmut, one module at a time.

    .venv/bin/python .ci/mutation.py checks stagefile headers watch
    .venv/bin/python .ci/mutation.py --smoke

Each module runs under its own time limit (--minutes, default 40) with the `[tool.mutmut]`
configuration of pyproject.toml, then this prints, per module, the mutants killed out of
those tested and the score, as docs/mutation.md records them. `--smoke` runs the same
configuration on a copy of the project cut down to `rollout/headers/value.py` and its
tests: under a minute, it proves mutmut works here, and fails below a 90 % score.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = Path(sys.executable).parent / "mutmut"
MODULES = {
    "checks": "rollout.checks.*",
    "stagefile": "rollout.stagefile.*",
    "headers": "rollout.headers.*",
    "watch": "rollout.middleware.watch.*",
}
# mutmut's statuses: killed and timeout count as caught; survived and "no tests" (a
# mutant that no test even runs) as missed. Skipped ones (a module without tests to run,
# mutmut's own bookkeeping) are left out, as mutmut's own score does.
CAUGHT = {"killed", "timeout"}
MISSED = {"survived", "no tests", "suspicious"}
_LINE = re.compile(r"\s*(?P<name>[\w.]+__mutmut_\d+): (?P<status>.+)")


def results(folder: Path) -> dict[str, str]:
    """Every mutant's status, by name, from `mutmut results --all true` run in folder."""
    out = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m["name"]: m["status"].strip() for m in map(_LINE.fullmatch, out.splitlines()) if m}


def score(statuses: dict[str, str], prefix: str) -> tuple[int, int, list[str]]:
    """(caught, tested, surviving names) for the mutants whose name starts with prefix."""
    mine = {n: s for n, s in statuses.items() if n.startswith(prefix)}
    counts = Counter(mine.values())
    caught = sum(counts[s] for s in CAUGHT)
    tested = caught + sum(counts[s] for s in MISSED)
    return caught, tested, sorted(n for n, s in mine.items() if s in MISSED)


def run(folder: Path, pattern: str, minutes: float, children: int) -> bool:
    """mutmut run on the mutants matching pattern; False if it ran out of time."""
    try:
        done = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(children), pattern],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=minutes * 60,
        )
    except subprocess.TimeoutExpired:
        return False
    if done.returncode != 0:
        # mutmut says why (a failing test in the clean run, say) at the end of its output.
        sys.exit(f"mutmut run {pattern} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return True


def report(folder: Path, names: list[str], show: bool) -> list[float]:
    """Print one line per module, and its surviving mutants when show; return the scores."""
    statuses = results(folder)
    scores = []
    for name in names:
        caught, tested, left = score(statuses, MODULES[name].rstrip("*"))
        percent = 100.0 * caught / tested if tested else 0.0
        scores.append(percent)
        print(f"{name}: {caught}/{tested} behaviour-changing mutants killed ({percent:.1f} %)")
        for mutant in left if show else []:
            print(f"    survived: {mutant}  (mutmut show {mutant})")
    return scores


def smoke(children: int) -> int:
    """Run the project's configuration on value.py and its tests only, in a copy."""
    with tempfile.TemporaryDirectory(prefix="rollout-mutation-") as tmp:
        folder = Path(tmp)
        shutil.copytree(ROOT / "rollout", folder / "rollout")
        (folder / "tests" / "headers").mkdir(parents=True)
        shutil.copy(ROOT / "tests" / "__init__.py", folder / "tests")
        shutil.copy(ROOT / "tests" / "headers" / "test_value.py", folder / "tests" / "headers")
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())
        config = project["tool"]["mutmut"]
        pytest_ini = project["tool"]["pytest"]["ini_options"]
        lines = [
            "[tool.mutmut]",
            'source_paths = ["rollout/"]',
            'only_mutate = ["rollout/headers/value.py"]',
            f"pytest_add_cli_args = {config['pytest_add_cli_args']!r}",
            "[tool.pytest.ini_options]",
            f"markers = {pytest_ini['markers']!r}",
        ]
        (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")
        if not run(folder, "rollout.headers.value.*", 1.0, children):
            print("smoke: mutmut did not finish within a minute")
            return 1
        MODULES["value"] = "rollout.headers.value.*"
        (percent,) = report(folder, ["value"], show=True)
    return 0 if percent >= 90.0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=", ".join(MODULES))
    parser.add_argument("--smoke", action="store_true", help="a tiny run proving the set-up")
    parser.add_argument("--minutes", type=float, default=40.0, help="time limit per module")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants")
    args = parser.parse_args(argv)
    if args.smoke:
        return smoke(args.children)
    names = args.modules or list(MODULES)
    unknown = [name for name in names if name not in MODULES]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}: choose from {', '.join(MODULES)}")
    late = [name for name in names if not run(ROOT, MODULES[name], args.minutes, args.children)]
    report(ROOT, names, args.survivors)
    for name in late:
        print(f"{name}: stopped after {args.minutes:g} minutes; the score covers what ran")
    return 1 if late else 0


if __name__ == "__main__":
    sys.exit(main())
