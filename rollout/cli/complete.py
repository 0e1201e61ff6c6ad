"""Shell completion, and the refusal of a missing ENV: names read from the plan, lightly.

Both run before a command does, on every Tab press or typo, so they read plan.toml with
tomllib alone: no pydantic, no validation, no network. They never raise: a plan that
cannot be read completes nothing, and the refusal says why it could not list names.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from rollout.cli import DEFAULT_PLAN, Options
from rollout.durations import format_duration
from rollout.names import OFF
from rollout.settings import read_regular

# rollout.plan.DEFAULT_HSTS, repeated so that completing never imports pydantic; a test
# holds the two equal.
DEFAULT_HSTS = (30, 300, 3600, 86400, 604800, 2592000, 31536000)


class UnusablePlan(ValueError):
    """--plan was typed but refused (a folder, say): complete from no plan, not another."""


def plan_path(ctx: click.Context) -> Path:
    """The plan this command line names: --plan after the command, then before it, then
    $ROLLOUT_PLAN, then stages/plan.toml."""
    here: click.Context | None = ctx
    while here is not None:  # innermost first: a --plan after the command wins
        if here.get_parameter_source("plan") is ParameterSource.COMMANDLINE:
            value = here.params.get("plan")
            if value is None and isinstance(here.obj, Options):  # the command's own --plan
                value = here.obj.plan
            if not value:
                raise UnusablePlan("--plan names no plan file")
            return Path(value)
        here = here.parent
    from_env = os.environ.get("ROLLOUT_PLAN")
    return Path(from_env) if from_env else DEFAULT_PLAN


def _read(path: Path) -> dict[str, Any]:
    # read_regular refuses a FIFO or a device without blocking: a Tab press never hangs.
    data, _ = read_regular(path)
    return tomllib.loads(data.decode("utf-8"))


def environment_names(path: Path) -> list[str]:
    """The [environments] of the plan at path, in file order (OSError, ValueError)."""
    table = _read(path).get("environments", {})
    return [str(name) for name in table] if isinstance(table, dict) else []


def stage_names(path: Path) -> list[tuple[str, str]]:
    """(label, name) of stage off and every stage of the plan's ladder, as rollout names them."""
    ladder = _read(path).get("ladder", {})
    ladder = ladder if isinstance(ladder, dict) else {}
    ramp = ladder.get("hsts", DEFAULT_HSTS)
    ages = [a for a in ramp if isinstance(a, int)] if isinstance(ramp, list | tuple) else []
    names = [f"hsts-{format_duration(age)}" for age in ages]
    if ladder.get("preload") is True:
        names.append("preload")
    return [(OFF, OFF), *((str(i), name) for i, name in enumerate(names))]


def environments(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    """ENV completions: the plan's environment names."""
    try:
        names = environment_names(plan_path(ctx))
    except Exception:  # completing must never print a traceback into the shell
        return []
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def stages(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    """--stage/--to completions: off and each stage number, with its name as help."""
    try:
        known = stage_names(plan_path(ctx))
    except Exception:  # a plan that cannot be read still knows stage off
        known = [(OFF, OFF)]
    return [
        CompletionItem(label, help=name) for label, name in known if label.startswith(incomplete)
    ]


def missing_environment(ctx: click.Context) -> str:
    """The one-line refusal of a command run without ENV: which environments there are."""
    path = plan_path(ctx)  # a refused --plan never gets here: click refuses it first
    try:
        names = environment_names(path)
    except FileNotFoundError:
        return f"Missing argument 'ENV' (and there is no plan at {path})."
    except Exception as exc:  # the refusal is the news; the plan's trouble is a footnote
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"Missing argument 'ENV' ({path} cannot be read: {' '.join(why.split())})."
    if not names:
        return f"Missing argument 'ENV' ({path} lists no environments)."
    return f"Missing argument 'ENV': one of {', '.join(names)} (the environments of {path})."
