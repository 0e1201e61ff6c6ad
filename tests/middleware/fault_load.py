"""Real servers with our middlewares, a bounded concurrent load, and stage-file faults.

Three servers watch one stage file, each a subprocess on a listening socket the test
bound to 127.0.0.1:0: Starlette under uvicorn (ASGI), Django under uvicorn (ASGI), and
Django under its own threaded WSGI server (the one `runserver` uses). Clients come as the
edge would, with `X-Forwarded-Proto: https` from 127.0.0.1, a trusted proxy, so every
app-owned header (HSTS too) is expected on every response. Run as root, the servers lose
the capabilities that let root read any file, so that a file with mode 000 is unreadable
to them as it would be to a service user.

`FAULTS` is the schedule: each step does one thing to the stage file and names the header
sets a response may carry meanwhile (the last good set, or the next good one; stage off
only after a deletion), the state the servers must reach before the next step, and the
error it must log.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import functools
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from rollout import ladder, settings
from rollout.middleware.admission import INCOMPLETE
from rollout.plan import parse_plan
from tests.conftest import PLAN  # staging: the app owns every header

ROOT = Path(__file__).resolve().parents[2]
NAMES = (
    "strict-transport-security",
    "content-security-policy",
    "content-security-policy-report-only",
    "permissions-policy",
    "referrer-policy",
    "x-frame-options",
    "x-content-type-options",
)
State = tuple[str | None, ...]  # a response's value for each of NAMES


def stage_text(env: str, stage: int | None) -> bytes:
    """The stage file rollout writes for env at stage, as bytes."""
    plan = parse_plan(PLAN, "stages/plan.toml")
    s = ladder.settings_for(plan, env, stage, updated="2026-01-01T00:00:00Z")
    return tomli_w.dumps(settings.dumps(s)).encode()


def state_of(text: bytes) -> State:
    """What a response carries when the servers serve this stage file."""
    app = settings.loads(text).app
    return tuple(app.get(name) for name in NAMES)


G1 = stage_text("staging", 3)
G2 = stage_text("staging", 4)  # CSP enforcing from here: another header name, too
OTHER_ENV = stage_text("production", 3)
OFF: State = (None,) * len(NAMES)
BAD_XFO = G1.replace(b'x-frame-options = "DENY"', b'x-frame-options = "ALLOWALL"')
# The issue as found: a hand edit to preload at stage 0, and an invalid X-Frame-Options.
HAND_EDIT = (
    G1.replace(b'stage = 3\nname = "hsts-1d"', b'stage = 0\nname = "hsts-30s"')
    .replace(b"max-age=86400", b"max-age=31536000; includeSubDomains; preload")
    .replace(b'x-frame-options = "DENY"', b'x-frame-options = "SAMEORIGIN please"')
)
assert BAD_XFO != G1 and HAND_EDIT.count(b"preload") == 1


# --- the servers --------------------------------------------------------------------

ASGI_SERVER = """\
import logging, socket, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from rollout.middleware.asgi import SecurityHeaders

logging.basicConfig(
    level=logging.INFO, stream=sys.stderr, format="%(created).3f %(levelname)s %(message)s"
)

async def home(request):
    return PlainTextResponse("ok")

app = SecurityHeaders(
    Starlette(routes=[Route("/", home)]), settings=sys.argv[2], check_interval=float(sys.argv[3])
)
config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
uvicorn.Server(config).run(sockets=[socket.socket(fileno=int(sys.argv[1]))])
"""

DJANGO_SETTINGS = """\
import os
SECRET_KEY = "rollout-fault-tests-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "fsite.urls"
INSTALLED_APPS = []
MIDDLEWARE = ["rollout.middleware.django.SecurityHeadersMiddleware"]
ROLLOUT_SETTINGS = os.environ["FAULT_STAGE_FILE"]
ROLLOUT_CHECK_INTERVAL = float(os.environ["FAULT_INTERVAL"])
ROLLOUT_TRUSTED_PROXIES = ["127.0.0.1"]
LOGGING = {
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "formatters": {"plain": {"format": "%(created).3f %(levelname)s %(message)s"}},
    "loggers": {"rollout.middleware": {"handlers": ["stderr"], "level": "INFO"}},
}
"""
DJANGO_URLS = """\
from django.http import HttpResponse
from django.urls import path

def home(request):
    return HttpResponse("ok")

urlpatterns = [path("", home)]
"""
DJANGO_ASGI_SERVER = """\
import os, socket, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "fsite.settings"
import uvicorn
from django.core.asgi import get_asgi_application

app = get_asgi_application()
config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
uvicorn.Server(config).run(sockets=[socket.socket(fileno=int(sys.argv[1]))])
"""
DJANGO_WSGI_SERVER = """\
import os, socket, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "fsite.settings"
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

