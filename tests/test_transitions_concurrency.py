"""advance and verify racing each other: real processes, real locks, real loopback servers.

Each `rollout` command runs as its own `python -m rollout` process against
`rollout.demo.servers` (uvicorn with rollout's ASGI middleware behind an aiohttp TLS edge),
so the per-environment flock, the atomic stage file and the append-only history are
exercised exactly as two operators (or a cron job and an operator) would exercise them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from rollout import history, lockfile
from tests import transitions_support as ts
from tests.conftest import Result

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


def test_eight_simultaneous_advances_climb_one_stage_each(site: ts.Site) -> None:
    """Eight advances started together from off take turns: seven climb one stage each, the
    eighth finds the top, and the history is an unbroken, untorn, bracketed chain."""
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
