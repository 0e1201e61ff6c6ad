"""Real servers for the report tests: PostgreSQL from Debian's package, uvicorn in a thread.

`postgres()` runs `initdb` and `pg_ctl` on a temporary folder and a free port on
127.0.0.1 (as the `postgres` user when the tests run as root, since PostgreSQL refuses to
run as root), and stops the server afterwards. `serve(app)` runs an ASGI app under
uvicorn on an ephemeral port. Where a binary is missing the test skips with the reason,
and fails instead under CI=true.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def need(what: str, found: object, install: str) -> None:
    """Skip (or, under CI=true, fail) when a required program is absent."""
    if found:
        return
    reason = f"{what} is not installed ({install})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(reason)


def postgres_bin(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, else the newest under /usr/lib/postgresql."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    return versions[-1] if versions else None


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def free_port() -> int:
    """A port nothing listens on right now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server; yields its URL (user rollout, trust auth, loopback)."""
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    need("PostgreSQL (initdb, pg_ctl)", initdb and pg_ctl, "apt-get install -y postgresql")
    assert initdb is not None and pg_ctl is not None
    run_as: dict[str, Any] = {}
    folder = Path(tempfile.mkdtemp(prefix="rollout-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            need("a postgres system user (PostgreSQL refuses to run as root)", False, "postgresql")
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid}
    data = folder / "data"
    try:
        subprocess.run(
            [initdb, "-D", str(data), "-U", "rollout", "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            check=True, capture_output=True, timeout=120, **run_as,
        )  # fmt: skip
        port = _start(pg_ctl, data, folder, run_as)
        yield f"postgresql://rollout@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True, timeout=60, **run_as,
            )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def _start(pg_ctl: str, data: Path, folder: Path, run_as: dict[str, Any]) -> int:
    last = ""
    for _ in range(3):  # another process may take the free port first: pick again
        port = free_port()
        options = f"-F -p {port} -k {folder} -c listen_addresses=127.0.0.1"
        proc = subprocess.run(
            [pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-o", options, "-w",
             "-t", "60", "start"],
            capture_output=True, text=True, timeout=120, **run_as,
        )  # fmt: skip
        if proc.returncode == 0:
            return port
        last = proc.stdout + proc.stderr + (folder / "log").read_text(errors="replace")
    raise RuntimeError(f"PostgreSQL did not start: {last[-2000:]}")


class Served:
    """An ASGI app under uvicorn in a thread, on 127.0.0.1 and an ephemeral port."""

    def __init__(self, app: Any, **config: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {"lifespan": "off", "log_level": "warning", "access_log": False, **config}
        cfg = uvicorn.Config(app, log_config=None, **settings)
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
