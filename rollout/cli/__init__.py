"""The `rollout` command line: a thin click layer over the library.

Each command lives in its own module and is imported only when it runs, so that
`rollout --help` does not pay for pydantic, httpx or the header grammars. Library errors
become a one-line message and an exit code here, and only here.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import click
from click.core import ParameterSource

from rollout import __version__

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from rollout.plan import Environment, Plan

DEFAULT_PLAN = Path("stages/plan.toml")

# name -> (module:attribute, one-line help shown by `rollout --help` without importing it)
COMMANDS: dict[str, tuple[str, str]] = {
    "plan": (
        "rollout.cli.inspect:plan_command",
        "Print the ladder with each stage's headers and gates.",
    ),
    "status": (
        "rollout.cli.inspect:status",
        "Each environment's stage, headers, last verify, next advance.",
    ),
    "advance": (
        "rollout.cli.orchestrate:advance",
        "Verify, check the gates, move one stage up, prove it live.",
    ),
    "verify": ("rollout.cli.verify:verify", "Prove a stage against the live servers."),
    "revert": (
        "rollout.cli.orchestrate:revert",
        "Roll the app-owned headers back; prove the edge's survived.",
    ),
    "history": (
        "rollout.cli.inspect:history",
        "The transitions of an environment: when, who, why.",
    ),
    "render": ("rollout.cli.render:render", "A stage as nginx, Apache, Django, headers or JSON."),
    "reports": (
        "rollout.cli.reports:reports",
        "The CSP violations browsers reported, with the smallest fix.",
    ),
    "init": (
        "rollout.cli.init:init",
        "Probe a live site and write a starting plan from what it sends.",
    ),
    "demo": (
        "rollout.cli.demo:demo",
        "The whole job on an embedded local environment (loopback, TLS).",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, _, attr = entry[0].partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        if name not in COMMANDS and not name.startswith("-") and not ctx.resilient_parsing:
            # click draws its "Did you mean" from self.commands, which a lazy group leaves
            # empty: offer the table's names instead.
            raise click.exceptions.NoSuchCommand(name, possibilities=COMMANDS, ctx=ctx)
        return super().resolve_command(ctx, args)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        from click.shell_completion import CompletionItem

        # From the table, so completing a command name imports no command module.
        names = [
            CompletionItem(name, help=short)
            for name, (_, short) in COMMANDS.items()
            if name.startswith(incomplete)
        ]
        return names + click.Command.shell_complete(self, ctx, incomplete)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


@dataclass
class Options:
    """The options every command accepts, merged from the group and the command."""

    plan: Path | None = None
    resolve: list[str] = field(default_factory=list)
    connect_to: list[str] = field(default_factory=list)
    cacert: Path | None = None
    insecure: bool = False
    timeout: float = 10.0
    json: bool = False
    lock_timeout: float = 30.0
    output: Path | None = None

    @property
    def plan_path(self) -> Path:
        return self.plan or DEFAULT_PLAN

    def load_plan(self) -> Plan:
        """Load and validate the plan (PlanError on any refusal)."""
        from rollout.plan import load_plan

        return load_plan(self.plan_path)

    def environment(self, plan: Plan, name: str) -> Environment:
        """The named environment, with this command's --resolve/--connect-to/--cacert added."""
        from rollout.plan import with_overrides

        return with_overrides(
            plan,
            name,
            resolve=self.resolve,
            connect_to=self.connect_to,
            cacert=self.cacert,
        )

    def emit(self, text: str, *, wrote: str = "") -> None:
        """Print the command's document, or replace --output FILE with it (atomically)."""
        if self.output is None:
            click.echo(text, nl=False)
            return
        from rollout.cli.output import replace

        replace(self.output, text)
        click.echo(f"rollout: wrote {self.output}{wrote}", err=True)

    def emit_json(self, obj: object) -> None:
        """The command's JSON object, to stdout or --output FILE."""
        self.emit(_dumps(obj) + "\n")


F = TypeVar("F", bound=Callable[..., Any])


class Seconds(click.FloatRange):
    """A finite number of seconds at or above a minimum (FloatRange lets nan and inf in)."""

    name = "seconds"

    def __init__(self, minimum: float) -> None:
        super().__init__(min=minimum)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return super().convert(seconds, param, ctx)


@dataclass(frozen=True)
class StageChoice:
    """A stage named on the command line (`3` or `off`); the option's None is "not given"."""

    stage: int | None


class StageParam(click.ParamType[StageChoice, Any]):
    """`--stage N|off`, `--to N|off`: one parser, one message, for every command."""

    name = "N|off"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, StageChoice):
            return value
        from rollout.names import parse_stage

        try:
            return StageChoice(parse_stage(str(value)))
        except ValueError as exc:
            flag = param.opts[0] if param is not None and param.opts else "stage"
            raise click.UsageError(f"{flag}: {exc}", ctx) from None

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        from rollout.cli import complete

        return complete.stages(ctx, incomplete)


STAGE = StageParam()


class EnvArgument(click.Argument):
    """The ENV argument: completes from the plan, and a missing one lists the plan's."""

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        try:
            return super().process_value(ctx, value)
        except click.MissingParameter:
            from rollout.cli import complete

            raise click.UsageError(complete.missing_environment(ctx), ctx) from None

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        from rollout.cli import complete

        return complete.environments(ctx, incomplete)


def env_argument(required: bool = True) -> Callable[[F], F]:
    """`ENV`: an environment of the plan, as every command but demo takes it."""
    return click.argument(
        "env_name", metavar="ENV" if required else "[ENV]", required=required, cls=EnvArgument
    )


