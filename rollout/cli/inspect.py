"""`rollout plan`, `rollout status` and `rollout history`: read-only views of a plan."""

from __future__ import annotations

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


def _status(plan: Plan, name: str) -> dict[str, Any]:
    """One environment's status as the JSON object `status --json` prints."""
    from datetime import UTC, datetime

    from rollout import gates, history, ladder, lockfile, store

    env = plan.environment(name)
    written = store.read_settings(plan, name)
    current = written or ladder.settings_for(plan, name, None)
    log = history.load(plan, name)
    records = log.records
    stages = ladder.build(plan)
    now = datetime.now(UTC)
    verified = history.verified(records, current.stage)
    last = history.last_verify(records)
    since = gates.entered_at(records, current.stage, current.updated)
    holder = lockfile.holder(store.lock_path(plan, name))
    horizon = history.hsts_horizon(records, now)
    out: dict[str, Any] = {
        "environment": name,
        "stage": _label(current.stage),
        "name": current.name,
        "ok": verified,
        "since": history.format_time(since) if since else None,
        "app": dict(current.app),
        "edge": dict(current.edge),
        "last_verify": None
        if last is None
        else {
            "time": last.time,
            "stage": _label(last.to),
            "ok": last.verified,
            "insecure": last.reason.endswith(history.NOT_COUNTED),
        },
        # Until when some browsers keep a longer max-age than the one sent now (a revert).
        "hsts_until": history.format_time(horizon) if horizon else None,
        # A command died between writing the stage file and recording it.
        "interrupted": None if holder is not None else history.interrupted(records, current.stage),
        "in_progress": None
        if holder is None
        else {k: holder.get(k) for k in ("pid", "user", "host", "command", "since")},
        "torn_history_lines": log.torn,
        # The plan changed since the file was written: what the next write will change.
        "drift": store.drift(plan, written) if written is not None else [],
        "next": None,
        "command": None,
    }
    # The CSP reports gate ahead (docs/reports.md), with its figures.
    csp = gates.csp_status(plan, env, current, since, now)
    out["csp_reports"] = None if csp is None else csp.to_json()
    nxt = ladder.next_stage(stages, current.stage)
    if nxt is None:
        out["command"] = f"none: {name} is at the top of the ladder"
        if ladder.policy_step(plan, env, current) is not None:  # a CSP step is still ahead
            out["command"] = f"rollout advance {name}"
        return out
    here = ladder.stage_at(plan, current.stage)
    soak = gates.soak(env, here, since, now) if ladder.SOAK in nxt.gates else None
    waiting = [] if soak is None or soak.ok else ["soak"]
    if env.after is not None and not gates.after(plan, env, nxt).ok:
        waiting.append("after")
    if csp is not None and not csp.ok and csp.figures:
        waiting.append(ladder.CSP_REPORTS)
    out["next"] = {
        "stage": nxt.index,
        "name": nxt.name,
        "gates": list(ladder.gates_for(nxt, env)),
        "may_advance_at": history.format_time(soak.ends_at) if soak and soak.ends_at else None,
        "waiting_for": waiting,
    }
    if out["interrupted"]:
        out["command"] = (
            f"rollout verify {name}, then rollout advance {name} or rollout revert {name}"
        )
    elif holder is not None:
        out["command"] = f"wait: another command holds {name}'s lock"
    elif not waiting:
        out["command"] = f"rollout advance {name}"
    else:
        why = []
        if "soak" in waiting and soak is not None:
            why.append(f"soak ({soak.reason})")
        if "after" in waiting:
            why.append(f"{env.after} to reach and verify stage {nxt.index}")
        if ladder.CSP_REPORTS in waiting:
            why.append(f"clean CSP reports (rollout reports {name})")
        out["command"] = f"wait for {' and '.join(why)}, then rollout advance {name}"
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
    plan = opts.load_plan()
    names = [plan.environment(env_name).name] if env_name is not None else list(plan.environments)
    reports = [_status(plan, name) for name in names]
    if opts.json:
        if env_name is not None:
            opts.emit_json(reports[0])
        else:
            opts.emit_json({"ok": all(r["ok"] for r in reports), "environments": reports})
        return
    opts.emit("\n\n".join("\n".join(_status_lines(r)) for r in reports) + "\n")


def _status_lines(r: dict[str, Any]) -> list[str]:
    head = f"{r['environment']}: stage {r['stage']}"
    if r["stage"] != "off":
        head += f" {r['name']}"
    if r["since"]:
        head += f", since {r['since']}"
    lines = [head]
    for owner in ("app", "edge"):
        lines += [f"  {owner:<5} {name}: {value}" for name, value in r[owner].items()]
    if not r["app"] and not r["edge"]:
        lines.append("  (no headers)")
    lines += [f"  drift {line}" for line in r["drift"]]
    if r["interrupted"]:
        lines.append(f"  ! interrupted transition: {r['interrupted']}")
    if r["in_progress"]:
        p = r["in_progress"]
        lines.append(f"  ! in progress: pid {p['pid']} running {p['command']} since {p['since']}")
    if r["torn_history_lines"]:
        torn = ", ".join(map(str, r["torn_history_lines"]))
        lines.append(f"  ! history: torn line(s) {torn} skipped (a crash mid-append)")
    if r["hsts_until"]:
        lines.append(
            f"  ! rollback horizon: some browsers enforce a longer max-age until {r['hsts_until']}"
        )
    last = r["last_verify"]
    if last is None:
        lines.append("  last verify: never")
    else:
        mark = "✓ passed" if last["ok"] else "✗ failed"
        if last["insecure"]:
            mark = "! made without certificate checks, not counted"
        lines.append(f"  last verify: {mark} at stage {last['stage']}, {last['time']}")
    csp = r.get("csp_reports")
    if csp is not None:
        lines.append(f"  csp-reports: {'✓' if csp['ok'] else '✗'} {_printable(csp['reason'])}")
    nxt = r["next"]
    if nxt is None:
        lines.append("  next: none, the top of the ladder")
        return lines
    text = f"  next: stage {nxt['stage']} {nxt['name']}"
    if nxt["may_advance_at"]:
        text += f", soak over at {nxt['may_advance_at']}"
    return [*lines, text, f"  run: {r['command']}"]


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

    plan = opts.load_plan()
    name = plan.environment(env_name).name
    records = log.read(plan, name)
    if opts.json:
        opts.emit_json({"environment": name, "ok": True, "history": [r.to_json() for r in records]})
        return
    if not records:
        opts.emit(f"{name}: no history yet\n")
        return
    rows = [["time", "action", "from", "to", "verified", "user", "reason"]]
    for r in records:
        row = [r.time, r.action, str(_label(r.from_)), str(_label(r.to))]
        row += ["yes" if r.verified else "no", r.user, r.reason]
        rows.append([_printable(cell) for cell in row])
    opts.emit("\n".join(_table(rows)) + "\n")


def _printable(text: str) -> str:
    """A history field as one safe line: control and escape characters shown, not obeyed,
    so a planted record cannot forge rows or repaint the terminal."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
