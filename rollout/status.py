"""`rollout status` as a library: each environment's stage, headers, last verify, next step.

Reads the plan's files only (stage files, histories, locks) and imports neither click nor
pydantic, so the console script can answer `rollout status` from a remembered plan
(`rollout.planview`) in a fraction of the time the full CLI takes to start.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rollout.names import stage_label as _label

if TYPE_CHECKING:
    from rollout.plan import Plan


def document(plan: Plan, env_name: str | None, *, as_json: bool) -> str:
    """What `rollout status [ENV] [--json]` prints: the text, or one JSON object."""
    names = [plan.environment(env_name).name] if env_name is not None else list(plan.environments)
    reports = [environment_status(plan, name) for name in names]
    if as_json:
        obj = (
            reports[0]
            if env_name is not None
            else {"ok": all(r["ok"] for r in reports), "environments": reports}
        )
        return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    return "\n\n".join("\n".join(status_lines(r)) for r in reports) + "\n"


def environment_status(plan: Plan, name: str) -> dict[str, Any]:
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


def status_lines(r: dict[str, Any]) -> list[str]:
    """One environment's status as the lines `rollout status` prints."""
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
        lines.append(f"  csp-reports: {'✓' if csp['ok'] else '✗'} {printable(csp['reason'])}")
    nxt = r["next"]
    if nxt is None:
        lines.append("  next: none, the top of the ladder")
        return lines
    text = f"  next: stage {nxt['stage']} {nxt['name']}"
    if nxt["may_advance_at"]:
        text += f", soak over at {nxt['may_advance_at']}"
    return [*lines, text, f"  run: {r['command']}"]


def printable(text: str) -> str:
    """A recorded field as one safe line: control and escape characters shown, not obeyed,
    so a planted record cannot forge rows or repaint the terminal."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
