"""`rollout verify ENV`: prove a stage against the live servers, one line per check."""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rollout.cli import STAGE, Options, Seconds, StageChoice, common_options, env_argument
from rollout.errors import RolloutError
from rollout.names import OFF

if TYPE_CHECKING:
    from rollout.checks import Check
    from rollout.plan import Environment
    from rollout.probe import ProbeOptions
    from rollout.settings import StageSettings
    from rollout.verify import Report

DEFAULT_DEADLINE = 300.0


@click.command("verify")
@env_argument()
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
@click.option(
    "--junit",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Also write the report as JUnit XML (one test case per check) to FILE, atomically.",
)
@common_options(output=True)
def verify(
    opts: Options,
    env_name: str,
    stage: StageChoice | None,
    concurrency: int,
    deadline: float,
    subdomains: bool,
    junit: Path | None,
) -> None:
    """Prove a stage against the live servers: every page, a 404 and an http:// probe per
    origin, subdomains from includeSubDomains on. Exit 0 when every check holds, 1 when
    one fails, 2 on bad input.

    \b
    Example:
      rollout verify staging
      rollout verify production --stage 3 --json --output verify.json
      rollout verify staging --junit rollout-verify.xml
      rollout verify staging --connect-to staging.example.test:443:127.0.0.1:8443
    """
    from rollout import ladder, store
    from rollout.cli import output
    from rollout.cli.progress import Progress
    from rollout.cli.progress import wanted as progress_wanted
    from rollout.orchestrate import record_verify
    from rollout.probe import ProbeOptions
    from rollout.verify import verify as run_verify

    plan = opts.load_plan()
    env = opts.environment(plan, env_name)
    # A verify may take minutes: refuse a FILE it could not write before, not after.
    for flag, path in (("--junit", junit), ("--output", opts.output)):
        if path is not None:
            output.check(path, flag=flag)
    options = ProbeOptions(
        timeout=opts.timeout,
        insecure=opts.insecure,
        concurrency=concurrency,
        deadline=deadline,
    )
    first = store.read_settings(plan, env.name)
    first_stage = None if first is None else first.stage
    recorded: RolloutError | None = None
    started = time.monotonic()
    with Progress(f"verify {env.name}", enabled=progress_wanted(opts.json)) as bar:
        if stage is not None and stage.stage != first_stage:
            # Another stage than the current one: nothing to record, so no lock to take.
            expected = ladder.settings_for(plan, env.name, stage.stage)
            bar.update(_probing(env, expected))
            report = run_verify(env, expected, options=options, subdomains=subdomains)
        else:
            # The current stage: read, probe and record under the environment's lock, so a
            # verify never judges (or records against) a stage a transition is replacing.
            bar.update(f"verify {env.name}: waiting for its lock")
            with store.lock(plan, env.name, timeout=opts.lock_timeout):
                current = store.read_settings(plan, env.name)
                current_stage = None if current is None else current.stage
                if stage is None and current is not None:
                    expected = current  # what was rolled out, drift and all
                else:
                    expected = ladder.settings_for(plan, env.name, current_stage)
                bar.update(_probing(env, expected))
                report = run_verify(env, expected, options=options, subdomains=subdomains)
                try:
                    record_verify(plan, env.name, current_stage, report)
                except RolloutError as exc:
                    recorded = exc  # the report still prints: it is what the user came for
    seconds = time.monotonic() - started
    if junit is not None:
        from rollout.junit import to_junit

        text = to_junit(
            report, seconds=seconds, reproduce=partial(curl_command, options=report.options)
        )
        output.replace(junit, text, flag="--junit")
    if opts.json:
        opts.emit_json(report.to_json())
    else:
        color = use_color() and opts.output is None
        lines, summary = render(report, color=color)
        opts.emit("".join(f"{line}\n" for line in lines))
        click.echo(summary, err=True, color=color)
    if recorded is not None:
        click.echo(f"rollout: {recorded}", err=True)
        # A failed probe is the news: the history trouble must not hide it behind exit 2.
        raise click.exceptions.Exit(1 if not report.ok else recorded.exit_code)
    if not report.ok:
        raise click.exceptions.Exit(1)


def _probing(env: Environment, expected: StageSettings) -> str:
    from rollout.verify import origin_url

    pages, origins = len(env.urls), len({origin_url(u) for u in env.urls})
    return (
        f"verify {env.name} stage {expected.label}: probing {pages} "
        f"page{'s' * (pages != 1)} and {origins} origin{'s' * (origins != 1)}"
    )


def use_color() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def render(report: Report, *, color: bool = False) -> tuple[list[str], str]:
    """The report as `curl -sI | grep`-like lines grouped by URL, and a one-line summary."""
    from rollout.explain import by_response

    tail = "  (insecure: certificates not checked)" if report.insecure else ""
    lines = check_lines(report.checks, report.environment, report.options, color=color, tail=tail)
    failed, warned = len(report.failures), len(report.warnings)
    passed = len(report.checks) - failed - warned
    unjudged = sum(len(r.unjudged) for r in by_response(report.checks))
    stage = OFF if report.stage is None else f"stage {report.stage}"
    verdict = "verified" if report.ok else "FAILED"
    of_them = f" ({unjudged} of them not judged)" if unjudged else ""
    summary = (
        f"{report.environment} {stage}: {verdict}: {passed} passed, {failed} failed{of_them}, "
        f"{warned} warnings{tail}"
    )
    return lines, summary


def check_lines(
    checks: Sequence[Check],
    environment: str,
    options: ProbeOptions | None,
    *,
    color: bool = False,
    tail: str = "",
    failed_only: bool = False,
    probe: bool = False,
    indent: str = "",
) -> list[str]:
    """One line per check, grouped by probe and URL with the status or connection first.

    Under a failed check or a warning, its fix; under a URL's first failure, the curl
    command that shows the same response by hand. Header checks a 5xx answer left
    unjudged fold into one line after it (--json still lists each).
    """
    from rollout.explain import by_response

    def styled(text: str, tint: str) -> str:
        return click.style(text, fg=tint) if color else text

    lines: list[str] = []
    for response in by_response(checks):
        where = response.url or environment
        if probe:
            where = f"{response.probe} {where}"
        curl_shown = False
        # Once per response: each is a scan of its checks (7,000 checks for 1,000 pages).
        cause, unjudged = response.cause, response.unjudged
        for check in response.shown:
            if failed_only and not check.failed:
                continue
            mark, tint = ("✓", "green") if check.ok else ("!", "yellow")
            if check.failed:
                mark, tint = "✗", "red"
            lines.append(styled(f"{indent}{mark} {where}  {_subject(check)}{tail}", tint))
            if not check.ok:
                lines.append(f"{indent}    fix: {check.fix_for(environment)}")
            if check.failed and check.url and options is not None and not curl_shown:
                lines.append(f"{indent}    {curl_command(check.url, options)}")
                curl_shown = True
            if check is cause and unjudged:
                names = ", ".join(dict.fromkeys(c.header or "" for c in unjudged))
                count = len(unjudged)
                text = (
                    f"{indent}- {where}  {count} header check{'s' * (count != 1)} not judged: "
                    f"{response.why} ({names}){tail}"
                )
                lines.append(styled(text, "yellow"))
    return lines


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
