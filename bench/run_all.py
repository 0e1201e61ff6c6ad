"""Run every benchmark and write bench/RESULTS.md with a plot per table.

    .venv/bin/pip install -e '.[test,demo,bench]'   # once; Debian: nginx, curl, wrk
    .venv/bin/python bench/run_all.py               # the full run, ~15 minutes
    .venv/bin/python bench/run_all.py --quick --out /tmp/x   # the CI smoke run, seconds

Runs middleware_speed, verify_speed and incident_speed one after the other (each starts
and stops its own servers on 127.0.0.1), then writes the page: the command, the machine
and its load average before and after, the versions of every contender, each table with
medians, min–max and ratios taken inside the run, the goals met or missed, and a PNG per
table under results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import incident_speed
import middleware_speed
import verify_speed
from harness import BENCH, Goal, Row, Table, fmt, loadavg, which

SUITES = {
    "middleware": middleware_speed.run,
    "verify": verify_speed.run,
    "incident": incident_speed.run,
}

PACKAGES = [
    "rollout", "aiohttp", "click", "pydantic", "starlette", "uvicorn", "uvloop", "httptools",
    "Django", "secure", "Secweb", "shcheck", "drheader", "trustme", "matplotlib",
]  # fmt: skip


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    return [
        f"{cpu}, {os.cpu_count()} CPUs{mem}, {platform.system()} {platform.release()}",
        f"Python {platform.python_version()} ({sys.executable})",
    ]


def commit() -> str:
    """The commit measured, and whether the work tree differed from it."""
    git = ["git", "-C", str(BENCH.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)  # fmt: skip
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def versions() -> str:
    out = []
    for name in PACKAGES:
        try:
            out.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{name} (absent)")
    for argv in (["nginx", "-v"], ["curl", "--version"], ["wrk", "-v"]):
        binary = which(argv[0], "/usr/sbin")
        if binary is None:
            out.append(f"{argv[0]} (absent)")
            continue
        done = subprocess.run([binary, *argv[1:]], capture_output=True, text=True, check=False)
        text = (done.stdout or done.stderr).strip().splitlines()
        out.append(text[0].replace("nginx version: ", "") if text else argv[0])
    return ", ".join(out)


def plot(table: Table, folder: Path) -> str | None:
    """A horizontal bar per contender: the median, min–max whiskers, the ratio written on."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import textwrap

    rows = [r for r in table.rows if r.values]
    names = [textwrap.fill(r.name, 44) for r in rows][::-1]
    medians = [r.median for r in rows][::-1]
    low = [r.median - min(r.values) for r in rows][::-1]
    high = [max(r.values) - r.median for r in rows][::-1]
    base = table.baselines[0]
    ratios = [table.ratio(r.name, base) for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(rows) + 1.6))
    colors = ["#c0392b" if n.startswith("rollout") else "#7f8c8d" for n in names]
    ax.barh(names, medians, xerr=[low, high], color=colors, capsize=3)
    top = max(m + h for m, h in zip(medians, high, strict=True))
    if max(medians) / max(min(medians), 1e-12) > 50:
        ax.set_xscale("log")
        ax.set_xlim(right=top * 12)
    else:
        ax.set_xlim(0, top * 1.35)
    for y, (value, ratio, up) in enumerate(zip(medians, ratios, high, strict=True)):
        ax.text(value + up, y, f"  {fmt(value)} ({ratio:.2f}×)", va="center", fontsize=9)
    ax.set_xlabel(
        textwrap.fill(f"{table.unit}: median, whiskers min–max; in brackets ÷ {base}", 100)
    )
    ax.set_title(textwrap.fill(table.title, 90), fontsize=10)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{table.key}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path.name


QUICK = " (a --quick smoke run: tiny N, one round; its figures mean nothing)"


def page(tables: list[Table], args: argparse.Namespace, run: dict[str, Any]) -> str:
    """The results page; `run` holds when, on what commit, at which load, and how long."""
    cmd = "python bench/run_all.py" + (" --quick" if args.quick else "")
    lines = [
        "# Benchmarks: rollout against what people use today",
        "",
        f"Generated by `{cmd}`, started {run['generated']} UTC, in "
        f"{run['seconds'] / 60:.1f} minutes{QUICK if args.quick else ''}. "
        "Every figure below was taken in this one run; contenders alternate in rounds, and "
        "ratios are medians over medians from the same run. Absolute figures drift ±20–40% "
        "on shared machines: compare the ratios.",
        "",
        "## Machine",
        "",
        *[f"- {m}" for m in machine()],
        f"- rollout at commit {run['commit']}",
        f"- load average (1, 5, 15 min) before: {run['before']}; after: {run['after']}",
        f"- versions: {versions()}",
        "",
        "## Goals",
        "",
        "| goal | figure | met |",
        "| --- | --- | --- |",
    ]
    for t in tables:
        for g in t.goals:
            mark = "yes" if g.met else "**no**" if g.met is False else "?"
            lines.append(f"| {g.text} | {g.figure} | {mark} |")
    for t in tables:
        lines += ["", f"## {t.title}", "", f"How: {t.command}.", "", t.markdown(), ""]
        lines += [f"- {n}" for n in t.notes]
        image = plot(t, args.out / "results")
        if image:
            lines += ["", f"![{t.title}](results/{image})"]
    return "\n".join(lines) + "\n"


def table_from(saved: dict[str, Any]) -> Table:
    """A Table back from its results.json form."""
    rows = [Row(**r) for r in saved.pop("rows")]
    goals = [Goal(**g) for g in saved.pop("goals")]
    return Table(**saved, rows=rows, goals=goals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny N, one round (CI smoke)")
    parser.add_argument("--out", type=Path, default=BENCH, help="folder for RESULTS.md")
    parser.add_argument("--only", help="comma-separated: " + ",".join(SUITES))
    parser.add_argument(
        "--replot", action="store_true", help="rewrite the page and plots from results.json"
    )
    args = parser.parse_args()
    data = args.out / "results" / "results.json"
    if args.replot:
        saved = json.loads(data.read_text())
        tables = [table_from(t) for t in saved.pop("tables")]
        text = page(tables, args, saved)
        (args.out / "RESULTS.md").write_text(text)
        return
    chosen = args.only.split(",") if args.only else list(SUITES)
    run: dict[str, Any] = {"commit": commit(), "before": loadavg()}
    run["generated"] = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"
    start = time.monotonic()
    tables: list[Table] = []
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        for table in SUITES[name](args.quick):
            print(table.text(), flush=True)
            tables.append(table)
    run |= {"after": loadavg(), "seconds": time.monotonic() - start}
    data.parent.mkdir(parents=True, exist_ok=True)
    # Every sample, so the page and plots can be redrawn (--replot) without a new run.
    data.write_text(json.dumps(run | {"tables": [asdict(t) for t in tables]}, indent=1))
    text = page(tables, args, run)
    (args.out / "RESULTS.md").write_text(text)
    print(f"wrote {args.out / 'RESULTS.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
