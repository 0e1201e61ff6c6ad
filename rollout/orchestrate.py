"""advance and revert: gated, self-verifying transitions of one environment's stage file.

Both hold the environment's lock from the first read to the last record, so two commands
on one environment take turns and different environments run side by side. Each write
follows the same order: replace the stage file atomically, append the transition to the
history, run `apply`, then poll the live servers until the new values show (or the settle
time runs out). A command killed anywhere leaves the old file or the new one; a new file
without its history record is what `history.interrupted` reports.

advance: verify the current stage live, judge the gates, write the next stage, apply,
verify it; if it does not hold, write the previous stage back, apply, verify, and say so.

revert: no gates, no questions. Capture the edge-owned headers live, write the target
stage's app-owned values (the edge's part of the file stays as it was: a revert never
rolls the edge back), apply, wait for the app to take them, then confirm every
edge-owned header survived.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, TypeVar

from rollout import confirm, gates, history, ladder, store
from rollout.checks import Check
from rollout.errors import HeaderValueError, InputError, SettingsError
from rollout.gates import Gate
from rollout.headers import hsts as hsts_grammar
from rollout.history import ADVANCE, REVERT, ROLLBACK, VERIFY
from rollout.names import CLEAR_HSTS, HSTS, Stage, stage_label
from rollout.plan import Environment, Plan
from rollout.probe import ProbeOptions
from rollout.settings import StageSettings
from rollout.settings import load as load_stage_file
from rollout.verify import Report, verify

SETTLE = 15.0  # seconds to wait for new values to show live
_POLICY_STEP_TEXT = {
    ladder.STAGE_POLICY: "send the plan's new CSP report-only",
    ladder.PROMOTE_POLICY: "enforce the CSP that soaked report-only",
}
_POLICY_STEP_DONE = {
    ladder.STAGE_POLICY: "sends the plan's new CSP report-only (its soak starts now)",
    ladder.PROMOTE_POLICY: "enforces the CSP that soaked report-only",
}
APPLY_TIMEOUT = 120.0
_POLL = 0.25
_OUTPUT_KEPT = 4000  # characters of a failing apply's output kept in the history


class _Default:
    """The marker for "the last stage that verified before the current one"."""


LAST_VERIFIED: Final = _Default()


@dataclass(frozen=True)
class Change:
    """One header whose value a transition changes: None is "not sent"."""

    owner: str  # "app" or "edge"
    header: str
    before: str | None
    after: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "owner": self.owner,
            "header": self.header,
            "before": self.before,
            "after": self.after,
        }


@dataclass
class Outcome:
    """What one advance or revert did, or (dry run) would do, and whether it held."""

    environment: str
    action: str  # "advance" or "revert"
    from_: Stage
    to: Stage  # the target stage
    stage: Stage  # where the environment is when the command ends
    ok: bool = False
    dry_run: bool = False
    message: str = ""
    gates: list[Gate] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    rolled_back: bool = False
    noop: bool = False
    policy_step: str = ""  # a CSP change at the current stage (ladder.policy_step), or ""
    hsts_until: str = ""
    report: Report | None = None  # the live check that decided, for curl hints

    def to_json(self) -> dict[str, object]:
        """DESIGN.md's object (environment, stage, ok, checks) and the transition's detail."""
        out: dict[str, object] = {
            "environment": self.environment,
            "stage": stage_label(self.stage),
            "ok": self.ok,
            "action": self.action,
            "from": stage_label(self.from_),
            "to": stage_label(self.to),
            "dry_run": self.dry_run,
            "message": self.message,
        }
        if self.action == ADVANCE:
            out["gates"] = [g.to_json() for g in self.gates]
            out["rolled_back"] = self.rolled_back
            if self.policy_step:
                out["policy_step"] = self.policy_step
        out["changes"] = [c.to_json() for c in self.changes]
        out["steps"] = list(self.steps)
        if self.dry_run:
            out["commands"] = list(self.commands)
        out["notes"] = list(self.notes)
        if self.hsts_until:
            out["hsts_until"] = self.hsts_until
        out["checks"] = [c.to_json() for c in self.checks]
        return out


Say = Callable[[str], None]
T = TypeVar("T")


def _quiet(_: str) -> None:
    pass


def changes(before: StageSettings, after: StageSettings) -> list[Change]:
    """The headers whose values differ between two stages, app-owned first."""
    out = []
    for owner in ("app", "edge"):
        old: Mapping[str, str] = getattr(before, owner)
        new: Mapping[str, str] = getattr(after, owner)
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                out.append(Change(owner, name, old.get(name), new.get(name)))
    return out


# advance --------------------------------------------------------------------------


def advance(
    plan: Plan,
    env: Environment,
    *,
    options: ProbeOptions,
    dry_run: bool = False,
    force: bool = False,
    reason: str = "",
    settle: float = SETTLE,
    lock_timeout: float = store.LOCK_TIMEOUT,
    apply_timeout: float = APPLY_TIMEOUT,
    now: Callable[[], datetime] | None = None,
    say: Say = _quiet,
) -> Outcome:
    """Move env one stage up the ladder if every gate passes, proving the new stage live."""
    if force and not reason.strip():
        raise InputError(f"{env.name}: a forced advance needs a reason; history keeps it")
    held = contextlib.nullcontext() if dry_run else store.lock(plan, env.name, timeout=lock_timeout)
    with held:
        return _advance(
            plan, env, options, dry_run, force, reason.strip(), settle, apply_timeout,
            now or _utcnow, say,
        )  # fmt: skip


def _advance(
    plan: Plan,
    env: Environment,
    options: ProbeOptions,
    dry_run: bool,
    force: bool,
    reason: str,
    settle: float,
    apply_timeout: float,
    now: Callable[[], datetime],
    say: Say,
) -> Outcome:
    written = store.read_settings(plan, env.name)
    current = written or ladder.settings_for(plan, env.name, None)
    records = history.read(plan, env.name)
    stages = ladder.build(plan)
    here = ladder.stage_at(plan, current.stage)
    out = Outcome(env.name, ADVANCE, current.stage, None, current.stage, dry_run=dry_run)
    # A CSP change at the current stage comes before any climb (csp-violations only).
    policy = ladder.policy_step(plan, env, current)
    names: tuple[str, ...] | None = None
    if policy is not None and here is not None:
        out.policy_step, new = policy
        target = here
        names = ladder.POLICY_STEP_GATES[out.policy_step]
    else:
        climb = ladder.next_stage(stages, current.stage)
        if climb is None:
            out.to = current.stage
            out.ok, out.noop = True, True
            out.message = (
                f"{env.name} is at the top of the ladder ({_name(current)}); nothing to do"
            )
            return out
        target = climb
        new = ladder.settings_for(plan, env.name, target.index)
    out.to = target.index
    out.changes = changes(current, new)
    wanted = ladder.gates_for(target, env) if names is None else names

    def step(text: str) -> None:
        out.steps.append(text)
        say(text)

    step(f"verify {_name(current)} live (the current stage)")
    needs_subdomains = ladder.SUBDOMAINS in wanted or ladder.PRELOAD in wanted
    report = verify(env, current, options=options, subdomains=needs_subdomains)
    if not dry_run:
        record_verify(plan, env.name, current.stage, report)
    since = gates.entered_at(records, current.stage, current.updated)
    out.gates = gates.evaluate(
        plan, env, here, target, report, since, now(), force=force, current=current, new=new,
        names=names,
    )  # fmt: skip
    out.checks, out.report = list(report.checks), report
    failed = [g for g in out.gates if not g.ok]
    if failed:
        out.message = f"{env.name} stays at {_name(current)}: gate {failed[0].name}: " + (
            failed[0].reason
        )
        return out
    doing = _POLICY_STEP_TEXT.get(out.policy_step, "")
    if dry_run:
        out.ok = True
        out.message = f"{env.name} may advance to {_name(new)}; nothing written (dry run)"
        if doing:
            out.message = f"{env.name} may {doing} at {_name(new)}; nothing written (dry run)"
        out.steps += _write_steps(plan, env, new, settle)
        out.commands = [_shell(env.apply)] if env.apply else []
        return out

    step(f"write {store.settings_path(plan, env.name)}: {_name(new)}")
    store.write_settings(plan, new)
    why = reason or "every gate passed"
    if force:
        skipped = ", ".join(g.name for g in out.gates if g.skipped) or "none"
        why = f"forced (gates skipped: {skipped}): {why}"
    if doing:
        why = f"{doing}: {why}"
    history.append(
        plan, env.name, history.new_record(ADVANCE, current.stage, new.stage, reason=why)
    )
    applied, output = _apply(plan, env, new, apply_timeout, step)
    result: Report | None = None
    if applied:
        step(f"wait up to {settle:g}s for {_name(new)} to show live")
        result = _settle(lambda: verify(env, new, options=options), settle)
        record_verify(plan, env.name, new.stage, result)
        if result.ok and not result.insecure:
            out.ok, out.stage = True, new.stage
            out.checks, out.report = list(result.checks), result
            out.message = f"{env.name} is at {_name(new)}, verified live"
            if doing:
                done = _POLICY_STEP_DONE[out.policy_step]
                out.message = f"{env.name} {done} at {_name(new)}, verified live"
            return out

    # The new stage did not hold: put the old one back, as it was.
    if result is not None:
        failed_checks = [c for c in result.checks if c.failed]
        cause = f"{_name(new)} failed its live check ({len(failed_checks)} checks failed)"
        out.checks, out.report = list(result.checks), result
    else:
        cause = f"apply failed for {_name(new)}: {_first_line(output)}"
    step(f"roll back to {_name(current)}: {cause}")
    store.write_settings(plan, dataclasses.replace(current, updated=""))
    # The new max-age may have been live for a moment: browsers that saw it keep it.
    was, went = _max_age(current.headers().get(HSTS)), _max_age(new.headers().get(HSTS))
    horizon = history.horizon_after(now(), went) if applied and went > was else ""
    history.append(
        plan,
        env.name,
        history.new_record(
            ROLLBACK,
            new.stage,
            current.stage,
            reason=cause,
            hsts_until=horizon,
            apply_output="" if applied else output[-_OUTPUT_KEPT:],
        ),
    )
    out.hsts_until = horizon
    back_applied, back_output = _apply(plan, env, current, apply_timeout, step)
    if not back_applied:
        out.notes.append(
            f"apply failed for the rollback too: {_first_line(back_output)}; the previous "
            "stage file is in place, but the app or edge may not have reloaded it"
        )
        record_verify(
            plan, env.name, current.stage, None, reason=f"apply failed: {_first_line(back_output)}",
            apply_output=back_output[-_OUTPUT_KEPT:],
        )  # fmt: skip
    else:
        step(f"wait up to {settle:g}s for {_name(current)} to show live again")
        again = _settle(lambda: verify(env, current, options=options), settle)
        record_verify(plan, env.name, current.stage, again)
        if not again.ok:
            out.notes.append(f"{_name(current)} did not verify after the rollback either")
    out.rolled_back, out.stage = True, current.stage
    out.message = f"{env.name} rolled back to {_name(current)}: {cause}"
    return out


# revert ---------------------------------------------------------------------------


def revert(
    plan: Plan,
    env: Environment,
    *,
    options: ProbeOptions,
    to: Stage | _Default = LAST_VERIFIED,
    clear_hsts: bool = False,
    dry_run: bool = False,
    reason: str = "",
    settle: float = SETTLE,
    lock_timeout: float = store.LOCK_TIMEOUT,
    apply_timeout: float = APPLY_TIMEOUT,
    now: Callable[[], datetime] | None = None,
    say: Say = _quiet,
    preload_list: Callable[[str], str] | None = None,
) -> Outcome:
    """Write an earlier stage's app-owned values and prove the edge's headers survived.

    `preload_list(host)` says whether a host is on browsers' preload lists, in one line.
    """
    held = contextlib.nullcontext() if dry_run else store.lock(plan, env.name, timeout=lock_timeout)
    with held:
        return _revert(
            plan, env, options, to, clear_hsts, dry_run, reason.strip(), settle,
            apply_timeout, (now or _utcnow)(), say, preload_list,
        )  # fmt: skip


def _revert(
    plan: Plan,
    env: Environment,
    options: ProbeOptions,
    to: Stage | _Default,
    clear_hsts: bool,
    dry_run: bool,
    reason: str,
    settle: float,
    apply_timeout: float,
    now: datetime,
    say: Say,
    preload_list: Callable[[str], str] | None,
) -> Outcome:
    misfit = ""
    try:
        written = store.read_settings(plan, env.name)
    except SettingsError as exc:
        # The incident command must not be blocked by a plan edited since the last
        # transition: revert from what the file says (it is still well-formed), and
        # write a target that fits the plan.
        written = load_stage_file(store.settings_path(plan, env.name))
        if written is None or written.environment != env.name:
            raise
        misfit = f"the stage file did not fit the plan ({exc}); reverted from what it says"
    current = written or ladder.settings_for(plan, env.name, None)
    records = history.read(plan, env.name)
    target = history.last_verified_below(records, current.stage) if isinstance(to, _Default) else to
    ladder.stage_at(plan, target)  # PlanError when the ladder has no such stage
    if target is not None and (current.stage is None or target > current.stage):
        # Going up without the gates would skip the subdomain and preload checks.
        raise InputError(
            f"{env.name}: stage {target} is above the current {_name(current)}; a revert "
            "only goes down (advance climbs, through the gates)"
        )
    new = dataclasses.replace(ladder.settings_for(plan, env.name, target), edge=dict(current.edge))
    if clear_hsts:
        if HSTS in env.edge:
            raise InputError(
                f"{env.name}: the edge owns {HSTS}, so clearing it (max-age=0) has to happen "
                "in the proxy or CDN configuration; rollout does not change the edge"
            )
        rest = {name: value for name, value in new.app.items() if name != HSTS}
        new = dataclasses.replace(new, app={HSTS: CLEAR_HSTS, **rest})
    out = Outcome(env.name, REVERT, current.stage, target, current.stage, dry_run=dry_run)
    out.changes = changes(current, new)
    if new.stage == current.stage and dict(new.app) == dict(current.app):
        out.ok, out.noop = True, True
        out.message = f"{env.name} is already at {_name(current)}; nothing to revert"
        return out
    out.notes, out.hsts_until = _hsts_notes(env, current, new, records, now, clear_hsts)
    if misfit:
        out.notes.insert(0, misfit)
    out.notes += _preload_notes(env, current, preload_list)

    def step(text: str) -> None:
        out.steps.append(text)
        say(text)

    edge_names = sorted(current.edge)
    if dry_run:
        if edge_names:
            out.steps.append(f"capture the live edge-owned headers: {', '.join(edge_names)}")
        out.steps += _write_steps(plan, env, new, settle)
        if edge_names:
            out.steps.append("confirm each edge-owned header survived: once, same value")
        out.commands = [_shell(env.apply)] if env.apply else []
        out.ok = True
        out.message = f"{env.name} would revert to {_name(new)}; nothing written (dry run)"
        return out

    before = None
    if edge_names:
        step(f"capture the live edge-owned headers: {', '.join(edge_names)}")
        before = confirm.capture(env, options)
    step(f"write {store.settings_path(plan, env.name)}: {_name(new)}")
    store.write_settings(plan, new)
    record = history.new_record(
        REVERT,
        current.stage,
        new.stage,
        reason=reason or "revert",
        hsts_until=out.hsts_until,
    )
    history.append(plan, env.name, record)
    applied, output = _apply(plan, env, new, apply_timeout, step)
    if not applied:
        out.notes.append(f"apply failed: {_first_line(output)}; the reverted file stays")

    app_only = dataclasses.replace(new, edge={})
    gone = set(current.app) - set(new.app) - env.edge
    step(f"wait up to {settle:g}s for the app-owned headers of {_name(new)} to show live")

    def look() -> tuple[Report, confirm.Capture, list[Check]]:
        report = verify(env, app_only, options=options, partial=True)
        after = confirm.again(env, before, options) if before else confirm.capture(env, options)
        return report, after, confirm.app_dropped(after, gone)

    def held(seen: tuple[Report, confirm.Capture, list[Check]]) -> bool:
        return seen[0].ok and not any(c.failed for c in seen[2])

    report, after, dropped = _settle(look, settle, held)
    found = [*report.checks, *dropped]
    if before is not None:
        step("confirm the edge-owned headers survived")
        found += [
            dataclasses.replace(c, probe="edge") for c in confirm.faults(after)
        ] + confirm.edge_survived(before, after, edge_names)
    out.checks, out.report = found, report
    out.stage = new.stage
    ok = applied and not any(c.failed for c in found) and not report.insecure
    record_verify(
        plan, env.name, new.stage, report, ok=ok,
        reason="" if applied else f"apply failed: {_first_line(output)}",
        apply_output="" if applied else output[-_OUTPUT_KEPT:],
    )  # fmt: skip
    out.ok = ok
    bad = next((c for c in found if c.failed), None)
    if ok:
        kept = f"; {len(edge_names)} edge-owned headers survived" if edge_names else ""
        out.message = f"{env.name} reverted to {_name(new)}, confirmed live{kept}"
        return out
    if bad is not None:
        what = f"{bad.probe} {bad.url} {bad.header or ''}: {bad.message}"
    elif report.insecure:
        what = "probed without certificate checks, which proves nothing to browsers"
    else:
        what = f"apply failed: {_first_line(output)}"
    out.message = f"{env.name} reverted to {_name(new)}, NOT confirmed: {' '.join(what.split())}"
    return out


def _hsts_notes(
    env: Environment,
    current: StageSettings,
    new: StageSettings,
    records: Sequence[history.HistoryRecord],
    now: datetime,
    clear: bool,
) -> tuple[list[str], str]:
    """What a revert cannot undo: browsers keep the longest max-age they have seen."""
    if HSTS in env.edge:
        value = current.edge.get(HSTS)
        if value is None:
            return [], ""
        return [f"the edge owns {HSTS} ({value}); a revert leaves it as it is"], ""
    was, will = _max_age(current.app.get(HSTS)), _max_age(new.app.get(HSTS))
    if not was or will >= was:
        return [], ""
    earlier = history.hsts_horizon(records, now)
    until = history.horizon_after(now, was)
    if earlier is not None and history.format_time(earlier) > until:
        until = history.format_time(earlier)
    now_sent = f"to {will}" if HSTS in new.app else "to nothing (no HSTS is sent)"
    notes = [
        f"max-age goes down from {was} {now_sent}: browsers keep the longest max-age they "
        f"have seen, so some enforce https for this host until {until} (the rollback "
        "horizon, in status and history)"
    ]
    if clear:
        notes.append(
            f"{CLEAR_HSTS} makes browsers that visit forget the policy; those that do not "
            f"visit keep it until {until}"
        )
    else:
        notes.append(f"only {CLEAR_HSTS} makes browsers forget it, and only those that visit")
    return notes, until


def _preload_notes(
    env: Environment, current: StageSettings, preload_list: Callable[[str], str] | None
) -> list[str]:
    value = current.headers().get(HSTS)
    try:
        preloaded = value is not None and hsts_grammar.parse(value).preload
    except HeaderValueError:
        preloaded = False
    if not preloaded:
        return []
    notes = [
        "the stage had preload: leaving browsers' preload lists takes months (ask at "
        "hstspreload.org/removal, then wait for browser releases); until then a revert "
        "changes nothing for preloaded browsers"
    ]
    hosts = dict.fromkeys(url.split("/")[2].split(":")[0].lower() for url in env.urls)
    if preload_list is not None:
        notes += [preload_list(host) for host in hosts]
    return notes


def _max_age(value: str | None) -> int:
    if value is None:
        return 0
    try:
        return hsts_grammar.parse(value).max_age
    except HeaderValueError:
        return 0


# shared steps ---------------------------------------------------------------------


def record_verify(
    plan: Plan,
    env_name: str,
    stage: Stage,
    report: Report | None,
    *,
    ok: bool | None = None,
    reason: str = "",
    apply_output: str = "",
) -> None:
    """Append a live check's result to the history; without certificate checks it is
    recorded but never counts as the stage's verification. No report: nothing was checked."""
    insecure = report is not None and report.insecure
    passed = (report is not None and report.ok) if ok is None else ok
    if reason:
        why = reason
    elif report is None:
        why = "not checked"
    elif passed:
        why = "all checks passed"
    else:
        why = f"{len(report.failures) or 'some'} checks failed"
    if insecure:
        why += f" {history.NOT_COUNTED}"
    record = history.new_record(
        VERIFY, stage, stage, reason=why, verified=passed and not insecure,
        apply_output=apply_output,
    )  # fmt: skip
    history.append(plan, env_name, record)


