"""What every benchmark here shares: rounds of contenders, statistics, tables, processes.

A benchmark builds `Table`s: one row per contender, one value per repetition, and the
names of the rows its ratios are taken against, all measured in the same run. Contenders
run in rounds (each round every contender once, in a rotated order) so that drift on a
shared machine hits them alike; a table keeps every sample, and the page shows the median,
the min–max and the median's ratio to each baseline's median.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


@dataclass
class Row:
    """One contender: its samples, and what the reader should know about it."""

    name: str
    values: list[float] = field(default_factory=list)
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # more columns, already formatted

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")


@dataclass
class Goal:
    """A goal of the issue, the figure that judges it, and whether it was met."""

    text: str
    figure: str
    met: bool | None  # None: could not be judged in this run


@dataclass
class Table:
    """One benchmark's rows, its unit and its baselines, ready to print or plot."""

    key: str  # file stem of its plot: bench/results/<key>.png
    title: str
    unit: str
    baselines: list[str]  # row names; ratios are taken against each
    higher_is_better: bool = False
    rows: list[Row] = field(default_factory=list)
    command: str = ""
    notes: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def ratio(self, name: str, baseline: str) -> float:
        """The median of `name` over the median of `baseline`."""
        base = self.row(baseline).median
        return self.row(name).median / base if base else float("nan")

    def markdown(self) -> str:
        """The table as GitHub markdown: median, min–max and a ratio per baseline."""
        heads = ["contender", f"median ({self.unit})", "min–max"]
        heads += [f"÷ {b}" for b in self.baselines] + self.extra_columns
        lines = ["| " + " | ".join(heads) + " |"]
        lines.append("| --- | " + " | ".join("---:" for _ in heads[1:]) + " |")
        for r in self.rows:
            if not r.values:
                cells = [r.name, "—", "—"] + ["—" for _ in self.baselines]
            else:
                spread = f"{fmt(min(r.values))}–{fmt(max(r.values))}"
                cells = [r.name, fmt(r.median), spread]
                cells += [f"{self.ratio(r.name, b):.3f}" for b in self.baselines]
            cells += [r.extra.get(c, "") for c in self.extra_columns]
            lines.append("| " + " | ".join(cells) + " |")
        notes = [f"- {r.name}: {r.note}" for r in self.rows if r.note]
        return "\n".join(lines + (["", *notes] if notes else []))

    def text(self) -> str:
        """The table for a terminal, with its goals."""
        out = [f"## {self.title}", "", self.markdown()]
        out += [f"{'met' if g.met else 'MISSED' if g.met is False else '?'}: {g.text}: {g.figure}"
                for g in self.goals]  # fmt: skip
        return "\n".join(out) + "\n"


def fmt(value: float) -> str:
    """A figure with three significant digits, no exponent for everyday magnitudes."""
    if value != value:  # nan
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def rounds(
    contenders: dict[str, Callable[[], float]], reps: int, *, warmup: bool = True
) -> dict[str, list[float]]:
    """Call each contender once per round, `reps` rounds, rotating the order each round."""
    names = list(contenders)
    if warmup:
        for name in names:
            contenders[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(contenders[name]())
    return samples


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the server binds it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """Wait until something accepts on 127.0.0.1:port; fail loudly if `proc` died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited {proc.returncode} before listening")
        time.sleep(0.05)
    raise SystemExit(f"{proc.args!r} did not listen on {port} within {timeout:.0f}s")


@contextlib.contextmanager
def started(argv: Sequence[str], port: int, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A server process listening on `port`, stopped (TERM, then KILL) when the block ends."""
    proc = subprocess.Popen(list(argv), start_new_session=True, **popen)
    try:
        wait_port(port, proc)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a process this harness started, and its process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def timed_run(
    argv: Sequence[str], *, input: bytes | None = None, **popen: Any
) -> tuple[float, int, subprocess.CompletedProcess[bytes]]:
    """Run a whole process: (wall seconds, its peak RSS in KiB or 0, the completed process).

    The peak RSS comes from GNU time (`/usr/bin/time -f %M`), which forks the command
    from its own small image: a child forked from this Python process would count the
    parent's pages it ran on before exec. Its cost (one fork and exec, ~1 ms) is paid by
    every contender alike.
    """
    import tempfile

    gnu_time = Path("/usr/bin/time")
    with tempfile.TemporaryDirectory() as d:
        rss_file = Path(d) / "rss"
        prefix = [str(gnu_time), "-q", "-f", "%M", "-o", str(rss_file)] if gnu_time.exists() else []
        start = time.perf_counter()
        done = subprocess.run(
            [*prefix, *argv],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            check=False,
            **popen,
        )
        elapsed = time.perf_counter() - start
        text = rss_file.read_text().split() if rss_file.exists() else []
        rss = int(text[-1]) if text and text[-1].isdigit() else 0
    return (
        elapsed,
        rss,
        subprocess.CompletedProcess(list(argv), done.returncode, done.stdout, done.stderr),
    )


def which(name: str, *extra: str) -> str | None:
    """A binary on PATH, or in the given folders (nginx lives in /usr/sbin)."""
    return shutil.which(name) or next(
        (str(Path(d) / name) for d in extra if (Path(d) / name).exists()), None
    )


def venv_bin(name: str) -> str | None:
    """A console script installed beside this interpreter (the bench extra's tools)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else shutil.which(name)


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as the page records them."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"
