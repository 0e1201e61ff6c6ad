"""`rollout verify` against what people use today, each as the whole process a user waits for.

    .venv/bin/python bench/verify_speed.py [--quick] [--reps 5] [--pages 1000]

Starts its own nginx (TLS, trustme certificate) serving `/p/N` (200), everything else
(404) and an http:// server redirecting to https://, every response with the stage's
headers. The same work for every contender: the page URLs, one 404 probe and one http://
probe of the origin. Contenders, in rounds: `rollout verify` (the CLI), the seeds' bash
loop of `curl -sI`, `shcheck --hfile`, `drheader scan bulk`, a raw aiohttp loop at
rollout's concurrency (the Python floor, bench/aiohttp_floor.py) and one `curl --parallel`
process (the C floor). Then many origins: 10,000 URLs over 100 host names reached through
`connect-to`, rollout against the aiohttp floor, with each process's peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BENCH,
    Goal,
    Row,
    Table,
    free_port,
    rounds,
    started,
    timed_run,
    venv_bin,
    which,
)

HOST = "bench.example.test"
STAGE = 3  # hsts-1d: HSTS, report-only CSP and the four others
CONCURRENCY = 32  # rollout verify's default
FLOOR = "aiohttp loop, concurrency 32 (Python floor)"
CURL_LOOP_ROW = "seeds' curl -sI loop (bash, sequential)"

PLAN_HEAD = """\
[policy]
content-security-policy = "default-src 'self'; object-src 'none'; base-uri 'self'"
permissions-policy = "geolocation=(), camera=(), microphone=()"
referrer-policy = "strict-origin-when-cross-origin"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
"""

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
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
        server_name _;
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
{headers}
        location /p/ {{ return 200 "ok\\n"; }}
        location / {{ return 404; }}
    }}
    server {{
        listen 127.0.0.1:{httpport};
        return 301 https://$host$request_uri;
    }}
}}
"""

CURL_LOOP = """\
# The seeds' way: one curl -sI per URL, one after the other.
while read -r url; do
  curl -sI --max-time 10 --cacert "$CA" "$url" >/dev/null || exit 1
done < "$URLS"
"""