def _write_steps(plan: Plan, env: Environment, new: StageSettings, settle: float) -> list[str]:
    steps = [f"write {store.settings_path(plan, env.name)}: {_name(new)}"]
    if env.apply:
        steps.append(f"run apply: {_shell(env.apply)}")
    steps.append(f"wait up to {settle:g}s for {_name(new)} to show live")
    return steps


def _apply(
    plan: Plan, env: Environment, settings: StageSettings, timeout: float, step: Say
) -> tuple[bool, str]:
    """Run the plan's apply command (argv, no shell); (succeeded, what it printed)."""
    if not env.apply:
        return True, ""
    step(f"run apply: {_shell(env.apply)}")
    extra = {
        "ROLLOUT_ENVIRONMENT": env.name,
        "ROLLOUT_STAGE": str(stage_label(settings.stage)),
        "ROLLOUT_SETTINGS": str(store.settings_path(plan, env.name).absolute()),
        "ROLLOUT_PLAN": str(plan.path.absolute()),
    }
    try:
        proc = subprocess.Popen(
            env.apply,
            cwd=plan.folder,
            env={**os.environ, **extra},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a timeout can stop whatever it started too
        )
    except OSError as exc:
        return False, f"{env.apply[0]}: cannot run: {exc.strerror or exc}"
    try:
        data, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        data, _ = proc.communicate()
        return False, f"timed out after {timeout:g}s\n{data.decode(errors='replace')}"
    text = data.decode(errors="replace")
    if proc.returncode != 0:
        return False, f"exited with {proc.returncode}\n{text}"
    return True, text


def _settle(look: Callable[[], T], seconds: float, held: Callable[[T], bool] | None = None) -> T:
    """Look until what is seen holds or `seconds` pass; the last look either way."""
    holds = held or (lambda seen: bool(getattr(seen, "ok", False)))
    deadline = time.monotonic() + seconds
    while True:
        seen = look()
        left = deadline - time.monotonic()
        if holds(seen) or left <= 0:
            return seen
        time.sleep(min(_POLL, left))


def _name(settings: StageSettings) -> str:
    return "stage off" if settings.stage is None else f"stage {settings.stage} ({settings.name})"


def _shell(argv: Sequence[str] | None) -> str:
    import shlex

    return shlex.join(argv or ())


def _first_line(text: str) -> str:
    """How apply ended and the last thing it printed (errors come last), on one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "no output"
    shown = lines[:1] + lines[-1:] if len(lines) > 1 else lines
    return " / ".join(shown)[:300]


def _utcnow() -> datetime:
    return datetime.now(UTC)
