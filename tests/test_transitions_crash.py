"""advance and revert killed with SIGKILL anywhere in their run, against real loopback servers.

A killed command can leave the old stage file or the new one, never a torn one; the history
then either agrees with the file or `rollout status` says the transition was interrupted;
the kernel releases the lock with the process; and the next advance or revert brings the
environment back to a consistent, verified stage. The kill points are random (the seed is
in every assertion message, and ROLLOUT_CRASH_SEED replays one), drawn across the whole run
time of the command as measured first on the same machine. CI runs 24 trials; the deep run
(ROLLOUT_DEEP=1, see tests/reliability/budget.py) runs 100.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from rollout import history, lockfile, settings
from rollout.names import Stage
from tests import transitions_support as ts
from tests.conftest import Result
from tests.reliability import figures
from tests.reliability.budget import budget

pytestmark = pytest.mark.integration

TRIALS = budget(24, 100)
SETTLE = ("--settle", "10")
Rollout = Callable[..., Result]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ts.Site]:
    """The staging environment on loopback, watching `<plan folder>/staging.toml`."""
    site = ts.start_site(tmp_path_factory.mktemp("crash") / "stages")
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def site(servers: ts.Site) -> ts.Site:
    """The running site with staging back at a fresh stage off."""
    servers.reset()
    return servers


def _status(site: ts.Site, rollout: Rollout) -> dict[str, object]:
    """`rollout status staging --json`, through the CLI's own entry point."""
    shown = rollout("status", "staging", "--json", "--plan", str(site.plan_path))
    assert shown.code == 0, shown
    out = json.loads(shown.out)
    assert isinstance(out, dict)
    return out


def _timed(site: ts.Site, *args: str) -> float:
    """Run one command that must succeed; how long it took, start to exit."""
    started = time.monotonic()
    ran = ts.run(site.plan_path, *args, *SETTLE)
    took = time.monotonic() - started
    assert ran.code == 0, str(ran)
    return took


def _transitions(records: list[history.HistoryRecord]) -> int:
    return sum(r.action in history.TRANSITIONS for r in records)


def _assert_clean(site: ts.Site, rollout: Rollout, where: str) -> None:
    """Consistent (file and history agree), verified, unlocked, no leftovers."""
    report = _status(site, rollout)
    assert report["interrupted"] is None, f"{where}: {report}"
    assert report["in_progress"] is None, f"{where}: {report}"
    assert report["ok"] is True, f"{where}: the current stage is not verified: {report}"
    assert report["torn_history_lines"] == [], f"{where}: {report}"
    last = history.last_transition(site.records())
    assert last is not None and last.to == site.stage(), where
    assert site.temp_files() == [], where


def _assert_after_kill(site: ts.Site, rollout: Rollout, old: Stage, new: Stage, where: str) -> None:
    """Every promise a SIGKILL must not break, checked on the files and through status."""
    current = settings.load(site.stage_file())  # parses: the replace is atomic
    assert current is not None, f"{where}: the stage file is gone"
    assert current.stage in (old, new), f"{where}: stage {current.stage}, not {old} or {new}"
    log = history.load(site.plan, "staging")
    assert len(log.torn) <= 1, f"{where}: torn history lines {log.torn}"
    report = _status(site, rollout)
    last = history.last_transition(log.records)
    agrees = last is not None and last.to == current.stage
    # status detects every disagreement between the file and the history, and only those.
    assert (report["interrupted"] is None) == agrees, f"{where}: {report}"
    if not agrees:
        assert str(report["command"]).startswith("rollout verify staging, then "), where
    assert report["in_progress"] is None, f"{where}: {report}"
    # A kill between creating the temp file and renaming it (a fraction of a millisecond)
    # leaves that one file; the next write sweeps it, which _assert_clean checks.
    assert len(site.temp_files()) <= 1, f"{where}: leftover temp files {site.temp_files()}"
    assert lockfile.holder(site.lock_file()) is None, f"{where}: the lock is still held"
    with lockfile.hold(site.lock_file(), "staging", timeout=0.5):
        pass  # the next command gets the lock at once
    ts.wait_serving(site, current, where)  # the middleware serves what the file says


def _phase(
    records: list[history.HistoryRecord],
    before: int,
    file_stage: Stage,
    old: Stage,
    new: Stage,
    where: str,
) -> str:
    """Where in the command the kill landed, as far as the files tell."""
    added = _transitions(records) - before
    if file_stage == old and added == 0:
        return "before the write"
    if file_stage == new and added == 0:
        return "between the write and its history record"
    if file_stage == new and added == 1:
        last = records[-1]
        if last.action == "verify" and last.to == new:
            return "after the final verify record"
        return "after the history record, before the final verify"
    raise AssertionError(f"{where}: stage {file_stage} and {added} new transitions: no phase")