@overload
def common_options(func: F, /) -> F: ...
@overload
def common_options(*, probes: bool = True, output: bool = False) -> Callable[[F], F]: ...


def common_options(
    func: F | None = None, /, *, probes: bool = True, output: bool = False
) -> F | Callable[[F], F]:
    """Add the options DESIGN.md lets every command take; they arrive as `opts: Options`.

    `probes=False` (a command that reads files only) still accepts --resolve,
    --connect-to, --cacert, --insecure, --timeout and --lock-timeout, as DESIGN.md lets
    every command take them and scripts pass them along, but hides them from --help and
    completion: they change nothing there. `output=True` adds --output FILE.
    """
    if func is None:
        return lambda f: _with_common_options(f, probes=probes, output=output)
    return _with_common_options(func, probes=probes, output=output)


def _with_common_options(func: F, *, probes: bool, output: bool) -> F:
    def merge(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        opts = ctx.ensure_object(Options)
        if param.name == "plan":
            # $ROLLOUT_PLAN never overrides a --plan given before the command.
            explicit = ctx.get_parameter_source("plan") is ParameterSource.COMMANDLINE
            if value is not None and (explicit or opts.plan is None):
                opts.plan = value
        elif param.name in ("resolve", "connect_to"):
            getattr(opts, param.name).extend(value or ())
        elif param.name in ("cacert", "output"):
            if value is not None:
                setattr(opts, param.name, value)
        elif param.name == "insecure":
            opts.insecure = opts.insecure or bool(value)
        elif param.name in ("timeout", "lock_timeout"):
            if value is not None:
                setattr(opts, param.name, value)
        elif param.name == "json":
            opts.json = opts.json or bool(value)
        return value

    def option(*decls: str, hidden: bool = False, **attrs: Any) -> Callable[[F], F]:
        return click.option(*decls, expose_value=False, callback=merge, hidden=hidden, **attrs)

    quiet = not probes  # accepted, not offered
    decorators = [
        option(
            "--plan",
            "plan",
            type=click.Path(path_type=Path, dir_okay=False),
            envvar="ROLLOUT_PLAN",
            help="Plan file (default stages/plan.toml, or $ROLLOUT_PLAN).",
        ),
        option(
            "--resolve",
            "resolve",
            multiple=True,
            metavar="HOST:PORT:ADDR",
            hidden=quiet,
            help="As curl --resolve; added to the plan's. Repeatable.",
        ),
        option(
            "--connect-to",
            "connect_to",
            multiple=True,
            metavar="HOST:PORT:ADDR:PORT",
            hidden=quiet,
            help="As curl --connect-to; added to the plan's. Repeatable.",
        ),
        option(
            "--cacert",
            "cacert",
            type=click.Path(path_type=Path, dir_okay=False),
            hidden=quiet,
            help="Extra trust root (PEM), as curl --cacert.",
        ),
        option(
            "--insecure",
            "insecure",
            is_flag=True,
            hidden=quiet,
            help="Skip certificate checks (never the default).",
        ),
        option(
            "--timeout",
            "timeout",
            type=Seconds(0.1),
            default=None,
            hidden=quiet,
            help="Seconds per request (default 10).",
        ),
        option(
            "--lock-timeout",
            "lock_timeout",
            type=Seconds(0),
            default=None,
            hidden=quiet,
            help="Seconds to wait for another command on the same environment (default 30).",
        ),
        option("--json", "json", is_flag=True, help="Print one JSON object."),
    ]
    if output:
        decorators.append(
            option(
                "--output",
                "output",
                type=click.Path(path_type=Path, dir_okay=False),
                metavar="FILE",
                help="Write the output to FILE instead, replacing it atomically; "
                "on any error FILE is left as it was.",
            )
        )

    @click.pass_context
    def wrapper(ctx: click.Context, /, *args: Any, **kwargs: Any) -> Any:
        return ctx.invoke(func, ctx.ensure_object(Options), *args, **kwargs)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    for decorate in reversed(decorators):
        wrapper = decorate(wrapper)
    return wrapper  # type: ignore[return-value]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rollout")
@click.option(
    "--plan",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="ROLLOUT_PLAN",
    help="Plan file (default stages/plan.toml, or $ROLLOUT_PLAN).",
)
@click.pass_context
def cli(ctx: click.Context, plan: Path | None) -> None:
    """Stage HTTP security headers into production, prove every stage, roll back safely.

    \b
    Example:
      rollout demo
      rollout advance staging
      rollout verify staging
      rollout revert production
    """
    ctx.ensure_object(Options).plan = plan


def emit_json(obj: object) -> None:
    """Print one JSON object on stdout."""
    click.echo(_dumps(obj))


def _dumps(obj: object) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI, turning every refusal into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    from rollout.errors import RolloutError

    try:
        # Without standalone mode click returns ctx.exit(N)'s code instead of exiting.
        code = cli.main(args=args, prog_name="rollout", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        # A bare `rollout` asks for the help page: print it whole, as --help would.
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        sys.exit(0)
    except click.exceptions.Abort:
        click.echo("rollout: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        _fail(exc.format_message(), 2, args)
    except RolloutError as exc:
        _fail(str(exc), exc.exit_code, args)
    except KeyboardInterrupt:
        click.echo("rollout: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int, args: list[str]) -> None:
    line = " ".join(message.split())  # one line, always
    if "--json" in args:
        emit_json({"ok": False, "error": line})
    click.echo(f"rollout: {line}", err=True)
    sys.exit(code)
