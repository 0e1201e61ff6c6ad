"""advance and verify racing each other: real processes, real locks, real loopback servers.

Each `rollout` command runs as its own `python -m rollout` process against
`rollout.demo.servers` (uvicorn with rollout's ASGI middleware behind an aiohttp TLS edge),
so the per-environment flock, the atomic stage file and the append-only history are
exercised exactly as two operators (or a cron job and an operator) would exercise them.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from rollout import history, ladder, lockfile
from tests import transitions_support as ts
from tests.conftest import Result
from tests.reliability import figures

pytestmark = pytest.mark.integration

ADVANCE = ("advance", "staging", "--settle", "10", "--lock-timeout", "120")
LADDER_TOP = 6  # the default ladder: stages 0..6


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ts.Site]:
    """Two local environments, staging and production, each watching its own stage file."""
    site = ts.start_site(
        tmp_path_factory.mktemp("concurrency") / "stages", ("staging", "production")
    )
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def site(servers: ts.Site) -> ts.Site:
    """The running site with both environments back at a fresh stage off."""
    for env in servers.locals:
        servers.reset(env)
    return servers


def test_eight_simultaneous_advances_then_eight_simultaneous_reverts(site: ts.Site) -> None:
    """Eight advances started together from off take turns: seven climb one stage each, the
    eighth finds the top, and the history is an unbroken, untorn, bracketed chain; then
    eight reverts started together step down the same way, to off."""
    procs = [ts.spawn(site.plan_path, *ADVANCE) for _ in range(8)]
    runs = [ts.finish(p, timeout=150) for p in procs]
    shown = "\n\n".join(map(str, runs))
    assert [r.code for r in runs] == [0] * 8, shown

    last_lines = [r.out.strip().splitlines()[-1] for r in runs]
    top = [line for line in last_lines if "at the top of the ladder" in line]
    nothing_to_do = "✓ staging is at the top of the ladder (stage 6 (hsts-1y)); nothing to do"
    assert top == [nothing_to_do], shown
    climbed = sorted(line for line in last_lines if line not in top)
    names = ["hsts-30s", "hsts-5m", "hsts-1h", "hsts-1d", "hsts-1w", "hsts-30d", "hsts-1y"]
    assert climbed == sorted(
        f"✓ staging is at stage {i} ({name}), verified live" for i, name in enumerate(names)
    ), shown
    assert site.stage() == LADDER_TOP

    raw = ts.raw_history(site)  # every line whole JSON: nothing lost, nothing torn
    records = site.records()
    assert len(raw) == len(records) == 21, shown  # per climb: verify, advance, verify
    advances = [r for r in records if r.action in history.TRANSITIONS]
    assert [r.action for r in advances] == ["advance"] * 7
    chain = [(r.from_, r.to) for r in advances]
    assert chain == [(None, 0), (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    ts.assert_transitions_bracketed(records)
    assert all(r.verified for r in records if r.action == "verify"), records
    assert lockfile.holder(site.lock_file()) is None
    _eight_simultaneous_reverts(site)


def _eight_simultaneous_reverts(site: ts.Site) -> None:
    """Eight reverts started together from the top take turns: seven step down one verified
    stage each, to off, the eighth finds nothing to revert, and the history is one chain."""
    before = len(site.records())
    procs = [ts.spawn(site.plan_path, *REVERT) for _ in range(8)]
    runs = [ts.finish(p, timeout=150) for p in procs]
    shown = "\n\n".join(map(str, runs))
    assert [r.code for r in runs] == [0] * 8, shown
    nothing = [r for r in runs if "nothing to revert" in r.out]
    assert len(nothing) == 1 and "staging is already at stage off" in nothing[0].out, shown
    assert site.stage() is None
    records = _assert_one_chain(site, shown)
    reverts = [(r.from_, r.to) for r in records[before:] if r.action in history.TRANSITIONS]
    assert reverts == [(6, 5), (5, 4), (4, 3), (3, 2), (2, 1), (1, 0), (0, None)], shown
    assert all(r.action == "revert" for r in records[before:] if r.action != "verify")
    ts.wait_serving(site, ladder.settings_for(site.plan, "staging", None), "after the reverts")


def test_two_environments_advance_side_by_side(
    site: ts.Site, rollout: Callable[..., Result]
) -> None:
    """Advances of two environments run at once, and one environment's lock never stops
    the other's advance, while a second advance of the locked one gives up naming the holder."""
    both = [ts.spawn(site.plan_path, "advance", env, "--settle", "10") for env in site.locals]
    runs = [ts.finish(p) for p in both]
    assert [r.code for r in runs] == [0, 0], "\n\n".join(map(str, runs))
    assert (site.stage("staging"), site.stage("production")) == (0, 0)

    staging_before = site.stage_file().read_bytes()
    history_before = site.history_file().read_bytes()
    with ts.lock_held(site, "staging"):
        shown = rollout("status", "staging", "--json", "--plan", str(site.plan_path))
        assert shown.code == 0, shown
        assert '"pid": ' + str(os.getpid()) in shown.out, shown.out

        production = ts.run(site.plan_path, "advance", "production", "--settle", "10")
        assert production.code == 0, str(production)
        assert "production is at stage 1 (hsts-5m), verified live" in production.out

        blocked = ts.run(
            site.plan_path, "advance", "staging", "--settle", "10", "--lock-timeout", "1"
        )
        assert blocked.code == 1, str(blocked)
        refused = "rollout: staging: another command holds the lock: "
        assert blocked.err.startswith(refused), str(blocked)
        assert f"pid {os.getpid()} " in blocked.err, str(blocked)
        assert "gave up after 1s" in blocked.err, str(blocked)
        assert "Traceback" not in blocked.err, str(blocked)
        assert blocked.out == "", str(blocked)  # not even the pre-check ran

    assert site.stage_file().read_bytes() == staging_before
    assert site.history_file().read_bytes() == history_before
    assert site.temp_files("staging") == []
    assert site.stage("production") == 1
    chain = [(r.from_, r.to) for r in site.records("production") if r.action == "advance"]
    assert chain == [(None, 0), (0, 1)]
    ts.assert_transitions_bracketed(site.records("production"))
    # And the lock is free again for the next command on staging.
    again = ts.run(site.plan_path, "advance", "staging", "--settle", "10")
    assert again.code == 0, str(again)
    assert site.stage("staging") == 1


