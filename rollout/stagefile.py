"""The stage file checked against the plan: grammar, owner, and the ladder's own values.

`rollout.settings` checks that a stage file is well-formed on its own; this module checks
that it fits the plan, so that neither a hand edit nor a bug in a writer can make an
environment skip a rung of the ladder. `rollout.store` runs it on every read and write.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from rollout import headers, ladder
from rollout.errors import HeaderValueError, SettingsError
from rollout.names import CLEAR_HSTS, CSP, CSP_FAMILY, CSP_RO, HSTS, OFF
from rollout.settings import StageSettings

if TYPE_CHECKING:
    # Annotations only: `rollout status` reads a cached, validated plan without pydantic.
    from rollout.plan import Environment, Plan


def check(plan: Plan, env: Environment, current: StageSettings, path: Path) -> StageSettings:
    """A settings file's contents checked against the plan; SettingsError names file and key.

    The stage is recorded by name: if the ladder moved it, the number follows the name.
    Each value must pass its grammar, sit with the owner the plan gives it, and, where the
    ladder sets it (HSTS, the CSP mode), be the stage's own, so a hand edit cannot skip a
    rung. Other values may lag the plan: that is drift (see `drift`), not a refusal.
    """
    if current.environment != env.name:
        raise SettingsError(
            f"{path}: environment: {current.environment!r} does not match the file name "
            f"({env.name!r})"
        )
    stages = ladder.build(plan)
    if current.stage is None:
        if current.name != OFF:
            raise SettingsError(f"{path}: name: {current.name!r}, but the stage is off")
        _check_headers(plan, env, current, None, stages, path)
        return current
    stage = ladder.stage_by_name(stages, current.name)
    if stage is None:
        names = ", ".join(s.name for s in stages)
        raise SettingsError(
            f"{path}: name: stage {current.name!r} is no longer in the plan's ladder "
            f"({names}); restore the plan's [ladder], or {_START_AGAIN}"
        )
    if stage.index != current.stage:
        current = dataclasses.replace(current, stage=stage.index)
    _check_headers(plan, env, current, stage, stages, path)
    return current


# Deleting the file is always possible and safe: the middleware and every command read a
# missing file as stage off, and the ladder restarts at stage 0 with all its gates.
_START_AGAIN = "delete the file to start again from stage off"
_UNDO = f"undo the edit, or {_START_AGAIN}"
_UNDO_LADDER = f"undo the edit to this file or to the plan's [ladder], or {_START_AGAIN}"


def _check_headers(
    plan: Plan,
    env: Environment,
    current: StageSettings,
    stage: ladder.Stage | None,
    stages: list[ladder.Stage],
    path: Path,
) -> None:
    """Refuse values that break their grammar, their owner, or the stage's ladder values."""

    def fail(key: str, why: str) -> SettingsError:
        return SettingsError(f"{path}: {key}: {why}")

    # A header the plan no longer sends has no owner to check: it is drift.
    sent = {HSTS, *CSP_FAMILY, *plan.policy.headers()}
    where = f"environments.{env.name}.edge"
    for table, owned in (("app", current.app), ("edge", current.edge)):
        for name, value in owned.items():
            key = f"{table}.{name}"
            try:
                headers.validate(name, value)
            except HeaderValueError as exc:
                raise fail(key, f"{exc}; {_UNDO}") from None
            if name in sent and (table == "edge") != (name in env.edge):
                owner = "the edge" if name in env.edge else "the app"
                raise fail(
                    key,
                    f"the plan gives this header to {owner} (see {where}); undo the edit to "
                    f"this file or to the plan, or {_START_AGAIN}",
                )
            if table == "app" and stage is None and not _cleared(name, value):
                raise fail(key, f"stage off sends no app-owned headers; {_UNDO}")
    csp_names = {CSP if s.csp_enforcing else CSP_RO for s in stages}
    for table, owned in (("app", current.app), ("edge", current.edge)):
        modes = sorted(set(owned) & CSP_FAMILY)
        # Once enforcing, a report-only header beside the enforcing one is the plan's next
        # policy (content-security-policy-next); before that CSP goes out in one mode.
        if len(modes) > 1 and not (stage is not None and stage.csp_enforcing):
            raise fail(f"{table}.{modes[1]}", f"also {modes[0]}; CSP is sent in one mode")
        if modes and table == "app" and stage is not None:
            wanted = CSP if stage.csp_enforcing else CSP_RO
            if modes[0] != wanted:
                raise fail(
                    f"app.{modes[0]}",
                    f"{_at(stage)} sends CSP {stage.csp_mode}, as {wanted}; {_UNDO_LADDER}",
                )
        elif modes and table == "edge" and modes[0] not in csp_names:
            mode = "enforcing" if modes[0] == CSP else "report-only"
            raise fail(
                f"edge.{modes[0]}", f"no stage of the ladder sends CSP {mode}; {_UNDO_LADDER}"
            )
    _check_hsts(env, current, stage, stages, fail)


