"""`rollout` and `python -m rollout`: `status` answered without click or pydantic when it can.

Every other command, and any `status` this cannot answer exactly as the CLI would (an
option it does not read, a plan not validated before, an error to report), goes to the
click CLI in `rollout.cli`. The quick answer is the same text: `rollout.status` builds
it on both paths; only the plan comes from `rollout.planview` instead of pydantic.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PLAN = "stages/plan.toml"  # as rollout.cli.DEFAULT_PLAN (which imports click)


def main(argv: Sequence[str] | None = None) -> None:
    """Run `rollout ARGS`: the quick status when it applies, else the click CLI."""
    args = list(sys.argv[1:] if argv is None else argv)
    request = None if "_ROLLOUT_COMPLETE" in os.environ else status_request(args)
    if request is not None:
        text = quick_status(*request)
        if text is not None:
            try:
                sys.stdout.write(text)
                sys.stdout.flush()
            except BrokenPipeError:
                # `rollout status | head`: the reader left; say nothing more, as click does.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
    from rollout.cli import main as cli_main

    cli_main(args)


def status_request(args: list[str]) -> tuple[Path, str | None, bool] | None:
    """(plan, ENV, --json) for `[--plan P] status [ENV] [--json] [--plan P]`, else None."""
    plans: list[str] = []  # the group's --plan, then the command's: the last one given wins

    def take_plan(i: int) -> int | None:
        if args[i] == "--plan" and i + 1 < len(args):
            plans.append(args[i + 1])
            return i + 2
        if args[i].startswith("--plan="):
            plans.append(args[i].removeprefix("--plan="))
            return i + 1
        return None

    i = 0
    while i < len(args) and args[i] != "status":
        nxt = take_plan(i)
        if nxt is None:
            return None
        i = nxt
    if i == len(args) or len(plans) > 1:
        return None
    i += 1
    env: str | None = None
    as_json = False
    while i < len(args):
        if args[i] == "--json":
            as_json, i = True, i + 1
            continue
        nxt = take_plan(i)
        if nxt is not None:
            i = nxt
        elif args[i].startswith("-") or env is not None:
            return None
        else:
            env, i = args[i], i + 1
    plan = plans[-1] if plans else os.environ.get("ROLLOUT_PLAN") or DEFAULT_PLAN
    if not plan:
        return None
    return Path(plan), env, as_json


def quick_status(plan_path: Path, env: str | None, as_json: bool) -> str | None:
    """The status document from a remembered plan; None sends the command to the CLI."""
    try:
        from rollout import planview, status

        plan = planview.recall(plan_path)
        if plan is None:
            return None
        return status.document(plan, env, as_json=as_json)
    except Exception:  # whatever it is, the CLI path reports it properly
        return None


if __name__ == "__main__":
    main()
