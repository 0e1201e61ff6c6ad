"""`rollout reports`: the CSP violations an environment's live policies drew, with advice."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from rollout.cli import Options, common_options, emit_json

if TYPE_CHECKING:
    from rollout.reports.environment import EnvironmentReports
    from rollout.reports.summary import PolicyReports, Violation

_ROLE_TEXT = {
    "report-only": "report-only policy",
    "enforcing": "enforcing policy",
    "next": "next policy (report-only beside the enforcing one)",
}


@click.command("reports")
@click.argument("env_name", metavar="ENV")
@click.option(
    "--since",
    "since",
    default=None,
    metavar="DURATION",
    help="Look back this long (30m, 24h, 7d); default: since the current stage began.",
)
@common_options
def reports(opts: Options, env_name: str, since: str | None) -> None:
    """Show the distinct CSP violations of ENV's live policies, most frequent first.

    Reports reach the app's own endpoint (the path of csp-report-uri) and are kept
    deduplicated in stages/ENV.reports.sqlite3 (or the plan's reports-store). For each
    violation, the smallest policy change that would allow it; browser extensions,
    about: frames and pages of other sites are listed apart as noise. rollout never
    widens a policy: you edit the plan, and `rollout advance` sends the new policy
    report-only first. Exit 1 when a policy drew more distinct violations than the
    plan's csp-violations (0 when unset).

    \b
    Example:
      rollout reports staging
      rollout reports production --since 24h --json
    """
    from datetime import UTC, datetime

    from rollout.durations import parse_duration
    from rollout.errors import InputError
    from rollout.reports.environment import read

    seconds = None
    if since is not None:
        seconds = parse_duration(since)
        if seconds is None:
            raise InputError(f"--since: {since!r} is not a duration like 30m, 24h, 7d")
    plan = opts.load_plan()
    env = plan.environment(env_name)
    found = read(plan, env, since=seconds, now=datetime.now(UTC))
    if opts.json:
        emit_json(found.to_json())
    else:
        click.echo("\n".join(_lines(found, since)))
    if not found.ok:
        raise click.exceptions.Exit(1)


def _lines(found: EnvironmentReports, since: str | None) -> list[str]:
    from rollout.history import format_time

    at = "stage off" if found.stage is None else f"stage {found.stage} ({found.name})"
    window = f"the last {since}" if since else "the current stage began"
    out = [f"{found.environment} at {at}; reports since {format_time(found.since)} ({window})"]
    if not found.policies:
        return [*out, "  no CSP is sent at this stage: nothing to report"]
    for role, seen in found.policies:
        out += _policy_lines(_ROLE_TEXT[role], seen, found.budget, found.gated)
    if any(p.violations for _, p in found.policies):
        out.append(
            "rollout never widens a policy: edit the plan, then "
            f"`rollout advance {found.environment}` sends it report-only first."
        )
    return out


def _policy_lines(title: str, seen: PolicyReports, budget: int, gated: bool) -> list[str]:
    from rollout.reports.summary import counted, printable

    count = len(seen.violations)
    limit = f"csp-violations = {budget}" if gated else "no csp-violations in the plan"
    mark = "✓" if count <= budget else "✗"
    out = [
        "",
        f"{title} ({seen.header}): {counted(seen.reports, 'report')}, "
        f"{counted(seen.page_views, 'page view')}",
        f"  {mark} {counted(count, 'distinct violation')} ({limit})",
    ]
    for v in seen.violations:
        out.append(_row(v))
        out.append(f"      → {printable(v.advice)}")
    if seen.noise:
        out.append(f"  noise, not counted ({len(seen.noise)}):")
        out += [f"{_row(v)}  ({_noise(v.noise)})" for v in seen.noise]
    return out


def _row(v: Violation) -> str:
    from rollout.reports.summary import printable

    where = printable(v.document) or "?"
    return f"    {v.count:>6}  {printable(v.directive)}  {printable(v.blocked)}  on {where}"


def _noise(why: str) -> str:
    from rollout.reports.advice import NOISE_TEXT

    return NOISE_TEXT.get(why, why)
