"""The FAQ's nginx traps, run for real: each broken config fails verify with the finding id
the FAQ names, and each fixed one passes.

The FAQ (docs/faq.md) includes the files in examples/traps verbatim; here the same files
run under a real nginx, with only the listen ports, certificate paths and upstream port
swapped for loopback ones. The upstream is a bare ASGI app under uvicorn that answers `/`
and 404s, sending X-Frame-Options itself in the duplicate trap, as an app middleware would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.conftest import Result
from tests.integration.rollout_itest import Nginx, UvicornThread, find_nginx, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.nginx]

TRAPS = Path(__file__).resolve().parents[2] / "examples" / "traps"
HOSTS = ("example.test", "www.example.test")

PLAN = """\
[policy]
x-frame-options = "DENY"
x-content-type-options = "nosniff"

[environments.production]
urls = {urls}
edge = ["x-frame-options", "x-content-type-options"]
connect-to = {connect_to}
cacert = "{cacert}"
"""


def upstream(*, sends_xfo: bool) -> Callable[..., Any]:
    """`/` answers 200, anything else 404; with sends_xfo, every answer carries DENY."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status = 200 if scope["path"] == "/" else 404
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"3")]
        if sends_xfo:
            headers.append((b"x-frame-options", b"DENY"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok\n"})

    return app


def _local(conf: str, nginx: Nginx, snippet: Path) -> str:
    """The FAQ's server blocks on loopback ports, with this test's certificate and app."""
    tmp = nginx.tmp
    # The snippet holds what `rollout render` writes: copy it beside the test's config.
    local_snippet = tmp / "security-headers.conf"
    local_snippet.write_text(snippet.read_text())
    conf = re.sub(r"listen 443 ssl;", f"listen 127.0.0.1:{nginx.ports.https} ssl;", conf)
    conf = re.sub(r"listen 80;", f"listen 127.0.0.1:{nginx.ports.http};", conf)
    conf = conf.replace("/etc/ssl/example.pem", str(tmp / "cert.pem"))
    conf = conf.replace("/etc/ssl/example.key", str(tmp / "key.pem"))
    conf = conf.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{nginx.app_port}")
    conf = conf.replace("snippets/security-headers.conf", str(local_snippet))
    if "listen 127.0.0.1:" + str(nginx.ports.http) not in conf:
        # Traps about https only still need http to redirect, or verify fails on that.
        conf += (
            f"server {{ listen 127.0.0.1:{nginx.ports.http}; server_name {' '.join(HOSTS)}; "
            "return 301 https://$host$request_uri; }\n"
        )
    return conf


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Callable[[str, bool], Path]]:
    """Serve one trap file under nginx in front of the upstream; return a plan for it."""
    binary = find_nginx()
    ca = trustme.CA()
    cacert = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cacert))
    cert = ca.issue_cert(*HOSTS)
    started: list[tuple[Nginx, UvicornThread]] = []

    def serve(name: str, sends_xfo: bool) -> Path:
        app = UvicornThread(upstream(sends_xfo=sends_xfo)).__enter__()
        folder = tmp_path / name
        folder.mkdir()
        nginx = Nginx(binary, folder, cert, app.port)
        started.append((nginx, app))
        conf = _local((TRAPS / name).read_text(), nginx, TRAPS / "security-headers.conf")
        _start(nginx, binary, conf)
        www_first = name.startswith("www-first")
        urls = [f"https://{h}/" for h in HOSTS] if www_first else ["https://www.example.test/"]
        connect = [
            f"{h}:{public}:127.0.0.1:{port}"
            for h in HOSTS
            for public, port in ((443, nginx.ports.https), (80, nginx.ports.http))
        ]
        plan = folder / "plan.toml"
        plan.write_text(
            PLAN.format(urls=json.dumps(urls), connect_to=json.dumps(connect), cacert=cacert)
        )
        return plan

    try:
        yield serve
    finally:
        for nginx, app in started:
            nginx.stop()
            app.__exit__(None, None, None)