def test_sigkill_anywhere_leaves_a_consistent_recoverable_environment(
    site: ts.Site, rollout: Rollout
) -> None:
    """SIGKILL at a random point of an advance or a revert leaves the old or the new stage,
    a history that agrees or is reported interrupted, a free lock and no temp file, and the
    next command recovers a verified stage."""
    seed = int(os.environ.get("ROLLOUT_CRASH_SEED", random.SystemRandom().randrange(2**32)))
    rng = random.Random(seed)
    # A real climb to stage 2, timing each kind of command on this machine as it goes.
    _timed(site, "advance", "staging")
    durations = {"advance": [_timed(site, "advance", "staging")]}
    durations["advance"].append(_timed(site, "advance", "staging"))
    durations["revert"] = [_timed(site, "revert", "staging")]
    durations["advance"].append(_timed(site, "advance", "staging"))
    assert site.stage() == 2
    normal = {kind: max(took) for kind, took in durations.items()}
    phases: collections.Counter[str] = collections.Counter()
    followed: collections.Counter[str] = collections.Counter()

    for trial in range(TRIALS):
        kind = "advance" if trial % 2 == 0 else "revert"
        records = site.records()
        old = site.stage()
        assert old is not None and old < 6, f"seed={seed} trial={trial}: at stage {old}"
        new = old + 1 if kind == "advance" else history.last_verified_below(records, old)
        delay = rng.uniform(0.0, 1.2 * normal[kind])
        where = f"seed={seed} trial={trial} {kind} {old}->{new} kill after {delay:.3f}s"
        proc = ts.spawn(site.plan_path, kind, "staging", *SETTLE)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        ran = ts.finish(proc)
        if ran.code == -signal.SIGKILL:
            phases[
                _phase(site.records(), _transitions(records), site.stage(), old, new, where)
            ] += 1
        else:
            assert ran.code == 0, f"{where}: finished before the kill, but:\n{ran}"
            phases["finished before the kill"] += 1
        _assert_after_kill(site, rollout, old, new, where)

        # Recovery, steering back into stages 1..3: a real transition, proven live.
        here = site.stage()
        assert here is not None, where
        fix = "revert" if here >= 3 else "advance"
        if fix == "advance":
            expected = here + 1
        else:
            expected = history.last_verified_below(site.records(), here)
        after = ts.run(site.plan_path, fix, "staging", *SETTLE)
        assert after.code == 0, f"{where}: the follow-up {fix} failed:\n{after}"
        assert site.stage() == expected, f"{where}: the follow-up {fix}:\n{after}"
        followed[fix] += 1
        _assert_clean(site, rollout, f"{where}, after the follow-up {fix}")

    counts = ", ".join(f"{phase}: {n}" for phase, n in sorted(phases.items()))
    figures.record(
        "crash",
        seed=seed,
        trials=TRIALS,
        phases=dict(phases),
        follow_ups=dict(followed),
        normal_seconds=normal,
    )
    print(
        f"\nSIGKILL trials (seed={seed}, normal run advance {normal['advance']:.2f}s, "
        f"revert {normal['revert']:.2f}s): {counts}; follow-ups {dict(followed)}"
    )
    assert sum(phases.values()) == TRIALS, f"seed={seed}: {counts}"


# Kill exactly between the stage file's replace and its history record: the window is a
# few hundred microseconds, so random kills rarely land in it. The command is the real CLI,
# in its own process; only `history.append` is wrapped, to SIGKILL the process just before
# it appends the transition.
KILL_BEFORE_TRANSITION_RECORD = """\
import os, signal, sys
from rollout import history
real = history.append
def append(plan, env, record):
    if record.action in history.TRANSITIONS:
        os.kill(os.getpid(), signal.SIGKILL)
    real(plan, env, record)
history.append = append
from rollout.cli import main
sys.argv[0] = "rollout"
main(sys.argv[1:])
"""


@pytest.mark.parametrize("kind", ["advance", "revert"])
def test_kill_between_stage_file_and_history_is_reported_and_recovered(
    site: ts.Site, rollout: Rollout, kind: str
) -> None:
    """A command killed after replacing the stage file but before recording it leaves the
    new file, which status reports as interrupted, and the next command recovers."""
    for _ in range(3):
        assert ts.run(site.plan_path, "advance", "staging", *SETTLE).code == 0
    old, new = (2, 3) if kind == "advance" else (2, 1)
    before = site.records()
    argv = [sys.executable, "-c", KILL_BEFORE_TRANSITION_RECORD, kind, "staging"]
    proc = subprocess.Popen(
        [*argv, "--plan", str(site.plan_path), *SETTLE],
        cwd=ts.ROOT,
        env={**os.environ, "PYTHONPATH": str(ts.ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = ts.finish(proc)
    assert killed.code == -signal.SIGKILL, str(killed)
    assert site.stage() == new
    records = site.records()
    assert _transitions(records) == _transitions(before)
    assert _phase(records, _transitions(before), new, old, new, kind) == (
        "between the write and its history record"
    )
    _assert_after_kill(site, rollout, old, new, f"{kind} killed before its record")
    report = _status(site, rollout)
    last = history.last_transition(records)
    assert last is not None and (last.action, last.to) == ("advance", old)
    assert report["interrupted"] == (
        f"the stage file says stage {new} but the last transition recorded "
        f"(advance at {last.time}) went to {old}"
    )
    assert report["command"] == (
        "rollout verify staging, then rollout advance staging or rollout revert staging"
    )
    # Either command recovers; take the one that moves back towards where the killed one
    # started, as an operator cleaning up after it would.
    fix = "revert" if kind == "advance" else "advance"
    recovered = ts.run(site.plan_path, fix, "staging", *SETTLE)
    assert recovered.code == 0, str(recovered)
    assert site.stage() == old, str(recovered)
    _assert_clean(site, rollout, f"after the {fix} that followed the killed {kind}")