class Site:
    """nginx on loopback sending one stage's headers, and the files the contenders read."""

    def __init__(self, tmp: Path, pages: int, hosts: int) -> None:
        import trustme

        from rollout import ladder
        from rollout.plan import parse_plan

        self.tmp = tmp
        self.port, self.httpport = free_port(), free_port()
        ca = trustme.CA()
        self.ca = tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        cert = ca.issue_cert(HOST, f"*.{HOST}", "localhost")
        cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
        plan = parse_plan(PLAN_HEAD + "[environments.x]\n", tmp / "plan.toml")
        stage = ladder.settings_for(plan, "x", STAGE)
        sent = {**stage.app, **stage.edge}
        headers = "\n".join(
            f'        add_header {name} "{value}" always;' for name, value in sent.items()
        )
        conf = tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(tmp=tmp, port=self.port, httpport=self.httpport, headers=headers)
        )
        self.nginx_argv = [which("nginx", "/usr/sbin") or "nginx", "-p", str(tmp), "-c", str(conf)]
        self.pages, self.hosts = pages, hosts

    def names(self) -> list[str]:
        if self.hosts == 1:
            return [HOST]
        return [f"h{i:02d}.{HOST}" for i in range(self.hosts)]

    def rollout_plan(self) -> Path:
        """The plan rollout verifies: its URLs on the public names, connect-to per host."""
        per_host = self.pages // self.hosts
        urls = [f"https://{h}/p/{i}" for h in self.names() for i in range(per_host)]
        connect = [f"{h}:443:127.0.0.1:{self.port}" for h in self.names()]
        connect += [f"{h}:80:127.0.0.1:{self.httpport}" for h in self.names()]
        plan = self.tmp / "plan.toml"
        plan.write_text(
            PLAN_HEAD
            + "\n[environments.bench]\n"
            + f"urls = {_toml_list(urls)}\n"
            + f"connect-to = {_toml_list(connect)}\n"
            + 'cacert = "ca.pem"\n'
        )
        # The environment is at the stage nginx sends: verify checks the current stage,
        # takes the lock and records the result, as a user's `rollout verify ENV` does.
        from rollout import ladder, store
        from rollout.plan import load_plan

        loaded = load_plan(plan)
        store.write_settings(loaded, ladder.settings_for(loaded, "bench", STAGE))
        return plan

    def direct_urls(self, *, public_names: bool = False) -> Path:
        """The same work as rollout's (pages, a 404 and an http:// probe per origin) for the
        tools that cannot map names: host localhost, real ports. With `public_names`, the
        rollout names with the real ports (for a client that resolves them itself)."""
        per_host = self.pages // self.hosts
        names = self.names() if public_names else ["localhost"]
        lines = []
        for h in names if public_names else names * 1:
            count = per_host if public_names else self.pages
            lines += [f"https://{h}:{self.port}/p/{i}" for i in range(count)]
            lines.append(f"https://{h}:{self.port}/rollout-404-{secrets.token_hex(8)}")
            # 127.0.0.1, not the name: curl 7.88's --parallel then reuses a TLS connection
            # to the name for the plain-http port ("wrong version number").
            lines.append(f"http://{'127.0.0.1' if h == 'localhost' else h}:{self.httpport}/")
        path = self.tmp / ("urls-public.txt" if public_names else "urls.txt")
        path.write_text("\n".join(lines) + "\n")
        return path


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def contenders(
    site: Site, only: set[str] | None = None
) -> dict[
    str,
    tuple[list[str], dict[str, str], Callable[[subprocess.CompletedProcess[bytes]], str | None]],
]:
    """Each contender: argv, extra environment, and a check of its finished process."""
    plan = site.rollout_plan()
    urls = site.direct_urls()
    n = len(urls.read_text().split())
    rollout = venv_bin("rollout") or "rollout"
    trust = {"SSL_CERT_FILE": str(site.ca), "REQUESTS_CA_BUNDLE": str(site.ca)}

    def exit0(done: subprocess.CompletedProcess[bytes]) -> str | None:
        if done.returncode != 0:
            return f"exit {done.returncode}: {done.stderr.decode(errors='replace')[-300:]}"
        return None

    def counted(done: subprocess.CompletedProcess[bytes]) -> str | None:
        got = done.stdout.split()
        answered = sum(c in (b"200", b"301", b"404") for c in got)
        if answered != n:
            return f"{answered}/{n} answered; {done.stderr.decode(errors='replace')[-300:]}"
        return None

    def shcheck_ok(done: subprocess.CompletedProcess[bytes]) -> str | None:
        reports = done.stdout.count(b"Analyzing headers of")
        return None if reports == n else f"{reports}/{n} URLs analysed"

    def drheader_ok(done: subprocess.CompletedProcess[bytes]) -> str | None:
        # drheader exits 70 when it finds a header it dislikes: that is a result.
        if done.returncode not in (0, 70):
            return f"exit {done.returncode}: {done.stderr.decode(errors='replace')[-300:]}"
        return None

    curl_cfg = site.tmp / "curl.cfg"
    curl_cfg.write_text(
        "".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls.read_text().split())
    )
    loop = site.tmp / "curl-loop.sh"
    loop.write_text(CURL_LOOP)
    out: dict[str, tuple[list[str], dict[str, str], Callable[..., str | None]]] = {
        "rollout verify (CLI process)": (
            [rollout, "--plan", str(plan), "verify", "bench"],
            {},
            exit0,
        ),
        FLOOR: (
            [
                sys.executable,
                str(BENCH / "aiohttp_floor.py"),
                str(urls),
                "--cafile",
                str(site.ca),
                "--concurrency",
                str(CONCURRENCY),
            ],
            {},
            exit0,
        ),
        "curl --parallel --parallel-max 32, one process (C floor)": (
            [
                "curl",
                "-s",
                "--parallel",
                "--parallel-max",
                str(CONCURRENCY),
                "--cacert",
                str(site.ca),
                "-w",
                "%{http_code}\n",
                "-K",
                str(curl_cfg),
            ],
            {},
            counted,
        ),
        "seeds' curl -sI loop (bash, sequential)": (
            ["bash", str(loop)],
            {"CA": str(site.ca), "URLS": str(urls)},
            exit0,
        ),
    }
    shcheck = venv_bin("shcheck.py")
    if shcheck:
        out["shcheck --hfile"] = (
            [shcheck, "--no-follow", "--colours", "none", "--hfile", str(urls), "x"],
            trust,
            shcheck_ok,
        )
    drheader = venv_bin("drheader")
    if drheader:
        out["drheader scan bulk"] = (
            [drheader, "scan", "bulk", "-ff", "txt", str(urls)],
            trust,
            drheader_ok,
        )
    if only:
        out = {k: v for k, v in out.items() if any(s in k for s in only)}
    return out


