"""Faults during probes: each misbehaving server, through the real CLI, fails one named check.

Table-driven: every row is a server on 127.0.0.1 that misbehaves in one way (refused,
reset, stalled, a head that never ends, bad certificates, oversized or invalid heads,
redirect loops, huge and endless bodies, a slow resolver). `rollout verify` runs as its own
process (`python -m rollout`) against it, with `--timeout 30 --deadline 1`, so the deadline
is what must stop the stalls. Each row says what the user must see: exit 1 and the page
check failing with its finding id and a message naming the cause, or, for bodies (which
verify never judges), exit 0 on a correct head. Never a traceback; the run's overrun past
`--deadline` is measured per row (with ROLLOUT_FIGURES=FILE each row is appended to FILE as
a JSON line; docs/reliability.md has the figures). The deep run (ROLLOUT_DEEP=1) runs each
row five times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability import fault_servers as fs
from tests.reliability import figures, slow_resolver
from tests.reliability.budget import budget
from tests.servers import RawServer, redirect, refused_port, tls_material

pytestmark = pytest.mark.integration

HOST = "fault.example.test"
URL = f"https://{HOST}/"
DEADLINE = 1.0
FLAGS = ("--timeout", "30", "--deadline", f"{DEADLINE:g}", "--json")
ROOT = Path(__file__).resolve().parents[2]
OK_HEAD = b"HTTP/1.1 200 OK\r\n" + fs.GOOD + b"Content-Length: 0\r\n\r\n"

PLAN = """\
[policy]
content-security-policy = "default-src 'self'"
permissions-policy = "geolocation=()"
referrer-policy = "no-referrer"
x-frame-options = "DENY"
x-content-type-options = "nosniff"

[environments.faulty]
urls = ["{url}"]
edge = ["x-content-type-options"]
connect-to = [{connect_to}]
cacert = "{cacert}"
"""


@dataclass(frozen=True)
class Case:
    """One misbehaviour and what verify must say about it."""

    name: str
    finding: str | None  # the page check's id; None: the head is fine and verify passes
    cause: str = ""  # words the page check's message must hold
    tls: str | None = "valid"  # the server's certificate: valid, or a broken kind; None: no TLS


def _scripts(folder: Path) -> dict[str, fs.Script]:
    chunked = b"HTTP/1.1 200 OK\r\n" + fs.GOOD + b"Transfer-Encoding: chunked\r\n\r\n"
    return {
        "reset": fs.reset,
        "stall-after-accept": fs.stall,
        "tls-stall": fs.tls_stall,
        "slow-loris-head": fs.slow_loris,
        "untrusted-certificate": fs.answer(OK_HEAD),
        "expired-certificate": fs.answer(OK_HEAD),
        "wrong-host-certificate": fs.answer(OK_HEAD),
        "self-signed-certificate": fs.answer(OK_HEAD),
        "1-MB-header": fs.answer(
            b"HTTP/1.1 200 OK\r\n" + fs.GOOD + b"X-Big: " + b"a" * 2**20 + b"\r\n\r\n"
        ),
        "10000-headers": fs.answer(
            b"HTTP/1.1 200 OK\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(10_000))
            + b"Content-Length: 0\r\n\r\n"
        ),
        "invalid-bytes": fs.answer(b"HTTP/1.1 200 OK\r\nX-\x00\xff: \x01\r\n\x80\r\n\r\n"),
        "not-http": fs.answer(bytes(range(256)) * 4),
        "http-1.0-without-length": fs.answer(
            b"HTTP/1.0 200 OK\r\n" + fs.GOOD + b"\r\n" + b"body until close\n" * 1000
        ),
        "closed-mid-head": fs.answer(b"HTTP/1.1 200 OK\r\n" + fs.GOOD + b"X-Cut: hal"),
        "closed-before-answer": fs.answer(b""),
        "redirect-loop": fs.redirect_loop,
        "200-MB-body": fs.body_of(200 * 2**20),
        "endless-chunked-body": fs.endless(chunked, b"10000\r\n" + b"x" * 0x10000 + b"\r\n"),
        "endless-body-until-close": fs.endless(
            b"HTTP/1.0 200 OK\r\n" + fs.GOOD + b"\r\n", b"x" * 65536
        ),
        "body-trickling-past-the-deadline": fs.trickle,
    }


CASES = [
    Case("refused", "probe.E001", "connection refused", tls=None),
    Case("reset", "probe.E004", "reset"),
    Case("stall-after-accept", "probe.E003", "no complete response head came"),
    Case("tls-stall", "probe.E003", "TLS handshake", tls=None),
    Case("slow-loris-head", "probe.E003", "no complete response head came"),
    Case("untrusted-certificate", "probe.E002", "certificate is not trusted", tls="untrusted"),
    Case("expired-certificate", "probe.E002", "certificate has expired", tls="expired"),
    Case("wrong-host-certificate", "probe.E002", f"not valid for {HOST}", tls="wrong_host"),
    Case("self-signed-certificate", "probe.E002", "self-signed", tls="self_signed"),
    Case("1-MB-header", "probe.E004", "response head too large"),
    Case("10000-headers", "probe.E004", "too many header lines"),
    Case("invalid-bytes", "probe.E004", "malformed response"),
    Case("not-http", "probe.E004", "malformed response"),
    Case("http-1.0-without-length", None),
    Case("closed-mid-head", "probe.E004", "closed the connection mid-response"),
    Case("closed-before-answer", "probe.E004", "closed the connection without answering"),
    Case("redirect-loop", "redirect.E003", "redirects 3 times, back to"),
    Case("200-MB-body", None),
    Case("endless-chunked-body", None),
    Case("endless-body-until-close", None),
    Case("body-trickling-past-the-deadline", None),
]


@pytest.fixture(scope="module")
def http_redirector() -> Iterator[int]:
    """The origin's http:// side, well behaved: every path redirects to https://HOST/."""
    with RawServer(fallback=redirect(URL)) as server:
        yield server.port


