"""The app's own latency while its CSP report endpoint is flooded, as ratios in one run.

Usage: .venv/bin/python bench/report_flood.py [--requests 1000] [--rate 300] [--reps 5]

Starts uvicorn (one process) serving a small HTML app wrapped in rollout's ASGI
middleware, whose stage file sends a report-only CSP reporting to `/csp-report` (the
store: SQLite beside it, as by default). A client then times `GET /` (a browser's
navigation: it counts as a page view) one request after another, first on a quiet
server, then while another process sends `--rate` requests a second:

- reports: valid legacy reports, each from another client (X-Forwarded-For from the
  trusted proxy), so none is rate-limited and every one is parsed, queued and stored;
- hostile: oversized, malformed, wrongly typed and megabyte-URL bodies, and a flood from
  one client (429s);
- plain: as many `GET /missing` (404 from the app itself), the control for the reports:
  what any request at that rate costs the server;
- bodies: the hostile bodies, posted to `/missing` instead (the app's 404), the control
  for the hostile row: receiving 70 KB bodies at that rate costs the server by itself.

Per kind and repetition it times `GET /` on the quiet server, then under the flood, and
takes the ratio of the two medians (so slow drift of a shared machine cancels out); it
prints the median of those ratios over `--reps`, and the server's CPU time per flood
request (from /proc, the flood running alone for `--cpu-seconds`) as a ratio to the plain
404's. Each report row against its control says what the endpoint costs beyond the
traffic itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RO = "default-src 'self'; report-uri /csp-report; report-to rollout-csp"
STAGE_FILE = f"""\
environment = "bench"
stage = 1
name = "hsts-5m"
[app]
"strict-transport-security" = "max-age=300"
"content-security-policy-report-only" = "{RO}"
"reporting-endpoints" = 'rollout-csp="/csp-report"'
"""
PAGE = b"<!doctype html><title>bench</title><p>" + b"x" * 2000


async def site(scope: Any, receive: Any, send: Any) -> None:
    """The app: an HTML page at /, 404 elsewhere."""
    if scope["type"] != "http":
        return
    found = scope["path"] == "/"
    kind = b"text/html; charset=utf-8" if found else b"text/plain"
    await send(
        {
            "type": "http.response.start",
            "status": 200 if found else 404,
            "headers": [(b"content-type", kind)],
        }
    )
    await send({"type": "http.response.body", "body": PAGE if found else b"not found"})


def serve(port: int, folder: str) -> None:
    """The server process: the app in the middleware under uvicorn."""
    import uvicorn

    from rollout.middleware.asgi import SecurityHeaders

    app = SecurityHeaders(site, settings=Path(folder) / "bench.toml", trusted_proxies=["127.0.0.1"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def report(i: int) -> bytes:
    """A browser's legacy report; a few distinct violations, as a real site has."""
    body = {
        "document-uri": f"https://bench.example.test/page{i % 7}",
        "effective-directive": "script-src-elem",
        "blocked-uri": f"https://cdn{i % 5}.example.test/x.js",
        "original-policy": RO,
        "disposition": "report",
    }
    return json.dumps({"csp-report": body}).encode()


HOSTILE = [
    ("application/csp-report", b"x" * 70000),
    ("application/csp-report", b"{not json"),
    ("text/plain", report(0)),
    ("application/reports+json", b"[" * 20000),
    ("application/csp-report", report(0).replace(b"page0", b"p" * 60000)),
]


async def flood(url: str, kind: str, rate: float, seconds: float) -> int:
    """Send `rate` requests a second of one kind for `seconds`; how many were sent."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        pending: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < seconds:
            pending.add(asyncio.ensure_future(_one(session, url, kind, i)))
            pending = {t for t in pending if not t.done()}
            i += 1
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        await asyncio.gather(*pending, return_exceptions=True)
        return i


async def _one(session: Any, url: str, kind: str, i: int) -> None:
    if kind == "plain":
        async with session.get(f"{url}/missing") as r:
            await r.read()
        return
    path = "/csp-report"
    if kind == "reports":
        content, body = "application/csp-report", report(i)
        client = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
    else:
        content, body = HOSTILE[i % len(HOSTILE)]
        client = "192.0.2.1"  # one client: past its burst, 429s
        path = "/missing" if kind == "bodies" else path
    headers = {"content-type": content, "x-forwarded-for": client}
    async with session.post(f"{url}{path}", data=body, headers=headers) as r:
        await r.read()
        assert r.status < 500, r.status


async def measure(url: str, requests: int) -> list[float]:
    """Seconds for each of `requests` sequential navigations to /."""
    import aiohttp

    times: list[float] = []
    headers = {"sec-fetch-dest": "document"}
    async with aiohttp.ClientSession() as session:
        for _ in range(requests):
            t = time.perf_counter()
            async with session.get(f"{url}/", headers=headers) as r:
                await r.read()
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cpu-seconds", type=float, default=5.0)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--flood", nargs=3, metavar=("URL", "KIND", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    if args.flood:
        sent = asyncio.run(flood(args.flood[0], args.flood[1], args.rate, float(args.flood[2])))
        print(sent)
        return

    from tests.reports.support import free_port  # a port nothing listens on

    folder = tempfile.mkdtemp(prefix="rollout-bench-")
    Path(folder, "bench.toml").write_text(STAGE_FILE)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    here = [sys.executable, __file__]
    server = subprocess.Popen([*here, "--serve", str(port), folder])
    try:
        _wait_up(url)
        kinds = ["plain", "reports", "bodies", "hostile"]
        ratios: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.reps):
            for kind in kinds:
                quiet = statistics.median(asyncio.run(measure(url, args.requests)))
                flooder = subprocess.Popen(
                    [*here, "--rate", str(args.rate), "--flood", url, kind, "3600"]
                )
                time.sleep(1.0)  # the flood is under way before timing starts
                busy = statistics.median(asyncio.run(measure(url, args.requests)))
                flooder.terminate()
                flooder.wait(30)
                ratios[kind].append(busy / quiet)
        cpu = {kind: _cpu_per_request(server.pid, here, url, kind, args) for kind in kinds}
        print(
            f"GET / under a {args.rate:g}/s flood, median latency ÷ the quiet median of the "
            f"same repetition ({args.requests} sequential requests each, median of "
            f"{args.reps}); server CPU per flood request ÷ a plain 404's"
        )
        print(f"{'flood':<8} {'latency ratio':>14} {'CPU µs/req':>11} {'CPU ratio':>10}")
        for kind in kinds:
            print(
                f"{kind:<8} {statistics.median(ratios[kind]):>14.3f} {cpu[kind]:>11.1f} "
                f"{cpu[kind] / cpu['plain']:>10.2f}"
            )
        store = Path(folder, "bench.reports.sqlite3")
        if store.exists():
            import sqlite3

            total = sqlite3.connect(store).execute("SELECT SUM(count) FROM csp_violations")
            print(f"\nreports stored during the runs: {total.fetchone()[0]}")
    finally:
        server.terminate()
        server.wait(30)


def _cpu_per_request(
    pid: int, here: list[str], url: str, kind: str, args: argparse.Namespace
) -> float:
    """Server CPU microseconds per request while a flood of one kind runs alone."""
    before = _cpu(pid)
    proc = subprocess.run(
        [*here, "--rate", str(args.rate), "--flood", url, kind, str(args.cpu_seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return (_cpu(pid) - before) * 1e6 / max(1, int(proc.stdout.split()[-1]))


def _cpu(pid: int) -> float:
    """Seconds of CPU (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_up(url: str) -> None:
    import urllib.request

    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{url}/", timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
