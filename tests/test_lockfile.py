"""The per-environment lock: a kernel lock that excludes processes and threads, names its holder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rollout import lockfile
from rollout.errors import LockTimeout, SettingsError

# Takes the lock 20 times, logging "enter PID" and "exit PID" around a short random sleep.
CONTENDER = """
import os, random, sys, time
from pathlib import Path
from rollout import lockfile

lock, log, ready, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
pid = os.getpid()

def append(line):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)

(ready / str(pid)).touch()
while not go.exists():
    time.sleep(0.001)
for _ in range(20):
    with lockfile.hold(lock, "staging", timeout=60):
        append(f"enter {pid}\\n")
        time.sleep(random.uniform(0, 0.003))
        append(f"exit {pid}\\n")
"""

# Takes the lock as `rollout advance staging` would, says so, and holds it until killed.
HOLDER = """
import sys, time
from pathlib import Path
from rollout import lockfile

sys.argv = ["/usr/local/bin/rollout", "advance", "staging"]
with lockfile.hold(Path(sys.stdin.readline().strip()), "staging", timeout=10):
    print("held", flush=True)
    time.sleep(120)
"""

# Holds the flock without writing any record: what a reader sees mid-takeover.
BARE_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.stdin.readline().strip(), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    """Where the staging lock lives."""
    return tmp_path / "staging.lock"


@pytest.fixture
def spawn_holder(lock: Path) -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    """Start a process that holds the lock until it is killed; kills it after the test."""
    procs: list[subprocess.Popen[str]] = []

    def spawn(code: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(f"{lock}\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "held\n"
        return proc

    yield spawn
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def promptly(action: Callable[[], object], within: float = 5.0) -> BaseException | None:
    """Run action in a daemon thread; fail if it has not finished within seconds."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # handed back to the test
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert not thread.is_alive(), f"still blocked after {within}s"
    return raised[0] if raised else None


def test_processes_take_turns(tmp_path: Path, lock: Path) -> None:
    """Six processes taking the lock 20 times each never overlap: each enter is then its exit."""
    log, ready, go = tmp_path / "log", tmp_path / "ready", tmp_path / "go"
    ready.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONTENDER, str(lock), str(log), str(ready), str(go)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(ready.iterdir())) < len(procs) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()  # all start contending at once
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert [(proc.returncode, err) for proc, (_, err) in zip(procs, results, strict=True)] == [
        (0, "")
    ] * len(procs)
    lines = log.read_text().splitlines()
    assert len(lines) == 6 * 20 * 2
    overlaps = [
        (i, lines[i], lines[i + 1])
        for i in range(0, len(lines), 2)
        if not (lines[i].startswith("enter ") and lines[i + 1] == "exit " + lines[i][6:])
    ]
    assert overlaps == []
    assert lock.exists()


def test_killed_holder_releases_at_once(
    lock: Path, spawn_holder: Callable[[str], subprocess.Popen[str]]
) -> None:
    """A holder killed with SIGKILL needs no breaking: the next command gets in at once."""
    proc = spawn_holder(HOLDER)
    assert lockfile.holder(lock) is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    started = time.monotonic()
    with lockfile.hold(lock, "staging", timeout=0.5):
        assert time.monotonic() - started < 0.5
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert lock.exists()


def test_timeout_names_the_holder(
    lock: Path, spawn_holder: Callable[[str], subprocess.Popen[str]]
) -> None:
    """Waiting past the timeout says which pid holds the lock, running what, since when (exit 1)."""
    proc = spawn_holder(HOLDER)
    with (
        pytest.raises(LockTimeout) as caught,
        lockfile.hold(lock, "staging", timeout=0.3),
    ):
        pass
    message = str(caught.value)
    assert re.fullmatch(
        rf"staging: another command holds the lock: pid {proc.pid} \(\S+@\S+\) "
        rf"running `rollout advance staging` since \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ; "
        rf"gave up after 0\.3s \(lock file {re.escape(str(lock))}\)",
        message,
    ), message
    assert caught.value.exit_code == 1
    assert "delete" not in message and "remove" not in message


