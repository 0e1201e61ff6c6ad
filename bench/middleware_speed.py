"""Header middlewares on a trivial Starlette app, in process and over the wire; and Django.

    .venv/bin/python bench/middleware_speed.py [--quick] [--reps 7]

In process: each contender (bench/middleware_apps.py) is called as an ASGI app directly,
on uvloop where installed, N requests per sample; the table gives µs per request and the
ratio to the bare app and to the floor (the route setting the six headers itself).
Over the wire: one uvicorn process per contender (one worker, no access log, behind a
proxy that says https), all started up front, loaded in turns by `wrk` (Debian's
package; a bounded Python load generator where it is absent). Django: the same view
bare, with rollout's middleware, with the view setting the headers, and with Django's
own SecurityMiddleware alone, through Django's WSGI and ASGI handlers called directly.
Every contender's response is checked first: the six headers, once each, same values,
nothing else added; the run stops if one differs.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import middleware_apps as apps
from harness import BENCH, Goal, Row, Table, free_port, rounds, started, which

SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "scheme": "https",
    "method": "GET",
    "path": "/",
    "raw_path": b"/",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench.test"), (b"user-agent", b"bench")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 443),
}


class Mismatch(SystemExit):
    """A contender does not send the six headers: timing it would compare unlike work."""


def judge(name: str, got: list[tuple[str, str]], base: set[str], want: dict[str, str]) -> None:
    """Fail loudly unless `got` holds each wanted header once with its value, and no other
    header the bare app does not send."""
    names = [n.lower() for n, _ in got]
    for header, value in want.items():
        values = [v for n, v in got if n.lower() == header]
        if values != [value]:
            raise Mismatch(f"{name}: {header} is {values!r}, want [{value!r}]")
    extra = set(names) - base - set(want)
    if extra:
        raise Mismatch(f"{name}: sends more than the six headers: {sorted(extra)}")


# -- in process -------------------------------------------------------------------------


async def asgi_headers(app: Any) -> list[tuple[str, str]]:
    """The response headers of one GET / through the ASGI app."""
    got: list[tuple[str, str]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            got.extend((n.decode("latin-1"), v.decode("latin-1")) for n, v in message["headers"])

    await app(dict(SCOPE), receive, send)
    return got


async def asgi_loop(app: Any, n: int) -> float:
    """Microseconds per request over n GET / calls."""
    sent = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        sent += 1

    scope = SCOPE
    start = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - start
    if sent < 2 * n:
        raise SystemExit(f"{app!r}: {sent} messages for {n} requests")
    return elapsed / n * 1e6


def new_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop(), "asyncio"
    return uvloop.new_event_loop(), f"uvloop {uvloop.__version__}"


def in_process(stage_file: str, n: int, reps: int) -> Table:
    loop, loop_name = new_loop()
    built = {name: make() for name, make in apps.contenders(stage_file).items()}
    base = {h for h, _ in loop.run_until_complete(asgi_headers(built[apps.BARE]))}
    for name, app in built.items():
        if name != apps.BARE:
            judge(name, loop.run_until_complete(asgi_headers(app)), base, apps.HEADERS)
    samples = rounds(
        {
            name: (lambda a=app: loop.run_until_complete(asgi_loop(a, n)))
            for name, app in built.items()
        },
        reps,
    )
    loop.close()
    table = Table(
        key="middleware-in-process",
        title="Middleware in process (ASGI called directly)",
        unit="µs per request",
        baselines=[apps.BARE, apps.FLOOR],
        command=f"{n:,} GET / per sample, {reps} rounds, {loop_name}",
        rows=[Row(name, values) for name, values in samples.items()],
        extra_columns=["overhead over bare (µs)"],
    )
    bare_median = table.row(apps.BARE).median
    for row in table.rows:
        row.extra["overhead over bare (µs)"] = f"{row.median - bare_median:.2f}"
    return table


def instructions(stage_file: str, n: int) -> dict[str, float]:
    """CPU instructions per request of each contender, counted by callgrind.

    Deterministic where wall time is not: one process per contender builds every
    contender, warms each, then serves `n` requests through its own; a process that
    serves none gives the common part, which is subtracted. Empty without valgrind.
    """
    valgrind = which("valgrind")
    if valgrind is None:
        return {}

    def count(name: str, requests: int) -> int:
        done = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             __file__, "--child", name, str(requests), stage_file],
            capture_output=True,
            env=os.environ | {"PYTHONHASHSEED": "0"},
            check=True,
        )  # fmt: skip
        match = re.search(rb"Collected : (\d+)", done.stderr)
        if match is None:
            raise SystemExit(f"callgrind printed no count: {done.stderr[-300:]!r}")
        return int(match.group(1))

    common = count("", 0)
    return {name: (count(name, n) - common) / n for name in apps.contenders(stage_file)}


def child(name: str, n: int, stage_file: str) -> None:
    """The process callgrind counts: every contender built and warmed, one of them run."""
    loop = asyncio.new_event_loop()  # the default loop: uvloop's C is counted too, alike
    built = {k: make() for k, make in apps.contenders(stage_file).items()}
    for app in built.values():
        loop.run_until_complete(asgi_loop(app, 50))
    if name:
        loop.run_until_complete(asgi_loop(built[name], n))


# -- over the wire ----------------------------------------------------------------------


def http_headers(port: int) -> list[tuple[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"X-Forwarded-Proto": "https"})
        response = conn.getresponse()
        response.read()
        return list(response.getheaders())
    finally:
        conn.close()


WRK_RATE = re.compile(rb"Requests/sec:\s+([\d.]+)")
WRK_ERRORS = re.compile(rb"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)")


def wrk_rate(port: int, seconds: float, connections: int) -> float:
    """Responses per second from one wrk run (one thread: the other core serves)."""
    out = subprocess.run(
        [
            "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s",
            "-H", "X-Forwarded-Proto: https", f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip
    errors = WRK_ERRORS.search(out)
    if errors:
        raise SystemExit(f"wrk on port {port}: {errors.group(0).decode()}")
    match = WRK_RATE.search(out)
    if match is None:
        raise SystemExit(f"wrk printed no rate: {out.decode(errors='replace')}")
    return float(match.group(1))


def python_rate(port: int, seconds: float, connections: int) -> float:
    """A bounded keep-alive load generator for where wrk is absent: `connections` loops,
    each GET / then read the response (Content-Length framed), until `seconds` pass."""

    async def run() -> int:
        deadline = time.monotonic() + seconds
        request = b"GET / HTTP/1.1\r\nHost: bench\r\nX-Forwarded-Proto: https\r\n\r\n"
        done = 0

        async def one() -> None:
            nonlocal done
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                while time.monotonic() < deadline:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    if not head.startswith(b"HTTP/1.1 200"):
                        raise SystemExit(f"port {port}: {head[:40]!r}")
                    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                    await reader.readexactly(int(length.group(1)) if length else 0)
                    done += 1
            finally:
                writer.close()

        await asyncio.gather(*(one() for _ in range(connections)))
        return done

    start = time.perf_counter()
    done = asyncio.run(run())
    return done / (time.perf_counter() - start)


def over_the_wire(stage_file: str, seconds: float, reps: int, connections: int) -> Table:
    load = wrk_rate if which("wrk") else python_rate
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http_impl = "httptools" if importlib.util.find_spec("httptools") else "h11"
    ports = {name: free_port() for name in apps.contenders(stage_file)}
    servers = []
    import contextlib

    with contextlib.ExitStack() as stack:
        for name, port in ports.items():
            env = os.environ | {"BENCH_CONTENDER": name, "BENCH_STAGE_FILE": stage_file}
            argv = [
                sys.executable, "-m", "uvicorn", "--factory", "middleware_apps:build",
                "--app-dir", str(BENCH), "--host", "127.0.0.1", "--port", str(port),
                "--no-access-log", "--log-level", "warning", "--loop", loop, "--http", http_impl,
            ]  # fmt: skip
            servers.append(stack.enter_context(started(argv, port, env=env)))
        base = {h.lower() for h, _ in http_headers(ports[apps.BARE])}
        for name, port in ports.items():
            if name != apps.BARE:
                judge(name, http_headers(port), base, apps.HEADERS)
        # The check above already sent each server its first request; a warm-up round
        # of wrk is worth its seconds in the full run only.
        samples = rounds(
            {n: (lambda p=p: load(p, seconds, connections)) for n, p in ports.items()},
            reps,
            warmup=seconds > 1,
        )
    tool = (
        f"wrk -t1 -c{connections} -d{seconds:g}s"
        if load is wrk_rate
        else f"Python keep-alive loop, {connections} connections, {seconds:g}s (wrk absent)"
    )
    return Table(
        key="middleware-over-the-wire",
        title="Middleware over the wire (uvicorn, one worker, no access log)",
        unit="requests/s",
        higher_is_better=True,
        baselines=[apps.BARE, apps.FLOOR],
        command=f"{tool}; uvicorn --loop {loop} --http {http_impl}; {reps} rounds; "
        "requests carry X-Forwarded-Proto: https (uvicorn's proxy headers make the scope https)",
        rows=[Row(name, values) for name, values in samples.items()],
    )


# -- Django -----------------------------------------------------------------------------

DJ_BARE = "bare view"
DJ_FLOOR = "floor: the view sets the six headers"
DJ_ROLLOUT = "rollout SecurityHeadersMiddleware"
DJ_SECURITY = "Django SecurityMiddleware alone (3 of the 6)"


def _django_views() -> Any:
    from django.http import HttpResponse

    def view(request: Any) -> Any:
        return HttpResponse("hello")

    async def aview(request: Any) -> Any:
        return HttpResponse("hello")

    def floor(request: Any) -> Any:
        return HttpResponse("hello", headers=apps.HEADERS)

    async def afloor(request: Any) -> Any:
        return HttpResponse("hello", headers=apps.HEADERS)

    return view, aview, floor, afloor


urlpatterns: list[Any] = []


def django_tables(stage_file: str, n: int, reps: int) -> list[Table]:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="bench-only",
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        ROLLOUT_SETTINGS=stage_file,
        SECURE_HSTS_SECONDS=31536000,
        SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
        SECURE_REFERRER_POLICY="strict-origin-when-cross-origin",
        SECURE_CONTENT_TYPE_NOSNIFF=True,
        SECURE_CROSS_ORIGIN_OPENER_POLICY=None,
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.urls import path

    view, aview, floor, afloor = _django_views()
    urlpatterns[:] = [
        path("", view),
        path("a", aview),
        path("floor", floor),
        path("afloor", afloor),
    ]
    stacks = {
        DJ_BARE: ("", []),
        DJ_FLOOR: ("floor", []),
        DJ_ROLLOUT: ("", ["rollout.middleware.django.SecurityHeadersMiddleware"]),
        DJ_SECURITY: ("", ["django.middleware.security.SecurityMiddleware"]),
    }
    want = {
        DJ_SECURITY: {
            k: v
            for k, v in apps.HEADERS.items()
            if k in ("strict-transport-security", "referrer-policy", "x-content-type-options")
        }
    }

    def handler(kind: type, middleware: list[str]) -> Any:
        settings.MIDDLEWARE = middleware
        return kind()

    wsgi = {name: (p, handler(WSGIHandler, mw)) for name, (p, mw) in stacks.items()}
    asgi = {name: ("a" + p, handler(ASGIHandler, mw)) for name, (p, mw) in stacks.items()}

    def environ(p: str) -> dict[str, Any]:
        return {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/" + p,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "bench.test",
            "SERVER_PORT": "443",
            "HTTP_HOST": "bench.test",
            "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "https",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
        }

    def wsgi_once(p: str, h: Any) -> list[tuple[str, str]]:
        got: list[tuple[str, str]] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            if not status.startswith("200"):
                raise SystemExit(f"Django WSGI /{p}: {status}")
            got.extend(headers)
            return lambda data: None

        body = h(environ(p), start_response)
        b"".join(body)
        body.close()
        return got

    def wsgi_loop(p: str, h: Any) -> float:
        start = time.perf_counter()
        for _ in range(n):
            wsgi_once(p, h)
        return (time.perf_counter() - start) / n * 1e6

    loop, loop_name = new_loop()

    async def asgi_once(p: str, h: Any) -> list[tuple[str, str]]:
        got: list[tuple[str, str]] = []
        never = asyncio.Event()
        first = True

        async def receive() -> dict[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b"", "more_body": False}
            await never.wait()  # Django listens for a disconnect that never comes
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                if message["status"] != 200:
                    raise SystemExit(f"Django ASGI /{p}: {message['status']}")
                got.extend((k.decode(), v.decode()) for k, v in message["headers"])

        await h(dict(SCOPE, path="/" + p, raw_path=("/" + p).encode()), receive, send)
        return got

    async def asgi_many(p: str, h: Any) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await asgi_once(p, h)
        return (time.perf_counter() - start) / n * 1e6

    base_w = {k.lower() for k, _ in wsgi_once(*wsgi[DJ_BARE])}
    base_a = {k.lower() for k, _ in loop.run_until_complete(asgi_once(*asgi[DJ_BARE]))}
    for name in stacks:
        if name != DJ_BARE:
            judge(
                f"Django WSGI {name}", wsgi_once(*wsgi[name]), base_w, want.get(name, apps.HEADERS)
            )
            got = loop.run_until_complete(asgi_once(*asgi[name]))
            judge(f"Django ASGI {name}", got, base_a, want.get(name, apps.HEADERS))
    tables = []
    for kind, runs in (
        ("WSGI", {name: (lambda a=args: wsgi_loop(*a)) for name, args in wsgi.items()}),
        (
            "ASGI",
            {
                name: (lambda a=args: loop.run_until_complete(asgi_many(*a)))
                for name, args in asgi.items()
            },
        ),
    ):
        samples = rounds(runs, reps)
        view_kind = "sync view" if kind == "WSGI" else f"async view, {loop_name}"
        tables.append(
            Table(
                key=f"django-{kind.lower()}",
                title=f"Django {django.__version__} in process, {kind} handler called directly",
                unit="µs per request",
                baselines=[DJ_BARE, DJ_FLOOR],
                command=f"{n:,} GET per sample ({view_kind}), {reps} rounds",
                rows=[Row(name, values) for name, values in samples.items()],
            )
        )
    loop.close()
    return tables


# -- the whole benchmark ----------------------------------------------------------------


def run(quick: bool, reps: int | None = None) -> list[Table]:
    """Every table of this benchmark; `quick` is the CI smoke run (tiny N, one round)."""
    reps = reps or (1 if quick else 7)
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp:
        stage_file = Path(tmp) / "production.toml"
        apps.write_stage_file(stage_file)
        inproc = in_process(str(stage_file), 300 if quick else 20_000, reps)
        counts = {} if quick else instructions(str(stage_file), 4000)
        add_instructions(inproc, counts)
        wire = over_the_wire(str(stage_file), 1 if quick else 5, reps, 16)
        djangos = django_tables(str(stage_file), 200 if quick else 5_000, reps)
    add_goals(inproc, wire, counts)
    return [inproc, wire, *djangos]


def add_instructions(table: Table, counts: dict[str, float]) -> None:
    column = "instructions ÷ bare (callgrind)"
    if not counts:
        table.notes.append(
            "Instruction counts (callgrind) are taken in the full run only"
            + ("" if which("valgrind") else "; valgrind is not installed here")
            + "."
        )
        return
    table.extra_columns.append(column)
    table.extra_columns.append("instructions per request")
    for row in table.rows:
        row.extra[column] = f"{counts[row.name] / counts[apps.BARE]:.3f}"
        row.extra["instructions per request"] = f"{counts[row.name]:,.0f}"
    table.notes.append(
        "Instructions: callgrind, 4,000 requests on the default asyncio loop, "
        "PYTHONHASHSEED=0, minus a process that builds and warms the same apps and serves none."
    )


def add_goals(inproc: Table, wire: Table, counts: dict[str, float]) -> None:
    middlewares = [apps.ROLLOUT, apps.SEEDS_ASGI, apps.SEEDS_BASE, apps.SECURE, apps.SECWEB]
    # Judged on instructions where counted (deterministic), else on the median time.
    cost = counts or {n: inproc.row(n).median for n in [*middlewares, apps.BARE]}
    best = min(middlewares, key=lambda n: cost[n])
    what = "instructions" if counts else "time"
    inproc.goals.append(
        Goal(
            "rollout has the lowest in-process cost of every middleware",
            f"{what} ÷ bare: rollout {cost[apps.ROLLOUT] / cost[apps.BARE]:.3f}×; lowest: "
            f"{best} {cost[best] / cost[apps.BARE]:.3f}×",
            best == apps.ROLLOUT,
        )
    )
    ratio = wire.ratio(apps.ROLLOUT, apps.FLOOR)
    wire.goals.append(
        Goal("rollout ≥ 0.98× the floor's throughput over the wire", f"{ratio:.3f}×", ratio >= 0.98)
    )


def main(argv: list[str] | None = None, run_tables: Callable[..., list[Table]] = run) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1], int(argv[2]), argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny N, one round (CI smoke)")
    parser.add_argument("--reps", type=int, help="rounds (default 7; 1 with --quick)")
    args = parser.parse_args(argv)
    for table in run_tables(args.quick, args.reps):
        print(table.text())


if __name__ == "__main__":
    main()
