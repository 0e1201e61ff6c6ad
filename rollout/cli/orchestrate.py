"""`rollout advance` and `rollout revert`: the transitions, printed as they happen."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from rollout.cli import STAGE, Options, Seconds, StageChoice, common_options, env_argument

if TYPE_CHECKING:
    from rollout.cli.progress import Progress
    from rollout.orchestrate import Outcome
    from rollout.probe import ProbeOptions

SETTLE_HELP = "Seconds to wait for the new values to show live (default 15)."


def _probe_options(opts: Options) -> ProbeOptions:
    from rollout.probe import ProbeOptions

    return ProbeOptions(timeout=opts.timeout, insecure=opts.insecure, deadline=300.0)


def _say(opts: Options, bar: Progress) -> Callable[[str], None]:
    """One line per step as it starts (nothing in --json mode), and the step on the
    progress line while it runs. With --output the steps go to stderr: the file gets the
    result alone."""

    def say(text: str) -> None:
        bar.clear()
        if not opts.json:
            click.echo(f"→ {text}", err=opts.output is not None)
        bar.update(text)

    return say


@click.command("advance")
@env_argument()
@click.option("--dry-run", is_flag=True, help="Print the gates and the header diff; write nothing.")
@click.option(
    "--force", is_flag=True, help="Skip soak, after and the live pre-check (needs --reason)."
)
@click.option("--reason", default="", help="Why; kept in the history.")
@click.option("--settle", type=Seconds(0), default=15.0, help=SETTLE_HELP)
@common_options(output=True)
def advance(
    opts: Options, env_name: str, dry_run: bool, force: bool, reason: str, settle: float
) -> None:
    """Move ENV one stage up the ladder, proven live.

    Verifies the current stage live, checks every gate of the next stage (verified, soak,
    after, subdomain checks, preload requirements), writes the next stage, runs the plan's
    apply command, and polls the live servers until the new stage holds. If it does not,
    it writes the previous stage back by itself and exits 1. From stage off it writes
    stage 0: this is how an environment starts.

    --force skips soak, after and the live pre-check, never the subdomain or preload
    checks, and needs --reason; the history says so.

    \b
    Example:
      rollout advance staging --dry-run
      rollout advance staging
      rollout advance production --force --reason "CHG-1234 approved"
    """
    from rollout.cli.progress import Progress
    from rollout.cli.progress import wanted as progress_wanted
    from rollout.errors import InputError
    from rollout.orchestrate import advance as run_advance

    if force and not reason.strip():
        raise InputError("--force needs --reason TEXT: the history keeps why gates were skipped")
    plan = opts.load_plan()
    env = opts.environment(plan, env_name)
    with Progress(f"advance {env.name}", enabled=progress_wanted(opts.json)) as bar:
        outcome = run_advance(
            plan,
            env,
            options=_probe_options(opts),
            dry_run=dry_run,
            force=force,
            reason=reason,
            settle=settle,
            lock_timeout=opts.lock_timeout,
            say=_say(opts, bar),
        )
    _finish(opts, outcome)


@click.command("revert")
@env_argument()
@click.option(
    "--to",
    "to",
    type=STAGE,
    default=None,
    help="The stage to write (default: the last stage that verified before the current one).",
)
@click.option(
    "--clear-hsts",
    is_flag=True,
    help="Send max-age=0, the only value that makes browsers forget a cached HSTS policy.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the rollback (target, diff, steps); write nothing."
)
@click.option("--reason", default="", help="Why; kept in the history.")
@click.option("--settle", type=Seconds(0), default=15.0, help=SETTLE_HELP)
@common_options(output=True)
def revert(
    opts: Options,
    env_name: str,
    to: StageChoice | None,
    clear_hsts: bool,
    dry_run: bool,
    reason: str,
    settle: float,
) -> None:
    """Roll ENV's app-owned headers back and prove the edge-owned ones survived.

    The incident command: no gates, no questions. Writes the last stage that verified
    before the current one (or --to), runs apply, waits until the app sends the reverted
    values, then checks that every edge-owned header is still sent exactly once with the
    value it had before. A revert never changes the edge. When max-age goes down it says
    until when browsers keep the old policy; only --clear-hsts makes visiting browsers
    forget it.

    \b
    Example:
      rollout revert production --reason "INC-42 login broken"
      rollout revert production --to off --clear-hsts --reason "INC-42"
      rollout revert staging --dry-run --json
    """
    from rollout import orchestrate
    from rollout.cli.progress import Progress
    from rollout.cli.progress import wanted as progress_wanted
    from rollout.names import stage_label

    plan = opts.load_plan()
    env = opts.environment(plan, env_name)
    with Progress(f"revert {env.name}", enabled=progress_wanted(opts.json)) as bar:
        outcome = orchestrate.revert(
            plan,
            env,
            options=_probe_options(opts),
            to=orchestrate.LAST_VERIFIED if to is None else to.stage,
            clear_hsts=clear_hsts,
            dry_run=dry_run,
            reason=reason,
            settle=settle,
            lock_timeout=opts.lock_timeout,
            say=_say(opts, bar),
            preload_list=_preload_list,
        )
    if outcome.hsts_until and not clear_hsts:
        label = stage_label(outcome.to)
        outcome.notes.append(
            f"to make visiting browsers forget it: rollout revert {env.name} --to {label} "
            "--clear-hsts"
        )
    _finish(opts, outcome)


def _preload_list(host: str) -> str:
    """Whether host is on Chromium's preload list, as the `hstspreload` package ships it."""
    try:
        import hstspreload
    except ImportError:
        return (
            f"{host}: install rollout[preload] (the hstspreload package) to check it "
            "against Chromium's preload list"
        )
    version = getattr(hstspreload, "__version__", "?")
    import warnings

    with warnings.catch_warnings():
        # hstspreload 2025.1 reads its list with importlib.resources.open_binary, which
        # warns on Python >= 3.11; the lookup itself is sound.
        warnings.simplefilter("ignore", DeprecationWarning)
        listed = hstspreload.in_hsts_preload(host)
    where = "is on" if listed else "is not on"
    return f"{host} {where} Chromium's preload list (hstspreload {version})"