def _check_hsts(
    env: Environment,
    current: StageSettings,
    stage: ladder.Stage | None,
    stages: list[ladder.Stage],
    fail: Callable[[str, str], SettingsError],
) -> None:
    """The app sends the stage's HSTS; the edge any stage's (a revert leaves the edge as is)."""
    if HSTS in env.edge:
        value = current.edge.get(HSTS)
        if value is not None and all(headers.compare(HSTS, s.hsts, value) for s in stages):
            raise fail(f"edge.{HSTS}", f"{value!r} is no stage's value; {_UNDO_LADDER}")
        if value is None and stage is not None:
            raise fail(
                f"edge.{HSTS}", f"missing; {_at(stage)} sends {stage.hsts!r}; {_UNDO_LADDER}"
            )
        return
    value = current.app.get(HSTS)
    if stage is None or (value is not None and _cleared(HSTS, value)):
        return  # off sends nothing, and max-age=0 (revert's --clear-hsts) fits any stage
    if value is None:
        raise fail(f"app.{HSTS}", f"missing; {_at(stage)} sends {stage.hsts!r}; {_UNDO_LADDER}")
    differs = headers.compare(HSTS, stage.hsts, value)
    if differs is not None:
        raise fail(
            f"app.{HSTS}", f"{value!r} is not {_at(stage)}'s value: {differs}; {_UNDO_LADDER}"
        )


def _at(stage: ladder.Stage) -> str:
    return f"stage {stage.index} ({stage.name})"


def _cleared(name: str, value: str) -> bool:
    """An app-owned HSTS of max-age=0: what a revert writes to make browsers forget."""
    return name == HSTS and headers.compare(HSTS, CLEAR_HSTS, value) is None


def drift(plan: Plan, current: StageSettings) -> list[str]:
    """How a checked settings file differs from what the plan now gives its stage.

    One line per header, `app.NAME: ...` or `edge.NAME: ...`; [] when the file is what
    the plan would write. The edge's HSTS and CSP mode are left out: they stay where the
    last advance put them, whatever the stage.
    """
    wanted = ladder.settings_for(plan, current.environment, current.stage)
    lines: list[str] = []
    for table, want, have in (
        ("app", dict(wanted.app), dict(current.app)),
        ("edge", _edge_key(wanted.edge), _edge_key(current.edge)),
    ):
        for name in sorted(set(want) | set(have)):
            if table == "edge" and (name == HSTS or (name == CSP and current.stage is None)):
                continue  # left by the last advance (or a revert to off), not by the plan
            if table == "app" and name in have and _cleared(name, have[name]):
                continue  # max-age=0 was written by a revert on purpose, not by the plan
            if name not in have:
                lines.append(f"{table}.{name}: the plan sends {want[name]!r}; the file does not")
            elif name not in want:
                lines.append(f"{table}.{name}: the plan no longer sends it")
            else:
                differs = headers.compare(name, want[name], have[name])
                if differs is not None:
                    lines.append(f"{table}.{name}: {differs.replace('the stage', 'the plan')}")
    return lines


def _edge_key(owned: Mapping[str, str]) -> dict[str, str]:
    # The edge's CSP mode is the stage it was left at: compare the policy text only (unless
    # it sends both, the enforcing policy and the next one).
    if set(owned) >= CSP_FAMILY:
        return dict(owned)
    return {CSP if name in CSP_FAMILY else name: value for name, value in owned.items()}
