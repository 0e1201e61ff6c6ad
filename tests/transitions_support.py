"""Shared by the transition concurrency and crash tests: a real loopback site, its plan, and
the `rollout` command line run as separate processes (so they can race and be killed).

The site is `rollout.demo.servers`: uvicorn serving pages through rollout's ASGI middleware
(which watches `<plan folder>/<env>.toml`), behind an aiohttp TLS edge that owns two headers,
with an http redirector and a subdomain. Nothing here sleeps to decide an outcome: every
wait is a bounded poll of a condition, or a process wait with a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollout import history, lockfile, settings
from rollout.demo import servers
from rollout.demo.servers import LocalEnvironment
from rollout.history import HistoryRecord
from rollout.plan import Plan, load_plan

EDGE = {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}
HOSTS = {"staging": "shop.demo.test", "production": "prod.demo.test"}
COMMAND_TIMEOUT = 60.0  # seconds: a healthy command takes one or two
PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent  # the project, so `-m rollout` imports it

POLICY = """\
[policy]
content-security-policy = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
base-uri 'self'; frame-ancestors 'none'"
permissions-policy = "geolocation=(), camera=(), microphone=()"
referrer-policy = "strict-origin-when-cross-origin"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
csp-report-uri = "/csp-report"
"""


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def environment_table(name: str, local: LocalEnvironment, cacert: str) -> str:
    """One `[environments.NAME]` table reaching `local`, as the demo writes it."""
    return (
        f"\n[environments.{name}]\n"
        f"urls = {_toml_list([f'https://{local.host}/', f'https://{local.host}/account'])}\n"
        f"edge = {_toml_list(list(EDGE))}\n"
        f"subdomains = {_toml_list([local.subdomain])}\n"
        f"connect-to = {_toml_list(local.connect_to())}\n"
        f"cacert = {json.dumps(cacert)}\n"
        'soak = "0s"\n'
    )


@dataclass
class Site:
    """Running servers per environment, and the plan folder whose stage files they watch."""

    folder: Path
    locals: dict[str, LocalEnvironment] = field(default_factory=dict)

    @property
    def plan_path(self) -> Path:
        return self.folder / "plan.toml"

    @property
    def plan(self) -> Plan:
        return load_plan(self.plan_path)

    def stage_file(self, env: str = "staging") -> Path:
        return self.folder / f"{env}.toml"

    def history_file(self, env: str = "staging") -> Path:
        return self.folder / f"{env}.history.jsonl"

    def lock_file(self, env: str = "staging") -> Path:
        return self.folder / f"{env}.lock"

    def stage(self, env: str = "staging") -> int | None:
        """The stage the stage file names (None: off, or no file yet)."""
        current = settings.load(self.stage_file(env))
        return None if current is None else current.stage

    def records(self, env: str = "staging") -> list[HistoryRecord]:
        return history.read(self.plan, env)

    def temp_files(self, env: str = "staging") -> list[str]:
        """Leftovers of an interrupted atomic replace: `.<env>.toml.*.tmp`."""
        return sorted(p.name for p in self.folder.glob(f".{env}.toml.*.tmp"))

    def stop(self) -> None:
        for local in self.locals.values():
            local.stop()

    def reset(self, env: str = "staging") -> None:
        """Back to a fresh stages folder for env: no stage file, history or lock; stage off
        live (the middleware sends no app-owned header once it sees the file gone)."""
        for path in (self.stage_file(env), self.history_file(env), self.lock_file(env)):
            path.unlink(missing_ok=True)
        for name in self.temp_files(env):
            (self.folder / name).unlink(missing_ok=True)
        local = self.locals[env]
        deadline = time.monotonic() + 10.0
        while "strict-transport-security" in live_headers(local):
            assert time.monotonic() < deadline, f"{env}: the app still sends HSTS after a reset"
            time.sleep(0.05)


def start_site(folder: Path, envs: Sequence[str] = ("staging",)) -> Site:
    """Start one local environment per env (each watching `<folder>/<env>.toml`, each with
    its own CA) and write the plan for them into `<folder>/plan.toml`."""
    folder.mkdir(parents=True, exist_ok=True)
    site = Site(folder)
    tables = []
    try:
        for env in envs:
            host = HOSTS[env]
            # servers.start writes its CA as ca.pem into the folder it is given: one each.
            ca_folder = folder if env == "staging" else folder / f"{env}-ca"
            local = servers.start(
                ca_folder,
                folder / f"{env}.toml",
                EDGE,
                host=host,
                subdomain=f"api.{host}",
                check_interval=0.2,
            )
            site.locals[env] = local
            tables.append(environment_table(env, local, str(local.ca_path.relative_to(folder))))
        site.plan_path.write_text(POLICY + "".join(tables), encoding="utf-8")
        site.plan  # noqa: B018 - refused plans fail here, not in the first command
    except BaseException:
        site.stop()
        raise
    return site


def live_headers(local: LocalEnvironment, path: str = "/") -> dict[str, list[str]]:
    """The headers the edge answers `HEAD path` with, over TLS checked against the site's CA."""
    context = ssl.create_default_context(cafile=str(local.ca_path))
    with (
        socket.create_connection(("127.0.0.1", local.https_port), timeout=5.0) as raw,
        context.wrap_socket(raw, server_hostname=local.host) as tls,
    ):
        request = f"HEAD {path} HTTP/1.1\r\nHost: {local.host}\r\nConnection: close\r\n\r\n"
        tls.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    out: dict[str, list[str]] = {}
    for line in head:
        name, _, value = line.partition(":")
        out.setdefault(name.strip().lower(), []).append(value.strip())
    return out