app = get_wsgi_application()
server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet, bind_and_activate=False)
server.socket.close()
server.socket = socket.socket(fileno=int(sys.argv[1]))  # bound and listening already
server.server_address = server.socket.getsockname()
server.server_name, server.server_port = "127.0.0.1", server.server_address[1]
server.setup_environ()
server.set_app(app)
server.serve_forever()
"""
SERVERS = {
    "uvicorn+starlette": ASGI_SERVER,
    "uvicorn+django": DJANGO_ASGI_SERVER,
    "django-wsgi-threaded": DJANGO_WSGI_SERVER,
}


@dataclass
class Server:
    """One server subprocess, its port, and the lines it logged."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def log(self) -> list[str]:
        """The rollout.middleware lines logged so far (start-up included)."""
        return list(self.lines)


# linux/prctl.h and linux/capability.h
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _without_file_permission_bypass() -> None:
    """In the child, before exec: as root, drop the two capabilities that let root read
    any file, so a file with mode 000 is unreadable to the server, as to a service user."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@contextlib.contextmanager
def servers(folder: Path, stage_file: Path, interval: float) -> Iterator[list[Server]]:
    """Start every server in SERVERS on stage_file; stop them all on the way out."""
    (folder / "fsite").mkdir()
    (folder / "fsite" / "__init__.py").write_text("")
    (folder / "fsite" / "settings.py").write_text(DJANGO_SETTINGS)
    (folder / "fsite" / "urls.py").write_text(DJANGO_URLS)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "FAULT_STAGE_FILE": str(stage_file),
        "FAULT_INTERVAL": str(interval),
        "HOME": str(folder),
    }
    started: list[Server] = []
    try:
        for name, script in SERVERS.items():
            path = folder / f"{name}.py"
            path.write_text(script)
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            port = listener.getsockname()[1]
            proc = subprocess.Popen(
                [sys.executable, str(path), str(listener.fileno()), str(stage_file), str(interval)],
                cwd=folder,
                env=env,
                pass_fds=[listener.fileno()],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_without_file_permission_bypass,
            )
            listener.close()  # the child holds it now
            server = Server(name, proc, port)
            server.reader = threading.Thread(target=_read_lines, args=(server,), daemon=True)
            server.reader.start()
            started.append(server)
        for server in started:
            _wait_until_answering(server)
        yield started
    finally:
        for server in started:
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
        for server in started:
            try:
                server.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait(timeout=10)
            if server.reader is not None:
                server.reader.join(timeout=10)  # EOF once the server is gone
            if server.proc.stderr is not None:
                server.proc.stderr.close()


def _read_lines(server: Server) -> None:
    assert server.proc.stderr is not None
    for raw in server.proc.stderr:
        server.lines.append(raw.decode(errors="replace").rstrip("\n"))


def _wait_until_answering(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {server.log()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} does not answer: {server.log()}")


# --- the load -----------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """One response as a client saw it."""

    server: str
    started: float
    seconds: float
    status: int  # 0: no response (a connection error)
    state: State


class Load:
    """`workers` clients per server, each on a keep-alive connection, until stopped."""

    def __init__(self, targets: list[Server], workers: int, limit: int) -> None:
        self.responses: list[Response] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(s, limit), daemon=True)
            for s in targets
            for _ in range(workers)
        ]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def latest(self, server: str) -> State | None:
        """The state of the last response from server, if any."""
        for r in reversed(self.responses):
            if r.server == server and r.status:
                return r.state
        return None

    def _run(self, server: Server, limit: int) -> None:
        conn: http.client.HTTPConnection | None = None
        headers = {"X-Forwarded-Proto": "https", "Host": "app.test"}
        for _ in range(limit):  # bounded, whatever happens to the clock
            if self._stop.is_set():
                break
            fresh = conn is None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            started = time.monotonic()
            try:
                conn.request("GET", "/", headers=headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = None
                if not fresh:  # the server closed an idle keep-alive connection
                    continue
                self.errors.append(f"{server.name}: {exc!r}")
                self.responses.append(Response(server.name, started, 0.0, 0, OFF))
                continue
            seconds = time.monotonic() - started
            state = tuple(resp.getheader(name) for name in NAMES)
            self.responses.append(Response(server.name, started, seconds, resp.status, state))
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


# --- the faults ---------------------------------------------------------------------


def atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace path by rename, as rollout does."""
    tmp = path.with_name(f".{path.name}.fault.tmp")
    tmp.unlink(missing_ok=True)
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def in_place(path: Path, data: bytes, piece: int = 24, pause: float = 0.001) -> None:
    """Rewrite path in place, as `open(path, "w")` and a slow writer do: truncate, then
    a few bytes at a time."""
    with path.open("wb", buffering=0) as f:
        for start in range(0, len(data), piece):
            f.write(data[start : start + piece])
            time.sleep(pause)