def _finish(opts: Options, outcome: Outcome) -> None:
    if opts.json:
        opts.emit_json(outcome.to_json())
    else:
        opts.emit("".join(f"{line}\n" for line in _lines(outcome)))
    if not outcome.ok:
        raise click.exceptions.Exit(1)


def _lines(o: Outcome) -> list[str]:
    from rollout.cli.verify import check_lines

    out: list[str] = []
    if o.gates:
        out.append("gates:")
        width = max(len(g.name) for g in o.gates)
        for g in o.gates:
            mark = "✓" if g.ok and not g.skipped else ("-" if g.skipped else "✗")
            out.append(f"  {mark} {g.name:<{width}}  {g.reason}")
    if o.changes:
        out.append("changes:" if not o.dry_run else "changes it would make:")
        for c in o.changes:
            out.append(
                f"  {c.owner:<4} {c.header}: {c.before or '(none)'} -> {c.after or '(none)'}"
            )
    if o.dry_run and o.steps:
        out.append("steps:")
        out += [f"  {i}. {s}" for i, s in enumerate(o.steps, 1)]
    if o.dry_run and o.commands:
        out.append("commands:")
        out += [f"  {c}" for c in o.commands]
    if any(c.failed for c in o.checks):
        out.append("failed checks:")
        options = o.report.options if o.report is not None else None
        out += check_lines(
            o.checks, o.environment, options, failed_only=True, probe=True, indent="  "
        )
    out += [f"! {n}" for n in o.notes]
    mark = "✓" if o.ok else "✗"
    out.append(f"{mark} {o.message}")
    return out
