"""The gates to enter a stage, judged: verified, soak, after, subdomains, preload.

Each gate is a pure function of what was observed (a verify Report, the history, the
other environment's files) and of `now`, passed in, so soak is testable without sleeping.
`--force` skips soak, after and the live pre-check only; the subdomain checks and the
preload requirements are never skipped, because what they protect cannot be undone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rollout import history, ladder, store
from rollout.durations import describe, format_duration
from rollout.errors import HeaderValueError
from rollout.headers import hsts as hsts_grammar
from rollout.history import HistoryRecord
from rollout.ladder import AFTER, PRELOAD, SOAK, SUBDOMAINS, VERIFIED, Stage
from rollout.names import HSTS

if TYPE_CHECKING:
    # Annotations only: `rollout status` judges soak and after without loading pydantic
    # (it reads a cached, validated plan) or the prober (aiohttp builds TLS contexts at
    # import, ~100 ms).
    from rollout.plan import Environment, Plan
    from rollout.verify import Report

FORCEABLE = frozenset({VERIFIED, SOAK, AFTER})


@dataclass(frozen=True)
class Gate:
    """One gate's verdict: its name, whether it passed, and why, in user terms."""

    name: str
    ok: bool
    reason: str
    skipped: bool = False  # passed only because --force skipped it
    ends_at: datetime | None = None  # soak: when it is over

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "ok": self.ok, "reason": self.reason}
        if self.skipped:
            out["skipped"] = True
        if self.ends_at is not None:
            out["ends_at"] = history.format_time(self.ends_at)
        return out


def verified(report: Report) -> Gate:
    """The current stage holds live, right now, with certificates checked."""
    if report.insecure:
        return Gate(
            VERIFIED, False, "probed without certificate checks, which proves nothing to browsers"
        )
    if report.ok:
        return Gate(VERIFIED, True, f"all {len(report.checks)} checks passed live")
    failed = report.failures
    first = failed[0] if failed else None
    why = f"{len(failed)} of {len(report.checks)} checks failed"
    if first is not None:
        why += f", first: {first.probe} {first.url or ''} {first.message} [{first.id}]"
    return Gate(VERIFIED, False, " ".join(why.split()))


def soak(env: Environment, here: Stage | None, since: datetime | None, now: datetime) -> Gate:
    """The environment has been at its current stage at least its soak time."""
    needed = ladder.soak_seconds(here, env)
    what = "the stage's max-age" if env.soak is None else "the plan's soak"
    if since is None:
        return Gate(SOAK, False, "no record of when the current stage began")
    ends = since + timedelta(seconds=needed)
    if now >= ends:
        waited = describe((now - since).total_seconds())
        return Gate(
            SOAK,
            True,
            f"at this stage for {waited} ({what}: {format_duration(needed)})",
            ends_at=ends,
        )
    left = describe((ends - now).total_seconds())
    return Gate(
        SOAK,
        False,
        f"{left} left of {format_duration(needed)} ({what}); over at {history.format_time(ends)}",
        ends_at=ends,
    )


def after(plan: Plan, env: Environment, target: Stage) -> Gate:
    """The environment named by `after` has reached and verified the target stage."""
    assert env.after is not None
    other = store.read_settings(plan, env.after)
    records = history.read(plan, env.after)
    at = None if other is None else other.stage
    top = history.reached(at, records)
    if top is not None and top >= target.index:
        return Gate(AFTER, True, f"{env.after} has reached and verified stage {top}")
    got = "no stage" if top is None else f"stage {top}"
    return Gate(
        AFTER, False, f"{env.after} has reached and verified {got}; it must reach {target.index}"
    )


def subdomains(env: Environment, report: Report) -> Gate:
    """Every listed subdomain answers over https and redirects its http:// to https://."""
    if not env.subdomains:
        return Gate(
            SUBDOMAINS,
            False,
            "the plan lists no subdomains to check; list them, or set "
            "include-subdomains-from = false",
        )
    checked = [c for c in report.checks if c.probe == "subdomain" and c.severity == "error"]
    bad = [c for c in checked if not c.ok]
    if not checked:
        return Gate(SUBDOMAINS, False, "no subdomain check could be made")
    if bad:
        first = bad[0]
        return Gate(
            SUBDOMAINS,
            False,
            f"{len(bad)} of {len(checked)} subdomain checks failed, first: "
            f"{first.url} {first.message} [{first.id}]",
        )
    hosts = ", ".join(env.subdomains)
    return Gate(SUBDOMAINS, True, f"{hosts}: https with a valid certificate, http redirects")


def preload(target: Stage, report: Report) -> Gate:
    """hstspreload.org's rules: the header itself, one HSTS header, and http -> https first."""
    problems = hsts_grammar.preload_problems(hsts_grammar.parse(target.hsts))
    duplicated = [
        c for c in report.checks if c.header == HSTS and c.probe == "page" and len(c.actual) > 1
    ]
    if duplicated:
        problems.append(f"{duplicated[0].url} sends {len(duplicated[0].actual)} HSTS headers")
    redirects = [c for c in report.checks if c.probe == "http"]
    if not redirects:
        problems.append("no http:// probe could be made")
    problems += [f"{c.url}: {c.message}" for c in redirects if not c.ok]
    if problems:
        return Gate(PRELOAD, False, "; ".join(problems))
    return Gate(
        PRELOAD,
        True,
        f"{target.hsts!r} meets hstspreload.org's rules; every origin redirects http to https",
    )


def entered_at(
    records: Sequence[HistoryRecord], stage: int | None, updated: str
) -> datetime | None:
    """When the environment entered its current stage: the history, else the file's time."""
    return history.entered(records, stage) or (history.parse_time(updated) if updated else None)


def evaluate(
    plan: Plan,
    env: Environment,
    here: Stage | None,
    target: Stage,
    report: Report,
    since: datetime | None,
    now: datetime,
    *,
    force: bool = False,
) -> list[Gate]:
    """Every gate to enter `target` from `here`, in the order `rollout plan` lists them."""
    found: list[Gate] = []
    for name in ladder.gates_for(target, env):
        if name == VERIFIED:
            gate = verified(report)
        elif name == SOAK:
            gate = soak(env, here, since, now)
        elif name == AFTER:
            gate = after(plan, env, target)
        elif name == SUBDOMAINS:
            gate = subdomains(env, report)
        elif name == PRELOAD:
            try:
                gate = preload(target, report)
            except HeaderValueError as exc:  # the ladder writes the value: cannot happen
                gate = Gate(PRELOAD, False, str(exc))
        else:  # pragma: no cover - ladder.gates_for names only the gates above
            raise AssertionError(name)
        if force and name in FORCEABLE and not gate.ok:
            gate = replace(gate, ok=True, skipped=True, reason=f"skipped (forced): {gate.reason}")
        found.append(gate)
    return found
