"""Fetch 1,000 pages plus a 404 probe each from a local nginx over TLS, several ways.

Usage: .venv/bin/python bench/http_clients.py [--pages 1000] [--concurrency 32] [--reps 3]

Starts its own nginx (from $NGINX or /usr/sbin/nginx) in a temporary folder with a
trustme certificate, then times each client on the same 2,000 HTTPS URLs, in turns, and
prints the median wall time of each and its ratio to the raw aiohttp loop measured in
the same run. Absolute figures drift a lot on shared machines; the ratios are the point.
The httpx and httpcore rows are the baselines that made rollout probe on aiohttp; they
need the `bench` extra (httpx, h2).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trustme

HOST = "bench.example.test"

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port} ssl;
        listen 127.0.0.1:{h2port} ssl http2;
        server_name {host};
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
        add_header Strict-Transport-Security "max-age=86400" always;
        add_header Content-Security-Policy-Report-Only "default-src 'self'" always;
        add_header X-Content-Type-Options "nosniff" always;
        add_header X-Frame-Options "DENY" always;
        add_header Referrer-Policy "strict-origin-when-cross-origin" always;
        add_header Permissions-Policy "geolocation=(), camera=()" always;
        location /p/ {{ return 200 "ok\\n"; }}
        location / {{ return 404; }}
    }}
    server {{
        listen 127.0.0.1:{httpport};
        return 301 https://$host/;
    }}
}}
"""

Fetch = Callable[[list[str], int], Awaitable[int]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(tmp: Path, ca: trustme.CA) -> tuple[subprocess.Popen[bytes], int, int, int]:
    nginx = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    cert = ca.issue_cert(HOST)
    cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
    port, h2port, httpport = free_port(), free_port(), free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(tmp=tmp, port=port, h2port=h2port, httpport=httpport, host=HOST)
    )
    proc = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port, h2port, httpport
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"nginx did not start: {proc.communicate()[1].decode()}")


# -- the clients ---------------------------------------------------------------------


def aiohttp_loop(ctx: ssl.SSLContext, port: int) -> Fetch:
    import aiohttp
    from aiohttp_floor import Static  # every name is 127.0.0.1, as a hosts file

    async def run(urls: list[str], concurrency: int) -> int:
        sem = asyncio.Semaphore(concurrency)
        conn = aiohttp.TCPConnector(limit=concurrency, ssl=ctx, resolver=Static("127.0.0.1"))
        async with aiohttp.ClientSession(connector=conn) as session:

            async def one(url: str) -> int:
                async with sem, session.get(url, allow_redirects=False) as r:
                    await r.read()
                    _ = r.raw_headers
                    return r.status

            return sum(s in (200, 404) for s in await asyncio.gather(*map(one, urls)))

    return run


def httpx_client(
    ctx: ssl.SSLContext,
    port: int,
    *,
    http2: bool = False,
    gate: bool = True,
    max_connections: int | None = None,
    urls_port: int | None = None,
) -> Fetch:
    import httpx

    async def run(urls: list[str], concurrency: int) -> int:
        limits = httpx.Limits(
            max_connections=max_connections or concurrency,
            max_keepalive_connections=max_connections or concurrency,
        )
        transport = httpx.AsyncHTTPTransport(verify=ctx, http2=http2, limits=limits)
        sem = asyncio.Semaphore(concurrency if gate else len(urls))
        async with httpx.AsyncClient(transport=transport, timeout=120) as client:

            async def one(url: str) -> int:
                async with sem:
                    target = url.replace(f"{HOST}:{urls_port or port}", f"127.0.0.1:{port}", 1)
                    r = await client.get(
                        target,
                        headers={"host": f"{HOST}:{port}"},
                        extensions={"sni_hostname": HOST},
                    )
                    _ = r.headers.raw
                    return r.status_code

            return sum(s in (200, 404) for s in await asyncio.gather(*map(one, urls)))

    return run