def phases(plan: Path, tmp: Path, runs: int, floor: list[float], pages: int) -> Table:
    """The verify process again, `runs` times, with a clock at each phase (verify_phases.py)."""
    samples: dict[str, list[float]] = {}
    totals = []
    for _ in range(runs):
        argv = [sys.executable, str(BENCH / "verify_phases.py"), "--plan", str(plan)]
        elapsed, _, done = timed_run([*argv, "verify", "bench"], cwd=tmp)
        if done.returncode != 0:
            raise SystemExit(f"verify_phases.py: exit {done.returncode}: {done.stderr[-300:]!r}")
        measured = json.loads(done.stderr.decode().strip().splitlines()[-1])
        for name, ms in measured.items():
            samples.setdefault(name, []).append(ms)
        totals.append(elapsed * 1000 - sum(measured.values()))
    rows = [Row("interpreter start-up, site and GNU time (to the first import)", totals)]
    rows += [Row(name, values) for name, values in samples.items()]
    rows.append(Row(FLOOR + ", whole process", [f * 1000 for f in floor]))
    return Table(
        key="verify-phases",
        title=f"Where a `rollout verify` process spends its time ({pages:,} pages)",
        unit="ms",
        baselines=[FLOOR + ", whole process"],
        command=f"bench/verify_phases.py: the same CLI run with a clock at each phase, {runs} runs",
        rows=rows,
    )


def one_origin(tmp: Path, pages: int, reps: int, slow_reps: int) -> list[Table]:
    site = Site(tmp, pages, hosts=1)
    runs = contenders(site)
    samples: dict[str, list[float]] = {}
    rss: dict[str, int] = {}
    with started(site.nginx_argv, site.port, stderr=subprocess.DEVNULL):

        def make(name: str) -> Callable[[], float]:
            argv, env, check = runs[name]

            def run() -> float:
                elapsed, peak, done = timed_run(argv, env=os.environ | env, cwd=tmp)
                problem = check(done)
                if problem:
                    raise SystemExit(f"{name}: {problem}\n  {shlex.join(argv)}")
                rss[name] = max(rss.get(name, 0), peak)
                return elapsed

            return run

        fast = {name: make(name) for name in runs if "loop (bash" not in name}
        slow = {name: make(name) for name in runs if "loop (bash" in name}
        samples |= rounds(fast, reps)
        # The sequential curl loop takes a minute a run at full size: fewer rounds.
        samples |= rounds(slow, slow_reps, warmup=False)
    missing = [
        name
        for name, tool in (("shcheck --hfile", "shcheck.py"), ("drheader scan bulk", "drheader"))
        if not venv_bin(tool)
    ]
    rows = [Row(name, samples[name]) for name in runs]
    rows += [Row(name, [], note="not installed (pip install -e '.[bench]')") for name in missing]
    table = Table(
        key="verify-one-origin",
        title=f"verify: {pages:,} pages + the origin's 404 and http:// probes, whole processes",
        unit="s wall",
        baselines=[FLOOR, "rollout verify (CLI process)"],
        command=f"each contender as its own process, {reps} rounds "
        f"({slow_reps} for the curl loop); {pages + 2:,} requests each, concurrency "
        f"{CONCURRENCY} where the tool has one",
        rows=rows,
        extra_columns=["peak RSS (MiB)"],
    )
    for row in table.rows:
        if row.name in rss:
            row.extra["peak RSS (MiB)"] = f"{rss[row.name] / 1024:.0f}"
    floor = table.ratio("rollout verify (CLI process)", FLOOR)
    table.goals.append(
        Goal("rollout verify ≤ 1.3× the aiohttp floor", f"{floor:.2f}×", floor <= 1.3)
    )
    faster = table.ratio("seeds' curl -sI loop (bash, sequential)", "rollout verify (CLI process)")
    table.goals.append(
        Goal(
            "rollout verify ≥ 30× faster than the curl loop", f"{faster:.1f}× faster", faster >= 30
        )
    )
    floor_faster = table.ratio("seeds' curl -sI loop (bash, sequential)", FLOOR)
    c_floor = table.ratio(CURL_LOOP_ROW, "curl --parallel --parallel-max 32, one process (C floor)")
    table.notes.append(
        f"The Python floor itself is {floor_faster:.1f}× faster than the curl loop here; "
        f"one `curl --parallel` process {c_floor:.0f}×."
    )
    with started(site.nginx_argv, site.port, stderr=subprocess.DEVNULL):
        where = phases(
            site.tmp / "plan.toml", tmp, max(1, min(reps, 3)), table.row(FLOOR).values, pages
        )
    return [table, where]


