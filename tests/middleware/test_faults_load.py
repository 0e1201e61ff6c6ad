"""The middlewares under stage-file faults and a concurrent load, on real servers.

Starlette under uvicorn, Django under uvicorn and Django's threaded WSGI server all watch
one stage file while clients keep requesting; the file is made invalid, hand-edited to
preload at stage 0, truncated, emptied, swapped for another environment's, rewritten in
place over and over, made unreadable and readable again, replaced by a FIFO and by
symlinks (to a good file, to nothing, to a loop), deleted and restored (`fault_load.FAULTS`).
What must hold: no 5xx and no failed request; every response carries the last good
header set or the next good one, never a shrunken or mixed one (stage off only after the
deletion, as the contract says); every fault logged, each distinct line once.

CI runs the schedule once with a 0.1 s check interval; ROLLOUT_DEEP=1 runs it 5 times
with the production interval (1 s). ROLLOUT_FAULT_FIGURES=FILE writes the figures (the
latency during faults vs the quiet step is a figure there, never asserted).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import pytest
from fault_load import (
    FAULTS,
    REWRITES,
    Run,
    allowed,
    figures,
    phase_of,
    run_schedule,
    shared_folder,
)

from rollout.middleware.watch import REPEAT_AFTER

pytestmark = pytest.mark.integration

DEEP = os.environ.get("ROLLOUT_DEEP") == "1"
ROUNDS, SECONDS, INTERVAL, WORKERS = (5, 2.0, 1.0, 3) if DEEP else (1, 0.5, 0.1, 2)
LINE = re.compile(r"(?P<at>\d+\.\d+) (?P<level>[A-Z]+) (?P<message>.*)")


@pytest.fixture(scope="module")
def run() -> Run:
    """One run of the whole schedule against the three servers."""
    with shared_folder() as folder:
        result = run_schedule(folder, ROUNDS, SECONDS, INTERVAL, WORKERS)
    wanted = os.environ.get("ROLLOUT_FAULT_FIGURES")
    if wanted:
        doc = {
            "rounds": ROUNDS,
            "step_seconds": SECONDS,
            "check_interval": INTERVAL,
            "clients_per_server": WORKERS,
            "steps": [f.name for f in FAULTS],
            "in_place_rewrites": len(REWRITES),
            "servers": figures(result),
        }
        with open(wanted, "w") as out:
            json.dump(doc, out, indent=2)
    return result


def test_no_5xx_and_no_failed_request(run: Run) -> None:
    """Every request got an answer, and none was a server error."""
    assert run.errors == []
    assert [r for r in run.responses if r.status >= 500 or r.status == 0] == []


def test_every_response_carries_a_whole_good_header_set(run: Run) -> None:
    """Each response has the last good headers or the next good ones, all of them: never
    a set a torn, invalid or unreadable file would give (stage off only once deleted)."""
    off = [
        (r.server, phase_of(run, r).fault.name, r.state)
        for r in run.responses
        if r.state not in allowed(run, r)
    ]
    assert off == [], off[:5]


def test_every_step_ran_under_load_and_settled(run: Run) -> None:
    """Each server answered during every step, and reached the state each step leads to."""
    assert run.unreached == []
    served: dict[int, set[str]] = {id(phase): set() for phase in run.phases}
    for r in run.responses:
        served[id(phase_of(run, r))].add(r.server)
    for phase in run.phases:
        assert served[id(phase)] == set(run.logs), phase.fault.name


def test_each_fault_is_logged_once(run: Run) -> None:
    """Every fault is reported, at its level and naming the file; each distinct line comes
    once (again only after REPEAT_AFTER); no error line that no fault explains."""
    expected = [(f.level, f.logs) for f in FAULTS if f.logs]
    for server, lines in run.logs.items():
        parsed = [LINE.fullmatch(line) for line in lines]
        assert all(parsed), (server, lines)
        said = [(m["level"], m["message"], float(m["at"])) for m in parsed if m]
        problems = [(level, text) for level, text, _ in said if level != "INFO"]
        for level, fragment in expected:
            assert any(lv == level and fragment in text for lv, text in problems), (
                server,
                fragment,
            )
        for level, text in problems:
            assert "/stages/staging.toml: " in text, text
            assert any(lv == level and frag in text for lv, frag in expected), (server, text)
        times: dict[str, float] = {}
        for level, text, at in said:
            if level != "INFO":
                if text in times and level == "ERROR":
                    assert at - times[text] >= REPEAT_AFTER, (server, text)
                times[text] = at
        if not DEEP:  # a single round: every distinct error exactly once
            errors = Counter(text for level, text, _ in said if level == "ERROR")
            assert max(errors.values()) == 1, errors


def test_figures(run: Run) -> None:
    """The figures docs/middleware.md quotes: responses, and latency quiet vs faulty."""
    for server, figs in figures(run).items():
        assert figs["responses"] > 0, server
        print(
            f"{server}: {figs['responses']:.0f} responses, {figs['5xx']:.0f} 5xx, "
            f"{figs['off_contract']:.0f} off contract; p50 quiet {figs['quiet_p50_ms']:.2f} ms, "
            f"faults {figs['faults_p50_ms']:.2f} ms; p99 quiet {figs['quiet_p99_ms']:.2f} ms, "
            f"faults {figs['faults_p99_ms']:.2f} ms"
        )