def httpcore_pool(ctx: ssl.SSLContext, port: int) -> Fetch:
    import httpcore

    async def run(urls: list[str], concurrency: int) -> int:
        sem = asyncio.Semaphore(concurrency)
        async with httpcore.AsyncConnectionPool(
            ssl_context=ctx, max_connections=concurrency
        ) as pool:

            async def one(url: str) -> int:
                async with sem:
                    r = await pool.request(
                        "GET",
                        url.replace(HOST, "127.0.0.1", 1),
                        headers=[(b"host", f"{HOST}:{port}".encode())],
                        extensions={"sni_hostname": HOST},
                    )
                    return r.status

            return sum(s in (200, 404) for s in await asyncio.gather(*map(one, urls)))

    return run


def asyncio_backend() -> object:
    """An httpcore network backend on plain asyncio streams, to take anyio out of the path."""
    import httpcore

    class Stream(httpcore.AsyncNetworkStream):
        def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._r, self._w = reader, writer

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            async with asyncio.timeout(timeout):
                return await self._r.read(max_bytes)

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:
            async with asyncio.timeout(timeout):
                self._w.write(buffer)
                await self._w.drain()

        async def aclose(self) -> None:
            self._w.transport.abort()

        async def start_tls(
            self,
            ssl_context: ssl.SSLContext,
            server_hostname: str | None = None,
            timeout: float | None = None,
        ) -> httpcore.AsyncNetworkStream:
            async with asyncio.timeout(timeout):
                await self._w.start_tls(ssl_context, server_hostname=server_hostname)
            return self

        def get_extra_info(self, info: str) -> object:
            return False if info == "is_readable" else self._w.get_extra_info(info)

    class Backend(httpcore.AsyncNetworkBackend):
        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: object = None,
        ) -> httpcore.AsyncNetworkStream:
            async with asyncio.timeout(timeout):
                return Stream(*await asyncio.open_connection(host, port))

        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(seconds)

    return Backend()


def httpcore_workers(ctx: ssl.SSLContext, port: int, backend: object = None) -> Fetch:
    import httpcore

    async def run(urls: list[str], concurrency: int) -> int:
        queue = list(reversed(urls))
        origin = httpcore.Origin(b"https", b"127.0.0.1", port)
        ok = 0

        async def worker() -> None:
            nonlocal ok
            conn = httpcore.AsyncHTTPConnection(origin, ssl_context=ctx, network_backend=backend)
            try:
                while queue:
                    url = queue.pop().replace(HOST, "127.0.0.1", 1)
                    if not conn.is_available():
                        await conn.aclose()
                        conn = httpcore.AsyncHTTPConnection(
                            origin, ssl_context=ctx, network_backend=backend
                        )
                    r = await conn.request(
                        "GET",
                        url,
                        headers=[(b"host", f"{HOST}:{port}".encode())],
                        extensions={"sni_hostname": HOST},
                    )
                    ok += r.status in (200, 404)
            finally:
                await conn.aclose()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok

    return run


def rollout_probe(ctx_path: Path, port: int) -> Fetch:
    async def run(urls: list[str], concurrency: int) -> int:
        from rollout.probe import ConnectTo, ProbeOptions, probe_many

        options = ProbeOptions(
            connect_to=(ConnectTo(HOST, port, "127.0.0.1", port),),
            cacert=ctx_path,
            concurrency=concurrency,
        )
        results = await probe_many(urls, options)
        return sum(r.status in (200, 404) for r in results if r.fault is None)

    return run


STAGE_HEADERS = {
    "strict-transport-security": "max-age=86400",
    "content-security-policy-report-only": "default-src 'self'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": "geolocation=(), camera=()",
}