def wait_serving(site: Site, expected: settings.StageSettings, where: str = "") -> None:
    """Poll (10 s at most) until the app, behind the edge, sends exactly the app-owned
    headers `expected` names: the middleware has picked up the stage file as it is."""
    local = site.locals[expected.environment]
    want = {name: [value] for name, value in expected.app.items()}
    deadline = time.monotonic() + 10.0
    while True:
        live = live_headers(local)
        seen = {name: live.get(name, []) for name in (*want, "strict-transport-security")}
        if all(seen[name] == want.get(name, []) for name in seen):
            return
        assert time.monotonic() < deadline, (
            f"{where}: the app serves {seen}, the stage file (stage {expected.stage}) says {want}"
        )
        time.sleep(0.05)


def command(plan: Path, *args: str) -> list[str]:
    """`python -m rollout ARGS --plan PLAN` as argv."""
    return [PYTHON, "-m", "rollout", *args, "--plan", str(plan)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}


def spawn(plan: Path, *args: str) -> subprocess.Popen[str]:
    """Start one `rollout` command in its own process; its output is piped."""
    return subprocess.Popen(
        command(plan, *args),
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass(frozen=True)
class Ran:
    """What one finished `rollout` process did."""

    argv: list[str]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.argv[2:])}\nexit {self.code}\n"
            f"--- stdout\n{self.out}--- stderr\n{self.err}"
        )


def finish(proc: subprocess.Popen[str], timeout: float = COMMAND_TIMEOUT) -> Ran:
    """Wait for a spawned command (killing it past timeout) and collect its output."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"{proc.args!r} did not finish in {timeout:g}s:\n{out}\n{err}"
        ) from None
    argv = [str(a) for a in proc.args] if isinstance(proc.args, list) else [str(proc.args)]
    return Ran(argv, proc.returncode, out, err)


def run(plan: Path, *args: str, timeout: float = COMMAND_TIMEOUT) -> Ran:
    """Run one `rollout` command to the end in its own process."""
    return finish(spawn(plan, *args), timeout)


def status(plan: Path, env: str = "staging") -> dict[str, Any]:
    """`rollout status ENV --json`, parsed."""
    ran = run(plan, "status", env, "--json")
    assert ran.code == 0, str(ran)
    out = json.loads(ran.out)
    assert isinstance(out, dict), str(ran)
    return out


def raw_history(site: Site, env: str = "staging") -> list[dict[str, Any]]:
    """Every line of the history file as written, each required to be one whole JSON object."""
    path = site.history_file(env)
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path}: the last line has no newline (torn)"
    lines = data.decode("utf-8").split("\n")[:-1]
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"{path}:{number}: not JSON ({exc}): {line!r}") from None
        assert isinstance(obj, dict), f"{path}:{number}: not an object: {line!r}"
        out.append(obj)
    return out


def assert_transitions_bracketed(records: Sequence[HistoryRecord]) -> None:
    """Each transition is directly preceded by a verify of its `from` stage and directly
    followed by a verify of its `to` stage, so no other record lands inside one."""
    shown = "\n".join(
        f"  {i}: {r.action} {r.from_}->{r.to} verified={r.verified}" for i, r in enumerate(records)
    )
    for i, r in enumerate(records):
        if r.action not in history.TRANSITIONS:
            continue
        assert i > 0, f"record {i} ({r.action}) has no verify before it:\n{shown}"
        before = records[i - 1]
        assert (before.action, before.to) == ("verify", r.from_), (
            f"record {i} ({r.action} {r.from_}->{r.to}) is not preceded by a verify of "
            f"{r.from_}:\n{shown}"
        )
        assert i + 1 < len(records), f"record {i} ({r.action}) has no verify after it:\n{shown}"
        after = records[i + 1]
        assert (after.action, after.to) == ("verify", r.to), (
            f"record {i} ({r.action} {r.from_}->{r.to}) is not followed by a verify of "
            f"{r.to}:\n{shown}"
        )


@contextlib.contextmanager
def lock_held(site: Site, env: str = "staging", timeout: float = 5.0) -> Any:
    """Hold env's lock in this (the test) process, as another rollout command would."""
    with lockfile.hold(site.lock_file(env), env, timeout=timeout):
        yield
