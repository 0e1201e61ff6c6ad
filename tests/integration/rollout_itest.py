"""Real servers for the integration tests: uvicorn in a thread, nginx and Django subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from rollout import ladder, store
from rollout.plan import Plan, load_plan
from rollout.probe import ProbeOptions
from rollout.settings import StageSettings
from rollout.verify import Report, verify

HOST = "app.test"
SUBDOMAIN = "api.app.test"

POLICY = """\
[policy]
content-security-policy = "default-src 'self'; object-src 'none'; frame-ancestors 'none'"
permissions-policy = "geolocation=(), camera=(), microphone=()"
referrer-policy = "strict-origin-when-cross-origin"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
csp-report-uri = "https://csp.example.test/report"
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Ports:
    """Where one environment's https and http listeners are."""

    https: int
    http: int


def write_plan(
    folder: Path,
    env: str,
    ports: Ports,
    cacert: Path,
    extra: str = "",
    paths: tuple[str, ...] = ("/",),
    ladder_keys: str = "",
) -> Plan:
    """A plan whose environment reaches HOST and SUBDOMAIN on these loopback ports."""
    urls = [f"https://{HOST}{p}" for p in paths]
    connect = [
        f"{host}:{public}:127.0.0.1:{local}"
        for host in (HOST, SUBDOMAIN)
        for public, local in ((443, ports.https), (80, ports.http))
    ]
    text = (
        POLICY
        + ladder_keys
        + f"\n[environments.{env}]\n"
        + f"urls = {urls!r}\n".replace("'", '"')
        + f'subdomains = ["{SUBDOMAIN}"]\n'
        + f"connect-to = {connect!r}\n".replace("'", '"')
        + f'cacert = "{cacert}"\n'
        + extra
    )
    path = folder / "plan.toml"
    path.write_text(text)
    return load_plan(path)


def ladder_stages(plan: Plan) -> list[int | None]:
    """Stage off, then every stage of the plan's ladder."""
    return [None, *range(len(ladder.build(plan)))]


def verify_until(
    plan: Plan, env: str, expected: StageSettings, *, ok: bool = True, timeout: float = 10.0
) -> Report:
    """Verify until the report's ok is as wanted (the app re-reads its file about once a
    second) or the timeout passes; returns the last report."""
    environment = plan.environment(env)
    deadline = time.monotonic() + timeout
    while True:
        report = verify(environment, expected, options=ProbeOptions(timeout=5.0))
        if report.ok == ok or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def failures(report: Report) -> list[tuple[str, str | None]]:
    """(probe, header) for every failed check of a report."""
    return [(c.probe, c.header) for c in report.failures]


def explain(report: Report) -> str:
    """The failed checks, one line each, for assertion messages."""
    return "\n".join(f"{c.probe} {c.url} {c.header}: {c.message}" for c in report.failures)


def set_stage(plan: Plan, env: str, stage: int | None) -> StageSettings:
    """Write the environment's stage file for stage, as `rollout advance` would."""
    return store.write_settings(plan, ladder.settings_for(plan, env, stage))


class UvicornThread:
    """An ASGI app served by uvicorn in a thread, on an ephemeral loopback port."""

    def __init__(self, app: Any, **config: Any) -> None:
        self.port = free_port()
        cfg = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", **config
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def find_nginx() -> str:
    """The nginx binary ($NGINX, PATH, /usr/sbin); absent: skip, or fail under CI=true."""
    wanted = os.environ.get("NGINX")
    if wanted:
        found = wanted if os.access(wanted, os.X_OK) else None
    else:
        found = shutil.which("nginx") or (
            "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
        )
    if found is None:
        reason = f"nginx is not installed ({wanted or 'not on PATH nor /usr/sbin'})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it (apt-get install -y nginx)")
        pytest.skip(f"{reason}; apt-get install -y nginx to run it")
    return found