def rollout_verify(ca_path: Path, port: int, httpport: int) -> Fetch:
    """The whole verify of the pages: plus one 404 and one http probe, and every check."""

    async def run(urls: list[str], concurrency: int) -> int:
        from rollout.probe import ConnectTo, ProbeOptions
        from rollout.settings import StageSettings
        from rollout.verify import verify_async

        pages = [u.replace(f":{port}/", "/") for u in urls if "/p/" in u]

        class Env:
            name = "bench"
            urls = pages
            subdomains: tuple[str, ...] = ()
            connect_to = (
                ConnectTo(HOST, 443, "127.0.0.1", port),
                ConnectTo(HOST, 80, "127.0.0.1", httpport),
            )
            resolve: tuple[object, ...] = ()
            cacert = ca_path

        stage = StageSettings("bench", 3, "hsts-1d", STAGE_HEADERS, {})
        options = ProbeOptions(concurrency=concurrency)
        report = await verify_async(Env(), stage, options=options)  # type: ignore[arg-type]
        if not report.ok:
            print([c.message for c in report.failures[:3]], file=sys.stderr)
        # Counted like the fetch loops (pages + 404s) so the warning below stays quiet.
        return len(urls) if report.ok else 0

    return run


def curl_parallel(ca_path: Path, port: int) -> Callable[[list[str], int], int]:
    def run(urls: list[str], concurrency: int) -> int:
        cfg = "".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls)
        out = subprocess.run(
            [
                "curl",
                "-s",
                "--parallel",
                "--parallel-max",
                str(concurrency),
                "--cacert",
                str(ca_path),
                "--resolve",
                f"{HOST}:{port}:127.0.0.1",
                "-w",
                "%{http_code}\n",
                "-K",
                "-",
            ],
            input=cfg.encode(),
            capture_output=True,
            check=False,
        )
        return sum(line in (b"200", b"404") for line in out.stdout.split())

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", help="comma-separated variant names")
    args = parser.parse_args()

    ca = trustme.CA()
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as d:
        tmp = Path(d)
        ca_path = tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        proc, port, h2port, httpport = start_nginx(tmp, ca)
        try:
            ctx = ssl.create_default_context(cafile=str(ca_path))
            base = f"https://{HOST}:{port}"
            urls = [f"{base}/p/{i}" for i in range(args.pages)]
            urls += [f"{base}/rollout-404-{i:032x}" for i in range(args.pages)]
            variants: dict[str, Fetch | Callable[[list[str], int], int]] = {
                "aiohttp, raw loop": aiohttp_loop(ctx, port),
                "httpx, one client, pool queues (as ANCHORS)": httpx_client(ctx, port, gate=False),
                "httpx, own semaphore, pool = concurrency": httpx_client(ctx, port),
                "httpx, own semaphore, HTTP/2 (h2 port)": httpx_client(
                    ctx, h2port, http2=True, urls_port=port
                ),
                "httpcore pool directly, own semaphore": httpcore_pool(ctx, port),
                "httpcore connections, one per worker": httpcore_workers(ctx, port),
                "httpcore workers, asyncio backend": httpcore_workers(ctx, port, asyncio_backend()),
                "rollout.probe.probe_many": rollout_probe(ca_path, port),
                "rollout verify (pages + 1 404 + 1 http, judged)": rollout_verify(
                    ca_path, port, httpport
                ),
                "curl --parallel, one process": curl_parallel(ca_path, port),
            }
            if args.only:
                keep = args.only.split(",")
                variants = {k: v for k, v in variants.items() if any(s in k for s in keep)}
            times: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.reps):
                for name, fetch in variants.items():
                    t0 = time.perf_counter()
                    out = fetch(urls, args.concurrency)
                    ok = asyncio.run(out) if asyncio.iscoroutine(out) else out
                    times[name].append(time.perf_counter() - t0)
                    if ok != len(urls):
                        print(f"warning: {name}: {ok}/{len(urls)} answered", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    base_t = statistics.median(times.get("aiohttp, raw loop") or [float("nan")])
    print(f"{len(urls)} HTTPS requests, concurrency {args.concurrency}, median of {args.reps}\n")
    print(f"| {'variant':<50} | {'wall s':>7} | {'vs aiohttp':>10} |")
    print(f"| {'-' * 50} | {'-' * 6}: | {'-' * 9}: |")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"| {name:<50} | {t:7.2f} | {t / base_t:9.2f}x |")


if __name__ == "__main__":
    main()
