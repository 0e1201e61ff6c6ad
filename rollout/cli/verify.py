"""`rollout verify ENV`: prove a stage against the live servers, one line per check."""

from __future__ import annotations

import os
import shlex
import sys
from typing import TYPE_CHECKING

import click

from rollout.cli import STAGE, Options, Seconds, StageChoice, common_options, emit_json
from rollout.errors import RolloutError
from rollout.names import OFF

if TYPE_CHECKING:
    from rollout.checks import Check
    from rollout.probe import ProbeOptions
    from rollout.verify import Report

DEFAULT_DEADLINE = 300.0


@click.command("verify")
@click.argument("env_name", metavar="ENV")
@click.option(
    "--stage", type=STAGE, default=None, help="Verify this stage instead of the current one."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=32,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option(
    "--deadline",
    type=Seconds(1),
    default=DEFAULT_DEADLINE,
    show_default=True,
    help="Seconds for the whole verify; probes not done by then fail as timeouts.",
)
@click.option(
    "--subdomains", is_flag=True, help="Probe the subdomains even before includeSubDomains."
)
@common_options
def verify(
    opts: Options,
    env_name: str,
    stage: StageChoice | None,
    concurrency: int,
    deadline: float,
    subdomains: bool,
) -> None:
    """Prove a stage against the live servers: every page, a 404 and an http:// probe per
    origin, subdomains from includeSubDomains on. Exit 0 when every check holds, 1 when
    one fails, 2 on bad input.

    \b
    Example:
      rollout verify staging
      rollout verify production --stage 3 --json
      rollout verify staging --connect-to staging.example.test:443:127.0.0.1:8443
    """
    from rollout import ladder, store
    from rollout.orchestrate import record_verify
    from rollout.probe import ProbeOptions
    from rollout.verify import verify as run_verify

    plan = opts.load_plan()
    env = opts.environment(plan, env_name)
    options = ProbeOptions(
        timeout=opts.timeout,
        insecure=opts.insecure,
        concurrency=concurrency,
        deadline=deadline,
    )
    first = store.read_settings(plan, env.name)
    first_stage = None if first is None else first.stage
    recorded: RolloutError | None = None
    if stage is not None and stage.stage != first_stage:
        # Another stage than the current one: nothing to record, so no lock to take.
        expected = ladder.settings_for(plan, env.name, stage.stage)
        report = run_verify(env, expected, options=options, subdomains=subdomains)
    else:
        # The current stage: read, probe and record under the environment's lock, so a
        # verify never judges (or records against) a stage a transition is replacing.
        with store.lock(plan, env.name, timeout=opts.lock_timeout):
            current = store.read_settings(plan, env.name)
            current_stage = None if current is None else current.stage
            if stage is None and current is not None:
                expected = current  # what was rolled out, drift and all
            else:
                expected = ladder.settings_for(plan, env.name, current_stage)
            report = run_verify(env, expected, options=options, subdomains=subdomains)
            try:
                record_verify(plan, env.name, current_stage, report)
            except RolloutError as exc:
                recorded = exc  # the report still prints: it is what the user came for
    if opts.json:
        emit_json(report.to_json())
    else:
        color = use_color()
        lines, summary = render(report, color=color)
        for line in lines:
            click.echo(line, color=color)
        click.echo(summary, err=True, color=color)
    if recorded is not None:
        click.echo(f"rollout: {recorded}", err=True)
        # A failed probe is the news: the history trouble must not hide it behind exit 2.
        raise click.exceptions.Exit(1 if not report.ok else recorded.exit_code)
    if not report.ok:
        raise click.exceptions.Exit(1)


def use_color() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def render(report: Report, *, color: bool = False) -> tuple[list[str], str]:
    """The report as `curl -sI | grep`-like lines, and a one-line summary."""
    tail = "  (insecure: certificates not checked)" if report.insecure else ""
    lines: list[str] = []
    for check in report.checks:
        mark, tint = ("✓", "green") if check.ok else ("!", "yellow")
        if check.failed:
            mark, tint = "✗", "red"
        text = f"{mark} {check.url or report.environment}  {_subject(check)}{tail}"
        lines.append(click.style(text, fg=tint) if color else text)
        if check.failed and check.url:
            lines.append(f"    {curl_command(check.url, report.options)}")
    failed, warned = len(report.failures), len(report.warnings)
    passed = len(report.checks) - failed - warned
    stage = OFF if report.stage is None else f"stage {report.stage}"
    verdict = "verified" if report.ok else "FAILED"
    summary = (
        f"{report.environment} {stage}: {verdict}: {passed} passed, {failed} failed, "
        f"{warned} warnings{tail}"
    )
    return lines, summary


def _subject(check: Check) -> str:
    got = " | ".join(check.actual) if check.actual else "nothing"
    if check.ok:
        return (
            f"{check.header}: {check.actual[0]}"
            if check.header and check.actual
            else (check.message)
        )
    what = f"{check.header}: " if check.header else ""
    if check.severity == "warning":
        return f"{what}{got}: {check.message} [{check.id}]"
    if check.expected is None and not check.actual:
        return f"{what}{check.message} [{check.id}]"
    return f"{what}expected {check.expected or 'nothing'}, got {got}: {check.message} [{check.id}]"


def curl_command(url: str, options: ProbeOptions) -> str:
    """The curl command that shows the same response by hand, routes and trust included."""
    from rollout.probe import origin_of

    scheme, host, port = origin_of(url)
    # A GET, as the probe sends (curl -I would send HEAD, which some servers answer
    # differently); -D - prints the response head, the body goes nowhere.
    # -sS: quiet, but errors (a certificate refused) still print; --max-time: the run's own
    # per-request timeout, so the printed command cannot hang on a stalled server.
    argv = ["curl", "-sS", "-o", "/dev/null", "-D", "-", "--max-time", f"{options.timeout:g}"]
    argv += [
        a
        for c in options.connect_to
        if (c.host, c.port) == (host, port)
        for a in ("--connect-to", str(c))
    ]
    argv += [
        a
        for r in options.resolve
        if (r.host, r.port) == (host, port)
        for a in ("--resolve", str(r))
    ]
    if scheme == "https" and options.cacert is not None:
        argv += ["--cacert", str(options.cacert)]
    if scheme == "https" and options.insecure:
        argv.append("--insecure")
    argv.append(url)
    return shlex.join(argv)