NGINX_CONF = """\
worker_processes 1;
{user}
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    {http_extra}
    server {{
        listen 127.0.0.1:{http_port};
        server_name {host} {subdomain};
        return 301 https://$host$request_uri;
    }}
    server {{
        listen 127.0.0.1:{https_port} ssl;
        server_name {host} {subdomain};
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
        include {tmp}/rollout-headers.conf;
        location / {{
            proxy_pass http://127.0.0.1:{app_port};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            {location_extra}
        }}
    }}
}}
"""


class ServerProcess:
    """A proxy subprocess listening on `ports`: launched, awaited, stopped by signal."""

    name = "server"
    stop_signal = signal.SIGTERM
    ports: Ports
    proc: subprocess.Popen[bytes] | None = None

    def _launch(self, argv: list[str], log: Path | None = None) -> None:
        """Start argv and wait until both ports listen; else stop it and say why."""
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(self.ports.https, proc=self.proc)
            wait_for_port(self.ports.http, proc=self.proc)
        except RuntimeError:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            logged = log.read_text() if log is not None and log.exists() else ""
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {err}{logged}") from None

    def stop(self) -> None:
        """Stop it (stop_signal, then SIGKILL) and wait for it to exit."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


class Nginx(ServerProcess):
    """A real nginx in a temporary prefix, proxying to an app port; restarted per config."""

    name = "nginx"
    stop_signal = signal.SIGQUIT  # graceful: its ports are free once it exits

    def __init__(self, binary: str, tmp: Path, cert: Any, app_port: int) -> None:
        self.binary, self.tmp, self.app_port = binary, tmp, app_port
        self.ports = Ports(https=free_port(), http=free_port())
        cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (tmp / sub).mkdir(exist_ok=True)

    def start(self, headers_conf: str, location_extra: str = "", http_extra: str = "") -> None:
        """(Re)start nginx with this rendered header snippet; wait until it listens."""
        self.stop()
        (self.tmp / "rollout-headers.conf").write_text(headers_conf)
        # As root, nginx's workers would switch to `nobody`; keep them as root so they
        # can use the temp folders created by this test.
        user = "user root;" if os.geteuid() == 0 else ""
        conf = NGINX_CONF.format(
            user=user,
            tmp=self.tmp,
            http_port=self.ports.http,
            https_port=self.ports.https,
            app_port=self.app_port,
            host=HOST,
            subdomain=SUBDOMAIN,
            location_extra=location_extra,
            http_extra=http_extra,
        )
        (self.tmp / "nginx.conf").write_text(conf)
        globals_ = f"daemon off; pid {self.tmp}/nginx.pid; error_log {self.tmp}/error.log warn;"
        self._launch(
            [self.binary, "-p", str(self.tmp), "-c", str(self.tmp / "nginx.conf"), "-g", globals_]
        )


APACHE_MODULES = ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules")


def find_apache() -> tuple[str, Path]:
    """httpd and its modules folder ($APACHE2, PATH, /usr/sbin); absent: skip with the
    reason, or fail under CI=true (where .ci/run installs Debian's apache2)."""
    wanted = os.environ.get("APACHE2")
    if wanted:
        binary = wanted if os.access(wanted, os.X_OK) else None
    else:
        binary = shutil.which("apache2") or shutil.which("httpd")
        for candidate in ("/usr/sbin/apache2", "/usr/sbin/httpd"):
            if binary is None and os.access(candidate, os.X_OK):
                binary = candidate
    modules = next((Path(d) for d in APACHE_MODULES if Path(d, "mod_headers.so").exists()), None)
    if binary is None or modules is None:
        reason = "apache2 (httpd with mod_headers) is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it (apt-get install -y apache2)")
        pytest.skip(f"{reason}; apt-get install -y apache2 to run it")
    return binary, modules