def _tls(kind: str | None, folder: Path) -> object:
    material = tls_material()
    if kind is None:
        return None
    if kind == "valid":
        return fs.issued(material.ca, HOST)
    if kind == "self_signed":
        return fs.self_signed(HOST, folder)
    return getattr(material, kind)


def _plan(folder: Path, https_port: int, http_port: int) -> Path:
    connect_to = ", ".join(
        json.dumps(f"{HOST}:{port}:127.0.0.1:{to}")
        for port, to in ((443, https_port), (80, http_port))
    )
    plan = folder / "plan.toml"
    plan.write_text(
        PLAN.format(url=URL, connect_to=connect_to, cacert=tls_material().ca_path),
        encoding="utf-8",
    )
    return plan


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str
    took: float


def _verify(argv: list[str]) -> Ran:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    started = time.monotonic()
    proc = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return Ran(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def _record(case: str, ran: Ran) -> None:
    figures.record("probe-faults", case=case, exit=ran.code, seconds=ran.took, deadline=DEADLINE)


def _assert_seen(case: Case, ran: Ran, url: str = URL) -> None:
    """What the user sees: the exit code, one JSON object, the page check's id and cause."""
    shown = f"{case.name}: exit {ran.code} in {ran.took:.2f}s\n{ran.out}\n{ran.err}"
    assert "Traceback" not in ran.err, shown
    assert len(ran.err.splitlines()) <= 1, shown
    report = json.loads(ran.out)
    page = [c for c in report["checks"] if c["probe"] == "page" and c["url"] == url]
    if case.finding is None:
        assert ran.code == 0 and report["ok"] is True, shown
        assert page and all(c["ok"] for c in page), shown
        return
    assert ran.code == 1 and report["ok"] is False, shown
    failed = [c for c in page if not c["ok"]]
    assert [c["id"] for c in failed] == [case.finding], shown
    assert case.cause in failed[0]["message"], shown
    assert "\n" not in failed[0]["message"], shown


ROUNDS = budget(1, 5)  # each row once in CI, five times in the deep run


@pytest.mark.parametrize("round_", range(ROUNDS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_misbehaving_server_fails_one_named_check_within_the_deadline(
    case: Case, round_: int, tmp_path: Path, http_redirector: int
) -> None:
    """A misbehaving server makes verify exit 1 with the page check naming the cause (a
    correct head with an odd body passes), without a traceback, within the deadline."""
    if case.name == "refused":
        with refused_port() as port:
            plan = _plan(tmp_path, port, http_redirector)
            ran = _verify(
                [sys.executable, "-m", "rollout", "verify", "faulty", "--plan", str(plan), *FLAGS]
            )
    else:
        script = _scripts(tmp_path)[case.name]
        with fs.ScriptServer(script, _tls(case.tls, tmp_path)) as server:  # type: ignore[arg-type]
            plan = _plan(tmp_path, server.port, http_redirector)
            ran = _verify(
                [sys.executable, "-m", "rollout", "verify", "faulty", "--plan", str(plan), *FLAGS]
            )
    _record(case.name, ran)
    _assert_seen(case, ran)
    # Bounded: nothing waits for a stalled server past the deadline (generous, not a speed test).
    assert ran.took < DEADLINE + 20, f"{case.name}: {ran.took:.2f}s"


SLOW_HOST = "slow.example.test"


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_slow_resolver_is_cut_at_the_deadline(round_: int, tmp_path: Path) -> None:
    """A resolver that answers a minute late makes verify fail 'still resolving' at the
    deadline: the run neither waits for the lookup nor for its thread at exit."""
    why = slow_resolver.available()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    plan = tmp_path / "plan.toml"
    plan.write_text(
        PLAN.format(url=f"https://{SLOW_HOST}/", connect_to="", cacert=tls_material().ca_path),
        encoding="utf-8",
    )
    argv = [sys.executable, "-m", "rollout", "verify", "faulty", "--plan", str(plan), *FLAGS]
    ran = _verify(slow_resolver.command(60, argv))
    _record("slow-resolver", ran)
    _assert_seen(
        Case("slow-resolver", "probe.E003", f"still resolving {SLOW_HOST}"),
        ran,
        f"https://{SLOW_HOST}/",
    )
    # The resolver answers after 60 s: finishing well before proves nothing waited for it.
    assert ran.took < 30, f"{ran.took:.2f}s"