def test_timeout_without_a_record_says_unknown_holder(
    lock: Path, spawn_holder: Callable[[str], subprocess.Popen[str]]
) -> None:
    """A holder whose record cannot be read is 'an unknown holder', and still waited for."""
    spawn_holder(BARE_HOLDER)
    with (
        pytest.raises(LockTimeout, match=r"^staging: another command holds the lock: an unknown "),
        lockfile.hold(lock, "staging", timeout=0.1),
    ):
        pass
    assert lockfile.holder(lock) == {}


def test_reentrant_in_one_thread_other_threads_wait(lock: Path) -> None:
    """The holding thread may enter again; another thread gets in only after it leaves."""
    entered = threading.Event()
    order: list[str] = []

    def other() -> None:
        with lockfile.hold(lock, "staging", timeout=10):
            order.append("other in")
            entered.set()

    thread = threading.Thread(target=other)
    with lockfile.hold(lock, "staging", timeout=1):
        with lockfile.hold(lock, "staging", timeout=1):  # no deadlock with itself
            thread.start()
            assert not entered.wait(0.3)
        assert json.loads(lock.read_text())["pid"] == os.getpid()  # still ours
        assert not entered.wait(0.2)
        order.append("main out")
    assert entered.wait(5)
    thread.join(5)
    assert order == ["main out", "other in"]
    assert lock.read_text() == ""  # no record outlives its holder; the file stays


def test_fifo_at_the_lock_path_is_refused(lock: Path) -> None:
    """A FIFO planted at the lock path is refused at once instead of hanging the command."""
    os.mkfifo(lock)
    for action in (
        lambda: lockfile.hold(lock, "staging", timeout=0.1).__enter__(),
        lambda: lockfile.holder(lock),
    ):
        raised = promptly(action)
        assert isinstance(raised, SettingsError)
        assert str(raised) == f"{lock}: is not a regular file, not a lock file"


@pytest.mark.parametrize("target_exists", [False, True])
def test_symlink_at_the_lock_path_is_refused(
    tmp_path: Path, lock: Path, target_exists: bool
) -> None:
    """A symlink at the lock path is refused; its target is neither created nor written."""
    target = tmp_path / "elsewhere"
    if target_exists:
        target.write_text("precious")
    lock.symlink_to(target)
    for action in (
        lambda: lockfile.hold(lock, "staging", timeout=0.1).__enter__(),
        lambda: lockfile.holder(lock),
    ):
        raised = promptly(action)
        assert isinstance(raised, SettingsError)
        assert str(raised) == f"{lock}: is a symlink, not a lock file"
    if target_exists:
        assert target.read_text() == "precious"
    else:
        assert not target.exists()


def test_holder_names_who_holds_it(
    lock: Path, spawn_holder: Callable[[str], subprocess.Popen[str]]
) -> None:
    """holder() is None when the lock is absent or free (creating nothing), else the record."""
    assert lockfile.holder(lock) is None
    assert not lock.exists()
    with lockfile.hold(lock, "staging", timeout=1):
        pass
    assert lockfile.holder(lock) is None
    proc = spawn_holder(HOLDER)
    record = lockfile.holder(lock)
    assert record is not None
    assert (record["pid"], record["command"]) == (proc.pid, "rollout advance staging")
    assert set(record) == {"pid", "user", "host", "command", "since"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write any file")
def test_lock_file_of_another_user_still_locks(lock: Path) -> None:
    """A lock file this user cannot write (another user's 0o644) still locks, without a record."""
    lock.touch(0o444)
    with lockfile.hold(lock, "staging", timeout=1):
        assert lockfile.holder(lock) == {}
    assert lockfile.holder(lock) is None