def many_origins(tmp: Path, pages: int, hosts: int, reps: int) -> Table:
    site = Site(tmp, pages, hosts=hosts)
    plan = site.rollout_plan()
    urls = site.direct_urls(public_names=True)
    rollout = venv_bin("rollout") or "rollout"
    argv = {
        "rollout verify (CLI process)": [
            rollout, "--plan", str(plan), "verify", "bench",
        ],
        FLOOR: [
            sys.executable, str(BENCH / "aiohttp_floor.py"), str(urls), "--cafile",
            str(site.ca), "--concurrency", str(CONCURRENCY), "--to", "127.0.0.1",
        ],
    }  # fmt: skip
    rss: dict[str, list[int]] = {name: [] for name in argv}
    with started(site.nginx_argv, site.port, stderr=subprocess.DEVNULL):

        def make(name: str) -> Callable[[], float]:
            def run() -> float:
                elapsed, peak, done = timed_run(argv[name], cwd=tmp)
                if done.returncode != 0:
                    raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr[-300:]!r}")
                rss[name].append(peak)
                return elapsed

            return run

        samples = rounds({name: make(name) for name in argv}, reps, warmup=False)
    requests = pages + 2 * hosts
    table = Table(
        key="verify-many-origins",
        title=f"verify at scale: {pages:,} URLs over {hosts} host names through connect-to",
        unit="s wall",
        baselines=[FLOOR],
        command=f"{requests:,} requests ({hosts} 404 and {hosts} http:// probes), "
        f"{len(site.names()) * 2} connect-to entries, {reps} rounds",
        rows=[Row(name, values) for name, values in samples.items()],
        extra_columns=["URLs per minute", "peak RSS (MiB)"],
    )
    for row in table.rows:
        row.extra["URLs per minute"] = f"{pages / row.median * 60:,.0f}"
        row.extra["peak RSS (MiB)"] = f"{max(rss[row.name]) / 1024:.0f}"
    rss_ratio = max(rss["rollout verify (CLI process)"]) / max(rss[FLOOR])
    table.notes.append(
        f"Peak RSS: rollout's is {rss_ratio:.2f}× the raw aiohttp loop's on the same URLs "
        "(most of both is aiohttp's: it grows with the number of host names)."
    )
    rate = pages / table.row("rollout verify (CLI process)").median * 60
    table.goals.append(
        Goal(
            "10,000 URLs a minute on one 2-core runner",
            f"{rate:,.0f} URLs a minute ({rate / 10_000:.1f}× the goal)",
            rate >= 10_000,
        )
    )
    return table


def run(quick: bool, reps: int | None = None) -> list[Table]:
    """Both tables; `quick` is the CI smoke run (tiny N, one round)."""
    reps = reps or (1 if quick else 5)
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as d:
        one = Path(d) / "one"
        many = Path(d) / "many"
        one.mkdir()
        many.mkdir()
        a = one_origin(one, 20 if quick else 1000, reps, 1 if quick else 2)
        b = many_origins(many, 200 if quick else 10_000, 4 if quick else 100, 1 if quick else 3)
    return [*a, b]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny N, one round (CI smoke)")
    parser.add_argument("--reps", type=int, help="rounds (default 5; 1 with --quick)")
    args = parser.parse_args()
    for table in run(args.quick, args.reps):
        print(table.text())


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