def apache_modules(modules: Path, names: Sequence[str]) -> str:
    """LoadModule lines for an MPM and the named modules (headers, ssl, proxy, ...)."""
    mpm = next(
        (m for m in ("mod_mpm_event.so", "mod_mpm_prefork.so") if (modules / m).exists()), None
    )
    lines = [f"LoadModule mpm_{mpm[8:-3]}_module {modules / mpm}"] if mpm else []
    lines += [f"LoadModule {name}_module {modules / f'mod_{name}.so'}" for name in names]
    return "\n".join(lines) + "\n"


APACHE_CONF = """\
ServerRoot {tmp}
ServerName {host}
PidFile {tmp}/httpd.pid
ErrorLog {tmp}/error.log
LogLevel warn
{user}
Listen 127.0.0.1:{http_port}
Listen 127.0.0.1:{https_port}
{modules}
<VirtualHost *:{http_port}>
    ServerAlias {subdomain}
    RewriteEngine on
    RewriteRule ^ https://%{{HTTP_HOST}}%{{REQUEST_URI}} [R=301,L]
</VirtualHost>
<VirtualHost *:{https_port}>
    ServerAlias {subdomain}
    SSLEngine on
    SSLCertificateFile {tmp}/cert.pem
    SSLCertificateKeyFile {tmp}/key.pem
    Include {tmp}/rollout-headers.conf
    ProxyPreserveHost On
    RequestHeader set X-Forwarded-Proto "https"
    ProxyPass / http://127.0.0.1:{app_port}/
    ProxyPassReverse / http://127.0.0.1:{app_port}/
</VirtualHost>
"""


class Apache(ServerProcess):
    """A real httpd (-X, one process in the foreground) proxying to an app port."""

    name = "httpd"

    MODULES = ("authz_core", "headers", "rewrite", "ssl", "socache_shmcb", "proxy", "proxy_http")

    def __init__(self, tmp: Path, cert: Any, app_port: int) -> None:
        self.binary, self.modules = find_apache()
        self.tmp, self.app_port = tmp, app_port
        self.ports = Ports(https=free_port(), http=free_port())
        cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))

    def start(self, headers_conf: str) -> None:
        """(Re)start httpd with this rendered header snippet; wait until it listens."""
        self.stop()
        (self.tmp / "rollout-headers.conf").write_text(headers_conf)
        # httpd refuses to serve as root: as root, its one process switches to nobody
        # once it has read the certificate and opened its logs.
        user = "User nobody\nGroup nogroup" if os.geteuid() == 0 else ""
        conf = APACHE_CONF.format(
            tmp=self.tmp,
            host=HOST,
            subdomain=SUBDOMAIN,
            user=user,
            http_port=self.ports.http,
            https_port=self.ports.https,
            app_port=self.app_port,
            modules=apache_modules(self.modules, self.MODULES),
        )
        (self.tmp / "httpd.conf").write_text(conf)
        self._launch(
            [self.binary, "-X", "-f", str(self.tmp / "httpd.conf")], self.tmp / "error.log"
        )


@dataclass
class Load:
    """What 4 bounded clients saw while a stage file was swapped under them."""

    swapped: float  # monotonic time of the swap
    results: list[tuple[float, int, tuple[str | None, ...]]]  # start, status, named headers
    errors: list[str]


def load_during_swap(
    url: str, context: Any, host: str, names: Sequence[str], swap: Callable[[], object]
) -> Load:
    """GET url from 4 clients, call swap after 0.5 s, keep going 2.5 s more, then stop."""
    results: list[tuple[float, int, tuple[str | None, ...]]] = []
    errors: list[str] = []
    stop = threading.Event()

    def worker() -> None:
        with httpx.Client(verify=context, headers={"host": host}, timeout=10) as client:
            for _ in range(3000):  # bounded, whatever happens to the clock
                if stop.is_set():
                    return
                started = time.monotonic()
                try:
                    r = client.get(url)
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                results.append((started, r.status_code, tuple(r.headers.get(n) for n in names)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    swapped = time.monotonic()
    swap()
    time.sleep(2.5)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    return Load(swapped, results, errors)
