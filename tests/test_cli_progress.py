"""Progress on a terminal: a line on stderr for runs past a second; nothing in pipes or --json.

The command runs in a subprocess whose stderr is a real pseudo-terminal (pty), as a user's
shell gives it, and whose stdout is a pipe.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rollout.cli.progress import ERASE
from tests.conftest import Result
from tests.servers import RawServer, Reply, redirect, tls_material

pytestmark = pytest.mark.integration

HOST = "staging.example.test"


def run_on_a_terminal(*args: str, columns: int = 200) -> tuple[int, str, str]:
    """Run `rollout ARGS` with stderr on a pty; return the exit code, stdout and the terminal."""
    master, slave = pty.openpty()
    # The terminal's size as a user's reports it (0: one that reports none, like some ptys).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environ = os.environ | {"TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollout", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=environ,
    )
    os.close(slave)
    seen: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, out.decode(), b"".join(seen).decode(errors="replace")


@pytest.fixture
def servers() -> Iterator[tuple[RawServer, RawServer]]:
    """An https server whose page never answers (each probe waits out --timeout), and an
    http redirector."""
    with (
        RawServer(
            tls=tls_material().server, routes={"/": Reply(fault="hang")}, fallback=Reply(404)
        ) as https,
        RawServer(fallback=redirect(f"https://{HOST}/")) as http,
    ):
        yield https, http


@pytest.fixture
def plan(write_plan: Callable[..., Path], servers: tuple[RawServer, RawServer]) -> Path:
    """A plan with no policy headers beyond X-Frame-Options, reaching the servers."""
    https, http = servers
    return write_plan(f"""\
[policy]
x-frame-options = "DENY"

[environments.staging]
urls = ["https://{HOST}/"]
connect-to = ["{HOST}:443:127.0.0.1:{https.port}", "{HOST}:80:127.0.0.1:{http.port}"]
cacert = "{tls_material().ca_path}"
""")


@pytest.mark.parametrize("columns", [200, 0])
def test_a_slow_verify_shows_progress_on_the_terminal(plan: Path, columns: int) -> None:
    """A verify that waits two seconds draws a progress line on the terminal (also one that
    reports no size), redrawn in place, and erases it before the summary; stdout (a pipe)
    never sees it."""
    code, out, terminal = run_on_a_terminal(
        "verify", "staging", "--stage", "off", "--timeout", "2", "--plan", str(plan),
        columns=columns,
    )  # fmt: skip
    assert code == 1
    assert "verify staging stage off: probing 1 page and 1 origin (" in terminal
    assert terminal.count(ERASE) >= 2  # drawn, then erased
    last = terminal.rsplit(ERASE, 1)[1]
    assert last.startswith("staging off: FAILED: ")
    assert ERASE not in out and "probing" not in out


def test_json_on_a_terminal_shows_no_progress(plan: Path) -> None:
    """With --json there is no progress line, even on a terminal."""
    code, out, terminal = run_on_a_terminal(
        "verify", "staging", "--stage", "off", "--timeout", "2", "--json", "--plan", str(plan)
    )
    assert code == 1 and out.startswith("{")
    assert ERASE not in terminal and "probing" not in terminal


def test_a_pipe_gets_no_progress(plan: Path, rollout: Callable[..., Result]) -> None:
    """When stderr is not a terminal (a pipe, a CI log), nothing but the summary goes there."""
    result = rollout("verify", "staging", "--stage", "off", "--timeout", "2", "--plan", str(plan))
    assert result.code == 1
    assert result.err.splitlines() == [result.err.strip()]
    assert result.err.startswith("staging off: FAILED: ") and "\r" not in result.err


def test_a_slow_advance_shows_the_step_it_waits_on(
    plan: Path, servers: tuple[RawServer, RawServer]
) -> None:
    """An advance waiting for its new stage to show live shows that step, with its time,
    on the terminal; the → step lines stay on stdout."""
    https, _ = servers
    https.routes["/"] = Reply()  # answers, but never with the new stage's headers
    code, out, terminal = run_on_a_terminal(
        "advance", "staging", "--settle", "2", "--plan", str(plan)
    )
    assert code == 1  # the new stage never showed: rolled back
    assert "→ wait up to 2s for stage 0 (hsts-30s) to show live" in out.splitlines()
    assert "wait up to 2s for stage 0 (hsts-30s) to show live (" in terminal
    assert ERASE not in out


def test_advance_output_file_gets_the_result_and_stderr_the_steps(
    plan: Path, servers: tuple[RawServer, RawServer], rollout: Callable[..., Result]
) -> None:
    """advance --output FILE: FILE holds the result (gates, changes, verdict), the → step
    lines go to stderr, stdout stays empty."""
    https, _ = servers
    https.routes["/"] = Reply()  # never shows stage 0: rolled back, exit 1
    target = plan.parent / "advance.txt"
    result = rollout(
        "advance", "staging", "--settle", "0", "--output", str(target), "--plan", str(plan)
    )
    assert result.code == 1
    assert result.out == ""
    assert "→ verify stage off live (the current stage)" in result.err.splitlines()
    text = target.read_text()
    assert text.startswith("gates:\n") and "→" not in text
    assert text.splitlines()[-1].startswith("✗ staging rolled back to stage off")