def clear(path: Path) -> None:
    """Remove whatever is at path (a file, a FIFO, a symlink, a folder)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def replace_with(path: Path, make: Callable[[Path], None]) -> None:
    """Put something else at path by rename, made beside it first."""
    tmp = path.with_name(f".{path.name}.other")
    clear(tmp)
    make(tmp)
    os.replace(tmp, path)


REWRITES: list[float] = []  # when each in-place rewrite of the storm finished


def storm(path: Path, seconds: float) -> None:
    """Rewrite path in place, G2 and G1 by turns, for about `seconds`; ends on G2."""
    deadline = time.monotonic() + seconds
    turn = 0
    while True:
        in_place(path, (G2, G1)[turn % 2])
        REWRITES.append(time.monotonic())
        turn += 1
        if turn % 2 == 0:
            continue
        if time.monotonic() > deadline:
            return


@dataclass(frozen=True)
class Fault:
    """One step of the schedule."""

    name: str
    act: Callable[[Path, Path, float], None]  # (stage file, scratch folder, phase seconds)
    allowed: frozenset[State]
    reaches: State  # every server serves this before the next step
    logs: str | None = None  # a fragment of the one line it must have logged (once, ever)
    level: str = "ERROR"


def _symlink_to(target: Path) -> Callable[[Path], None]:
    return lambda tmp: tmp.symlink_to(target)


def _fault_steps() -> list[Fault]:
    s1, s2 = state_of(G1), state_of(G2)
    one, both = frozenset({s1}), frozenset({s1, s2})
    only2 = frozenset({s2})

    def act_atomic(data: bytes, mode: int = 0o644) -> Callable[[Path, Path, float], None]:
        return lambda path, scratch, seconds: atomic(path, data, mode)

    def loop(path: Path, scratch: Path, seconds: float) -> None:
        (scratch / "loop").unlink(missing_ok=True)
        (scratch / "loop").symlink_to(scratch / "loop")
        replace_with(path, _symlink_to(scratch / "loop"))

    def good_elsewhere(path: Path, scratch: Path, seconds: float) -> None:
        atomic(scratch / "g2.toml", G2)
        replace_with(path, _symlink_to(scratch / "g2.toml"))

    def restore_g2(path: Path, scratch: Path, seconds: float) -> None:
        # rename() replaces the symlink itself (it never follows the destination), so
        # the good file comes back with no moment where the path is missing: an unlink
        # first would be a real deletion, which is stage off by contract.
        atomic(path, G2)

    def cut_after_app(path: Path, scratch: Path, seconds: float) -> None:
        os.truncate(path, G1.index(b"[app]\n") + len(b"[app]\n"))

    def cut_inside_app(path: Path, scratch: Path, seconds: float) -> None:
        os.truncate(path, G1.index(b"permissions-policy"))  # HSTS and CSP stay

    return [
        Fault("quiet", lambda p, s, t: None, one, s1),
        Fault("invalid value", act_atomic(BAD_XFO), one, s1, "app.x-frame-options: "),
        Fault("restored", act_atomic(G1), one, s1),
        Fault(
            "hand edit: preload at stage 0",
            act_atomic(HAND_EDIT),
            one,
            s1,
            "'SAMEORIGIN please'",
        ),
        Fault("restored", act_atomic(G1), one, s1),
        Fault("truncated after [app]", cut_after_app, one, s1, INCOMPLETE),
        Fault("restored", act_atomic(G1), one, s1),
        Fault("truncated inside [app]", cut_inside_app, one, s1, INCOMPLETE),
        Fault("restored", act_atomic(G1), one, s1),
        Fault("emptied", lambda p, s, t: os.truncate(p, 0), one, s1, "empty (being rewritten"),
        Fault("another environment's file", act_atomic(OTHER_ENV), one, s1, "environment: "),
        Fault("rewritten in place, repeatedly", lambda p, s, t: storm(p, t), both, s2),
        Fault("unreadable (mode 000)", act_atomic(G1, 0o000), only2, s2, "cannot read: "),
        Fault("made readable (chmod)", lambda p, s, t: p.chmod(0o644), both, s1),
        Fault(
            "replaced by a FIFO",
            lambda p, s, t: replace_with(p, os.mkfifo),
            one,
            s1,
            "is not a regular file",
        ),
        Fault("symlink to a good file", good_elsewhere, both, s2),
        Fault(
            "symlink to nothing",
            lambda p, s, t: replace_with(p, _symlink_to(s / "missing.toml")),
            only2,
            s2,
            "is a symlink to a missing file",
        ),
        Fault("symlink loop", loop, only2, s2, "Too many levels of symbolic links"),
        # (A folder cannot replace a file by rename: in between the path is gone, which
        # is a deletion. The FIFO above covers "not a regular file".)
        Fault("restored", restore_g2, only2, s2),
        Fault(
            "deleted",
            lambda p, s, t: p.unlink(),
            frozenset({s2, OFF}),
            OFF,
            "deleted; stage off",
            "WARNING",
        ),
        Fault("restored", act_atomic(G1), frozenset({OFF, s1}), s1),
    ]


FAULTS = _fault_steps()


@dataclass
class Phase:
    """One step as run: when it started and ended (monotonic)."""

    fault: Fault
    started: float
    ended: float = 0.0


@dataclass
class Run:
    """Everything one run of the schedule saw."""

    phases: list[Phase]
    responses: list[Response]  # those started during the schedule (no warm-up)
    errors: list[str]
    logs: dict[str, list[str]]
    unreached: list[str]

    @functools.cached_property
    def starts(self) -> list[float]:
        """When each step started, in order."""
        return [p.started for p in self.phases]


def run_schedule(folder: Path, rounds: int, seconds: float, interval: float, workers: int) -> Run:
    """Start the servers, load them, and walk FAULTS `rounds` times, each step at least
    `seconds` long and until every server serves the state the step reaches."""
    stage_file = folder / "stages" / "staging.toml"
    stage_file.parent.mkdir()
    scratch = folder / "scratch"
    scratch.mkdir()
    for d in (folder, stage_file.parent, scratch):
        d.chmod(0o755)
    atomic(stage_file, G1)
    phases: list[Phase] = []
    unreached: list[str] = []
    with servers(folder, stage_file, interval) as running:
        names = [s.name for s in running]
        with Load(running, workers, limit=1_000_000) as load:
            time.sleep(seconds)  # warm-up, left out of the figures
            for _ in range(rounds):
                for fault in FAULTS:
                    phase = Phase(fault, time.monotonic())
                    phases.append(phase)
                    fault.act(stage_file, scratch, seconds)
                    time.sleep(seconds)
                    deadline = time.monotonic() + 30  # a bound, never a timing claim
                    while any(load.latest(n) != fault.reaches for n in names):
                        if time.monotonic() > deadline:
                            late = [n for n in names if load.latest(n) != fault.reaches]
                            unreached.append(f"{fault.name}: {', '.join(late)}")
                            break
                        time.sleep(0.02)
                    phase.ended = time.monotonic()
        logs = {s.name: s.log() for s in running}
    start = phases[0].started
    responses = [r for r in load.responses if r.started >= start]
    return Run(phases, responses, list(load.errors), logs, unreached)


@contextlib.contextmanager
def shared_folder() -> Iterator[Path]:
    """A folder the servers can reach as `nobody` (pytest's tmp_path is 0700 to root)."""
    folder = Path(tempfile.mkdtemp(prefix="rollout-faults-"))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- what held ----------------------------------------------------------------------


def _index(run: Run, moment: float) -> int:
    """The index of the step running at moment (the first one before any)."""
    starts = run.starts
    return max(0, bisect.bisect_right(starts, moment) - 1)


def phase_of(run: Run, response: Response) -> Phase:
    """The step during which a response started."""
    return run.phases[_index(run, response.started)]


def allowed(run: Run, response: Response) -> frozenset[State]:
    """Every state a response may carry: the server answered it at some moment between
    the client sending it and receiving the answer, so any step running meanwhile counts."""
    first = _index(run, response.started)
    last = _index(run, response.started + response.seconds)
    states: frozenset[State] = frozenset()
    for phase in run.phases[first : last + 1]:
        states |= phase.fault.allowed
    return states


def figures(run: Run) -> dict[str, dict[str, float]]:
    """Per server: responses, 5xx, off-contract responses, and latency quiet vs faults."""
    out: dict[str, dict[str, float]] = {}
    for name in run.logs:
        mine = [r for r in run.responses if r.server == name]
        quiet = [r.seconds for r in mine if phase_of(run, r).fault.name == "quiet"]
        faulty = [r.seconds for r in mine if phase_of(run, r).fault.name != "quiet"]
        out[name] = {
            "responses": len(mine),
            "5xx": sum(1 for r in mine if r.status >= 500),
            "failed": sum(1 for r in mine if r.status == 0),
            "off_contract": sum(1 for r in mine if r.state not in allowed(run, r)),
            "quiet_p50_ms": 1000 * statistics.median(quiet) if quiet else float("nan"),
            "faults_p50_ms": 1000 * statistics.median(faulty) if faulty else float("nan"),
            "quiet_p99_ms": 1000 * _p99(quiet),
            "faults_p99_ms": 1000 * _p99(faulty),
        }
    return out


def _p99(values: list[float]) -> float:
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100)[98]
