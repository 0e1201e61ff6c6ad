"""`rollout plan`, `rollout status` and `rollout history`: read-only views of a plan."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rollout.cli import Options, common_options, env_argument
from rollout.names import stage_label as _label

if TYPE_CHECKING:
    from rollout.ladder import Stage
    from rollout.plan import Environment, Plan


def _gates(gates: tuple[str, ...]) -> str:
    from rollout.ladder import GATE_TEXT, VERIFIED

    if gates == (VERIFIED,):
        return "current stage verified"
    return ", ".join(GATE_TEXT[g] for g in gates)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


@click.command("plan")
@env_argument(required=False)
@common_options(probes=False, output=True)
def plan_command(opts: Options, env_name: str | None) -> None:
    """Print the ladder: each stage's headers and the gates to enter it.

    With ENV, each header is marked with the layer that owns it there (app or edge),
    and the gates include ENV's `after`.

    \b
    Example:
      rollout plan
      rollout plan production --json
    """
    from rollout import ladder
    from rollout.names import CSP, CSP_RO, HSTS

    plan = opts.load_plan()
    environment = opts.environment(plan, env_name) if env_name is not None else None
    stages = ladder.build(plan)
    if opts.json:
        opts.emit_json(_plan_json(plan, stages, environment))
        return

    def owner(name: str) -> str:
        if environment is None:
            return ""
        return " (edge)" if name in environment.edge else " (app)"

    has_csp = CSP in plan.policy.headers()
    rows = [["#", "name", HSTS, "csp", "gate to enter it"]]
    rows.append(["off", "off", "-", "-", "-"])
    for s in stages:
        gates = ladder.gates_for(s, environment) if environment else s.gates
        csp = s.csp_mode + owner(CSP) if has_csp else "-"
        rows.append([str(s.index), s.name, s.hsts + owner(HSTS), csp, _gates(gates)])
    enforce = next((s.name for s in stages if s.csp_enforcing), None)
    lines = [f"Ladder of {plan.path}: {len(stages)} stages", ""]
    if environment is not None:
        lines[0] = f"Ladder of {plan.path} for {environment.name}: {len(stages)} stages"
        lines[1:1] = _env_summary(environment)  # ends with its own blank line
        lines.pop()
    lines += [*_table(rows), "", "From stage 0 on, every stage also sends:"]
    for name, value in ladder.headers_for(plan, stages[0]).items():
        if name == HSTS:
            continue
        if name == CSP_RO:
            when = f"enforcing from {enforce}" if enforce else "report-only at every stage"
            name = f"{CSP}[-report-only]"
            value = f"{value}  ({when})"
        lines.append(f"  {name}{owner(name.split('[')[0])}: {value}")
    lines += [f"Note: {line}" for line in plan.ladder.unreached_defaults()]
    if plan.ladder.include_subdomains_from is False:
        lines.append("Note: include-subdomains-from = false: no stage adds includeSubDomains")
    if environment is not None:
        off = ladder.settings_for(plan, environment.name, None)
        sent = ", ".join(off.edge) or "nothing"
        lines.append(f"At stage off the app sends nothing and the edge sends: {sent}")
    opts.emit("\n".join(lines) + "\n")


def _env_summary(env: Environment) -> list[str]:
    from rollout.durations import format_duration

    soak = (
        '"max-age" (the current stage\'s max-age)'
        if env.soak is None
        else format_duration(env.soak)
    )
    out = [
        f"  urls: {', '.join(env.urls) or 'none'}",
        f"  edge owns: {', '.join(sorted(env.edge)) or 'nothing'}; the app owns the rest",
        f"  soak: {soak}",
    ]
    if env.after:
        out.append(f"  after: {env.after} (never passes the stage it has reached and verified)")
    return [*out, ""]


def _plan_json(plan: Plan, stages: list[Stage], env: Environment | None) -> dict[str, Any]:
    from rollout import ladder

    rows: list[dict[str, Any]] = []
    for index in [None, *range(len(stages))]:
        stage = None if index is None else stages[index]
        row: dict[str, Any] = {"stage": _label(index), "name": stage.name if stage else "off"}
        if env is None:
            row["headers"] = ladder.headers_for(plan, stage)
            row["gates"] = list(stage.gates) if stage else []
        else:
            s = ladder.settings_for(plan, env.name, index)
            row |= {"app": dict(s.app), "edge": dict(s.edge)}
            row["gates"] = list(ladder.gates_for(stage, env)) if stage else []
        rows.append(row)
    out: dict[str, Any] = {"plan": str(plan.path), "ok": True, "stages": rows}
    out["notes"] = plan.ladder.unreached_defaults()
    if env is not None:
        out["environment"] = env.name
    return out


@click.command("status")
@env_argument(required=False)
@common_options(probes=False, output=True)
def status(opts: Options, env_name: str | None) -> None:
    """Show each environment's stage, headers, last verify and when it may advance.

    Reads the settings and history files only; nothing is probed. In --json, "ok" says
    whether the current stage's last verify passed.

    \b
    Example:
      rollout status
      rollout status production --json
    """
    from rollout import planview, status

    before = _plan_bytes(opts.plan_path)
    plan = opts.load_plan()
    opts.emit(status.document(plan, env_name, as_json=opts.json))
    if before is not None and _plan_bytes(opts.plan_path) == before:
        # The plan validated from these bytes: the next `rollout status` of the same bytes
        # answers without pydantic (rollout.planview; the console script, rollout.__main__).
        planview.remember(opts.plan_path, before, plan)


def _plan_bytes(path: Path) -> bytes | None:
    from rollout.settings import read_regular

    try:
        return read_regular(path)[0]
    except (OSError, ValueError):
        return None


@click.command("history")
@env_argument()
@common_options(probes=False, output=True)
def history(opts: Options, env_name: str) -> None:
    """List ENV's transitions and verify results: when, who, from, to, why, verified.

    \b
    Example:
      rollout history staging
      rollout history production --json
    """
    from rollout import history as log
    from rollout.status import printable

    plan = opts.load_plan()
    name = plan.environment(env_name).name
    loaded = log.load(plan, name)
    records = loaded.records
    if opts.json:
        opts.emit_json(
            {
                "environment": name,
                "ok": True,
                "history": [r.to_json() for r in records],
                "torn_history_lines": loaded.torn,
            }
        )
        return
    # A line cut short by a crash mid-append is skipped, never silently: say which.
    torn = (
        f"! torn line(s) {', '.join(map(str, loaded.torn))} skipped (a crash mid-append)\n"
        if loaded.torn
        else ""
    )
    if not records:
        opts.emit(f"{name}: no {'readable ' if torn else ''}history yet\n{torn}")
        return
    rows = [["time", "action", "from", "to", "verified", "user", "reason"]]
    for r in records:
        row = [r.time, r.action, str(_label(r.from_)), str(_label(r.to))]
        row += ["yes" if r.verified else "no", r.user, r.reason]
        rows.append([printable(cell) for cell in row])
    opts.emit("\n".join(_table(rows)) + "\n" + torn)