def _start(nginx: Nginx, binary: str, servers: str) -> None:
    """Run nginx with these server blocks in a minimal http {} of its own temp folders."""
    tmp = nginx.tmp
    user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the temp folders
    temps = " ".join(f"{k}_temp_path {tmp}/{v};" for k, v in _TEMPS)
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\n{user}\nevents {{ worker_connections 64; }}\n"
        f"http {{\n    access_log off;\n    {temps}\n{servers}\n}}\n"
    )
    globals_ = f"daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log warn;"
    nginx.proc = subprocess.Popen(
        [binary, "-p", str(tmp), "-c", str(conf), "-g", globals_],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(nginx.ports.https, proc=nginx.proc)
        wait_for_port(nginx.ports.http, proc=nginx.proc)
    except RuntimeError:
        err = nginx.proc.stderr.read().decode() if nginx.proc.stderr else ""
        nginx.stop()
        raise RuntimeError(f"nginx did not start: {err}") from None


_TEMPS = (
    ("client_body", "client_body"),
    ("proxy", "proxy"),
    ("fastcgi", "fastcgi"),
    ("uwsgi", "uwsgi"),
    ("scgi", "scgi"),
)


def _failed(result: Result) -> list[tuple[str, str, str | None, str]]:
    report = json.loads(result.out)
    return sorted(
        (c["id"], c["probe"], c["header"], c["url"])
        for c in report["checks"]
        if not c["ok"] and c["severity"] == "error"
    )


WWW = "https://www.example.test/"


@pytest.mark.parametrize(
    ("trap", "sends_xfo", "failures"),
    [
        (
            "nested-location",
            False,
            [
                ("header.E001", "404", "x-content-type-options"),
                ("header.E001", "404", "x-frame-options"),
                ("header.E001", "page", "x-content-type-options"),
                ("header.E001", "page", "x-frame-options"),
            ],
        ),
        (
            "missing-on-404",
            False,
            [
                ("header.E001", "404", "x-content-type-options"),
                ("header.E001", "404", "x-frame-options"),
            ],
        ),
        (
            "duplicate",
            True,
            [("header.E002", "404", "x-frame-options"), ("header.E002", "page", "x-frame-options")],
        ),
        ("www-first", False, [("redirect.E001", "http", None)]),
    ],
)
def test_each_trap_fails_as_the_faq_says_and_its_fix_passes(
    site: Callable[[str, bool], Path],
    rollout: Callable[..., Result],
    trap: str,
    sends_xfo: bool,
    failures: list[tuple[str, str, str | None]],
) -> None:
    """The broken config fails verify with the FAQ's finding ids; the fixed one passes."""
    verify = ("verify", "production", "--stage", "off", "--json", "--plan")
    broken = rollout(*verify, str(site(f"{trap}.conf", sends_xfo)))
    assert broken.code == 1, broken.err
    assert [f[:3] for f in _failed(broken)] == failures
    if trap == "www-first":
        assert _failed(broken)[0][3] == "http://example.test/"
    fixed = rollout(*verify, str(site(f"{trap}.fixed.conf", sends_xfo)))
    assert fixed.code == 0, _failed(fixed)


def test_init_reads_the_missing_on_404_trap_as_edge_owned(
    site: Callable[[str, bool], Path], rollout: Callable[..., Result], tmp_path: Path
) -> None:
    """Headers nginx adds to pages but not to the 404 are judged edge-owned, with a note;
    with the app's own address, for sure."""
    plan = site("missing-on-404.conf", False)
    connect = json.loads(re.search(r"connect-to = (.*)", plan.read_text()).group(1))  # type: ignore[union-attr]
    cacert = re.search(r'cacert = "(.*)"', plan.read_text()).group(1)  # type: ignore[union-attr]
    flags = ["--cacert", cacert, *[a for c in connect for a in ("--connect-to", c)], "--json"]
    r = rollout("init", "https://www.example.test/", "--plan", str(tmp_path / "a.toml"), *flags)
    assert r.code == 0, r.err
    seen = {h["header"]: h for h in json.loads(r.out)["headers"]}
    assert seen["x-frame-options"]["owner"] == "edge"
    assert seen["x-frame-options"]["confidence"] == "likely"
    assert seen["x-frame-options"]["why"].startswith("on the page but not on the 404")
    assert seen["x-frame-options"]["notes"] == [
        "missing on the 404 (header.E001 on the 404 probe): send it on every status"
    ]
    app = f"http://127.0.0.1:{_upstream_port(plan)}/"
    r = rollout(
        "init",
        "https://www.example.test/",
        "--plan",
        str(tmp_path / "b.toml"),
        *flags,
        "--app-url",
        app,
    )
    assert r.code == 0, r.err
    owners = {h["header"]: (h["owner"], h["confidence"]) for h in json.loads(r.out)["headers"]}
    assert owners == {
        "x-frame-options": ("edge", "seen"),
        "x-content-type-options": ("edge", "seen"),
    }


def _upstream_port(plan: Path) -> int:
    """The app's port, from the nginx config served beside the plan."""
    conf = (plan.parent / "nginx.conf").read_text()
    return int(re.search(r"proxy_pass http://127.0.0.1:(\d+)", conf).group(1))  # type: ignore[union-attr]
