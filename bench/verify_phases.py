"""Where a `rollout verify` process spends its time: the CLI run with a clock at each phase.

    python bench/verify_phases.py --plan PLAN verify ENV ...   (the arguments of `rollout`)

Runs `rollout.cli.main` in this process, wrapping the plan load, the probing and judging,
and the rendering, and prints one JSON object of milliseconds per phase on stderr's last
line at exit (the command's own output goes where it always goes). The wrappers cost a
few function calls; the phases add up to the process's time after interpreter start.
"""

from __future__ import annotations

import atexit
import itertools
import json
import sys
import time
from typing import Any

marks: list[tuple[str, float]] = [("start", time.perf_counter())]


def mark(name: str) -> None:
    marks.append((name, time.perf_counter()))


def report() -> None:
    mark("exit (flush, teardown)")
    phases: dict[str, float] = {}
    for (_, before), (name, at) in itertools.pairwise(marks):
        phases[name] = phases.get(name, 0.0) + (at - before) * 1000
    print(json.dumps(phases), file=sys.stderr)


def main() -> None:
    import rollout.cli as cli

    mark("import click and the CLI")
    import rollout.cli.verify as cli_verify
    import rollout.orchestrate  # imported inside the command: timed here
    import rollout.plan  # noqa: F401
    import rollout.verify as verify

    mark("import the rest (pydantic, aiohttp, rollout)")
    load_plan, run_verify, render, emit = (
        cli.Options.load_plan,
        verify.verify,
        cli_verify.render,
        cli.Options.emit,
    )

    def timed_load(self: Any) -> Any:
        plan = load_plan(self)
        mark("read and validate the plan")
        return plan

    def timed_verify(*args: Any, **kwargs: Any) -> Any:
        mark("stage file, lock (and other set-up)")
        report = run_verify(*args, **kwargs)
        mark("probe and judge (TLS context included)")
        return report

    def timed_render(*args: Any, **kwargs: Any) -> Any:
        mark("record the verify in the history")
        lines = render(*args, **kwargs)
        mark("render the report")
        return lines

    def timed_emit(self: Any, *args: Any, **kwargs: Any) -> None:
        emit(self, *args, **kwargs)
        mark("print it")

    cli.Options.load_plan = timed_load  # type: ignore[method-assign]
    verify.verify = timed_verify
    cli_verify.render = timed_render
    cli.Options.emit = timed_emit  # type: ignore[method-assign]
    atexit.register(report)
    cli.main(sys.argv[1:])


if __name__ == "__main__":
    main()