def _wait_until_held_by(site: ts.Site, proc: subprocess.Popen[str]) -> bool:
    """Poll until proc holds staging's lock (True) or has exited without us seeing it."""
    deadline = time.monotonic() + ts.COMMAND_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        holder = lockfile.holder(site.lock_file())
        if holder is not None and holder.get("pid") == proc.pid:
            return True
        time.sleep(0.01)
    return False


def test_verify_during_an_advance_never_lands_inside_the_transition(site: ts.Site) -> None:
    """Verify runs started before and while an advance holds the lock record their result
    only outside the transition: verify(from), advance, verify(to) stay adjacent."""
    overlapped = 0
    verifies: list[ts.Ran] = []
    for _ in range(3):
        advance = ts.spawn(site.plan_path, "advance", "staging", "--settle", "10")
        early = [ts.spawn(site.plan_path, "verify", "staging") for _ in range(2)]
        if _wait_until_held_by(site, advance):
            overlapped += 1
        late = [ts.spawn(site.plan_path, "verify", "staging") for _ in range(2)]
        done = ts.finish(advance)
        assert done.code == 0, str(done)
        for proc in early + late:
            ran = ts.finish(proc)
            # 1: a verify that probed while the live site was between two stages.
            assert ran.code in (0, 1), str(ran)
            assert "Traceback" not in ran.err, str(ran)
            verifies.append(ran)
    assert site.stage() == 2
    records = site.records()
    ts.assert_transitions_bracketed(records)
    # A verify record always names the stage the environment was at when it was recorded.
    at = None
    for r in records:
        if r.action in history.TRANSITIONS:
            at = r.to
        else:
            assert r.to == at, [(x.action, x.from_, x.to) for x in records]
    checks = [r for r in records if r.action == "verify"]
    standalone = len(checks) - 2 * 3
    # Failed results can only be standalone ones: each advance's own checks passed (exit 0).
    stale = sum(not r.verified for r in checks)
    print(
        f"verify during advance: {overlapped}/3 rounds seen holding the lock, "
        f"{standalone}/{len(verifies)} standalone verify results recorded, "
        f"{sum(r.code == 1 for r in verifies)} exited 1, {stale} failed results recorded"
    )
    assert len(ts.raw_history(site)) == len(records)


REVERT = ("revert", "staging", "--settle", "10", "--lock-timeout", "120")
VERIFY = ("verify", "staging", "--lock-timeout", "120")


def _climb(site: ts.Site, to: int) -> None:
    """Advance staging from off to stage `to`, one real transition at a time."""
    for _ in range(to + 1):
        ran = ts.run(site.plan_path, *ADVANCE)
        assert ran.code == 0, str(ran)
    assert site.stage() == to


def _assert_one_chain(site: ts.Site, shown: str) -> list[history.HistoryRecord]:
    """The history is whole JSON line by line, every transition starts where the previous
    one ended, each is bracketed by its verifies, and the stage file is where the last one
    went; the lock is free and no temp file is left."""
    raw = ts.raw_history(site)
    records = site.records()
    assert len(raw) == len(records), shown
    moves = [r for r in records if r.action in history.TRANSITIONS]
    for before, after in itertools.pairwise(moves):
        assert after.from_ == before.to, (shown, [(m.action, m.from_, m.to) for m in moves])
    ts.assert_transitions_bracketed(records)
    assert moves and site.stage() == moves[-1].to, shown
    assert lockfile.holder(site.lock_file()) is None
    assert site.temp_files() == []
    return records


def test_advances_reverts_and_verifies_at_once_stay_one_chain(site: ts.Site) -> None:
    """Four advances, four reverts and four verifies started together (12-way) are
    serialised by the lock: the transitions form one unbroken chain, each bracketed by its
    verifies, every verify record names the stage current when it was recorded, and no
    history line is lost or torn."""
    _climb(site, 3)
    before = len(site.records())
    kinds = [ADVANCE, REVERT, VERIFY] * 4
    procs = [ts.spawn(site.plan_path, *args) for args in kinds]
    runs = [ts.finish(p, timeout=200) for p in procs]
    shown = "\n\n".join(map(str, runs))
    for args, ran in zip(kinds, runs, strict=True):
        # A verify may probe while the live site is between two stages: 1 is honest there.
        assert ran.code in ((0, 1) if args is VERIFY else (0,)), shown
        assert "Traceback" not in ran.err, shown
    records = _assert_one_chain(site, shown)
    new = records[before:]
    moved = [r for r in new if r.action in history.TRANSITIONS]
    noops = sum("nothing to do" in r.out or "nothing to revert" in r.out for r in runs)
    assert len(moved) + noops == 8, shown
    assert (
        sum(r.action == "advance" for r in moved) + sum("nothing to do" in r.out for r in runs) == 4
    ), shown
    at = 3
    for r in new:  # each standalone verify names the stage it was recorded at
        if r.action in history.TRANSITIONS:
            at = r.to
        else:
            assert r.to == at, shown
    # An advance records a verify before and after it, a revert only after (it waits on no
    # gate); what is left is the four verify commands', each recorded exactly once.
    advances = sum(m.action == "advance" for m in moved)
    verifies = sum(r.action == "verify" for r in new)
    assert verifies - 2 * advances - (len(moved) - advances) == 4, shown
    verify_exits = [r.code for a, r in zip(kinds, runs, strict=True) if a is VERIFY]
    chain = [(m.action, m.from_, m.to) for m in moved]
    print(f"12-way mixed: {len(moved)} transitions {chain}, {noops} no-ops, verify {verify_exits}")
    figures.record("concurrency-mixed", transitions=chain, noops=noops, verify_exits=verify_exits)
