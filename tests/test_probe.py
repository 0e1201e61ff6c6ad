"""The prober against real loopback servers: raw header lines, connecting like curl, faults."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.errors import GateError, InputError
from rollout.probe import (
    ConnectTo,
    Fault,
    ProbeOptions,
    Prober,
    Resolve,
    Result,
    probe_many,
    run,
)
from tests.servers import RawServer, Reply, redirect, refused_port, silent_server, tls_material

pytestmark = pytest.mark.integration

HOST = "www.example.test"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.fixture
def server() -> Iterator[RawServer]:
    """An HTTPS raw server with a trustme certificate for *.example.test."""
    with RawServer(tls=tls_material().server) as srv:
        yield srv


def options(port: int, **kw: object) -> ProbeOptions:
    """Options that route www.example.test:443 to the loopback port, trusting the test CA."""
    base: dict[str, object] = {
        "connect_to": (ConnectTo(HOST, 443, "127.0.0.1", port),),
        "cacert": tls_material().ca_path,
        "timeout": 5.0,
    }
    base.update(kw)
    return ProbeOptions(**base)  # type: ignore[arg-type]


def fetch(url: str, opts: ProbeOptions) -> Result:
    """Fetch one URL with a fresh prober."""
    return asyncio.run(probe_many([url], opts))[0]


def test_raw_lines_kept_in_order_with_case_and_duplicates(server: RawServer) -> None:
    """Header lines come back exactly as sent: order, name case and duplicates kept."""
    server.routes["/"] = Reply(
        headers=[("sTRICT-transport-SECURITY", "max-age=1"), ("X-A", "1"), ("x-a", "2")]
    )
    result = fetch(f"https://{HOST}/", options(server.port))
    assert result.fault is None and result.status == 200 and result.version == "1.1"
    assert result.headers[:3] == (
        ("sTRICT-transport-SECURITY", "max-age=1"),
        ("X-A", "1"),
        ("x-a", "2"),
    )
    assert result.get_all("x-a") == ["1", "2"]


def test_folded_value_is_unfolded_into_one_line(server: RawServer) -> None:
    """An obs-fold continuation line joins its header's value, its CRLF dropped and its
    leading whitespace kept (aiohttp's parser, as RFC 9112 section 5.2 allows)."""
    server.routes["/"] = Reply(headers=[("X-Long", "a"), ("", "   b"), ("X-Next", "c")])
    result = fetch(f"https://{HOST}/", options(server.port))
    assert result.get_all("x-long") == ["a   b"] and result.get_all("x-next") == ["c"]


def test_connect_to_keeps_sni_and_host_header(server: RawServer) -> None:
    """connect-to reaches the loopback port while SNI, certificate and Host name the URL's host."""
    result = fetch(f"https://{HOST}/x?y=1", options(server.port))
    assert result.fault is None
    assert server.requests[-1] == (
        "/x?y=1",
        {"host": HOST, "user-agent": server.requests[-1][1]["user-agent"], "accept": "*/*"},
    )


def test_resolve_maps_host_to_address(server: RawServer) -> None:
    """resolve HOST:PORT:ADDR connects to ADDR on the URL's port, certificate checked on HOST."""
    opts = ProbeOptions(
        resolve=(Resolve(HOST, server.port, "127.0.0.1"),),
        cacert=tls_material().ca_path,
        timeout=5.0,
    )
    server.routes["/"] = Reply()
    result = fetch(f"https://{HOST}:{server.port}/", opts)
    assert result.fault is None and result.status == 200
    assert server.requests[-1][1]["host"] == f"{HOST}:{server.port}"


def test_connection_is_reused(server: RawServer) -> None:
    """Sequential probes to one origin share a kept-alive connection."""
    server.routes["/"] = Reply()

    async def run() -> list[Result]:
        async with Prober(options(server.port, concurrency=1)) as prober:
            return [await prober.fetch(f"https://{HOST}/") for _ in range(5)]

    assert all(r.status == 200 for r in asyncio.run(run()))
    assert len(server.requests) == 5


@pytest.mark.parametrize(
    ("reply", "fault"),
    [
        (Reply(fault="close"), Fault.CLOSED),
        (Reply(fault="cut"), Fault.CLOSED),
        (Reply(fault="reset"), Fault.RESET),
        (Reply(raw=b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"), Fault.MALFORMED),
        (Reply(raw=b"SSH-2.0-OpenSSH\r\n\r\n"), Fault.MALFORMED),
        (Reply(headers=[("X-Big", "a" * 70000)]), Fault.TOO_LARGE),
        (Reply(headers=[(f"X-{i}", "1") for i in range(300)]), Fault.TOO_LARGE),
        (Reply(raw=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", fault="eof"), Fault.CLOSED),
        (Reply(raw=CHUNKED + b"10\r\nabc", fault="eof"), Fault.CLOSED),
        (Reply(raw=CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n"), Fault.MALFORMED),
        (Reply(raw=b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), Fault.MALFORMED),
    ],
    ids=[
        "close",
        "cut",
        "reset",
        "malformed-line",
        "not-http",
        "too-large",
        "too-many-lines",
        "short-body",
        "short-chunk",
        "bad-chunk",
        "bad-length",
    ],
)
def test_broken_responses_are_faults(server: RawServer, reply: Reply, fault: Fault) -> None:
    """Each broken response becomes its fault, with a one-line reason naming the URL."""
    server.routes["/"] = reply
    result = fetch(f"https://{HOST}/", options(server.port))
    assert result.fault == fault
    assert result.reason.startswith(f"https://{HOST}/: ") and "\n" not in result.reason


@pytest.mark.parametrize(
    ("context", "fault"),
    [
        ("wrong_host", Fault.TLS_HOSTNAME),
        ("expired", Fault.TLS_EXPIRED),
        ("untrusted", Fault.TLS_UNTRUSTED),
    ],
)
def test_tls_failures_are_faults(context: str, fault: Fault) -> None:
    """A certificate for another host, an expired or an untrusted one is its own TLS fault."""
    with RawServer(tls=getattr(tls_material(), context)) as srv:
        result = fetch(f"https://{HOST}/", options(srv.port))
    assert result.fault == fault, result.reason
    assert HOST in result.reason


def test_insecure_accepts_an_untrusted_certificate() -> None:
    """--insecure skips certificate checks, and only when asked."""
    with RawServer(tls=tls_material().untrusted) as srv:
        result = fetch(f"https://{HOST}/", options(srv.port, insecure=True))
    assert result.fault is None and result.status == 404


def test_broken_tls_responses_leave_no_socket_open(server: RawServer) -> None:
    """Connections given up on mid-response are closed before the prober returns, even
    when the server never answers TLS's close_notify."""
    server.routes["/"] = Reply(raw=b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", fault="stall")
    server.routes["/big"] = Reply(headers=[("X-Big", "a" * 70000)], fault="stall")
    urls = [f"https://{HOST}/", f"https://{HOST}/big"] * 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = asyncio.run(probe_many(urls, options(server.port)))
        gc.collect()
    assert {r.fault for r in results} == {Fault.MALFORMED, Fault.TOO_LARGE}
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_connect_to_a_host_name_keeps_sni(server: RawServer) -> None:
    """connect-to may name a host: it is resolved, and SNI and Host still name the URL's."""
    server.routes["/"] = Reply()
    opts = options(server.port, connect_to=(ConnectTo(HOST, 443, "localhost", server.port),))
    result = fetch(f"https://{HOST}/", opts)
    assert result.fault is None and result.status == 200
    assert server.requests[-1][1]["host"] == HOST


def test_not_an_http_url_is_malformed() -> None:
    """A URL that is not http(s), or has no valid port, is a malformed fault, not a crash."""
    results = asyncio.run(probe_many(["ftp://x.example.test/", "https://x:99999/"], ProbeOptions()))
    assert [r.fault for r in results] == [Fault.MALFORMED, Fault.MALFORMED]
    assert results[0].reason == "ftp://x.example.test/: not an http(s) URL"


def test_refused_and_unresolvable() -> None:
    """Nothing listening is 'refused'; a name that does not resolve is 'dns'."""
    with refused_port() as port:
        assert fetch(f"https://{HOST}/", options(port)).fault == Fault.REFUSED
    assert fetch("https://no-such-host.invalid/", ProbeOptions(timeout=5)).fault == Fault.DNS


def test_silent_server_times_out_within_its_timeout() -> None:
    """A server that accepts and never answers is a timeout fault, not a hang."""
    with silent_server() as port:
        started = time.monotonic()
        result = fetch(f"https://{HOST}/", options(port, timeout=0.5))
    assert result.fault == Fault.TIMEOUT and "0.5s" in result.reason
    assert time.monotonic() - started < 30  # generous: it must not hang, not be fast


def test_hanging_response_times_out(server: RawServer) -> None:
    """A server that reads the request and never answers is a timeout."""
    server.routes["/"] = Reply(fault="hang")
    assert fetch(f"https://{HOST}/", options(server.port, timeout=0.5)).fault == Fault.TIMEOUT


def test_stalled_body_keeps_the_head(server: RawServer) -> None:
    """A server that sends the head and part of the body, then stalls, is judged on its head
    (browsers apply headers as they arrive), within the timeout; its connection is dropped."""
    server.routes["/"] = Reply(
        raw=b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 10\r\n\r\nabc", fault="stall"
    )
    server.routes["/next"] = Reply(headers=[("X-B", "2")])

    async def run() -> list[Result]:
        async with Prober(options(server.port, timeout=0.5, concurrency=1)) as prober:
            return [await prober.fetch(f"https://{HOST}{path}") for path in ("/", "/next")]

    stalled, after = asyncio.run(run())
    assert stalled.fault is None and stalled.status == 200 and stalled.get_all("x-a") == ["1"]
    assert after.fault is None and after.get_all("x-b") == ["2"]


def test_overall_deadline_stops_the_run() -> None:
    """Once the overall deadline has passed, remaining probes fail as timeouts at once."""
    with silent_server() as port:
        results = asyncio.run(
            probe_many(
                [f"https://{HOST}/{i}" for i in range(4)],
                options(port, timeout=30, deadline=0.5, concurrency=2),
            )
        )
    assert [r.fault for r in results] == [Fault.TIMEOUT] * 4


def test_redirect_chain_and_loop(server: RawServer) -> None:
    """Same-origin redirects are followed; a loop ends the chain as a redirect-loop fault."""
    server.routes["/a"] = redirect("/b")
    server.routes["/b"] = redirect(f"https://{HOST}/c", 308)
    server.routes["/c"] = Reply()
    server.routes["/loop"] = redirect("/loop2")
    server.routes["/loop2"] = redirect("/loop")

    async def run(url: str) -> list[Result]:
        async with Prober(options(server.port)) as prober:
            return await prober.chain(url)

    chain = asyncio.run(run(f"https://{HOST}/a"))
    assert [r.status for r in chain] == [301, 308, 200]
    loop = asyncio.run(run(f"https://{HOST}/loop"))
    assert loop[-1].fault == Fault.REDIRECT_LOOP


def test_cross_origin_redirect_is_not_followed(server: RawServer) -> None:
    """A redirect to another origin ends the chain at the redirect."""
    server.routes["/"] = redirect("https://elsewhere.example.test/")

    async def run() -> list[Result]:
        async with Prober(options(server.port)) as prober:
            return await prober.chain(f"https://{HOST}/")

    chain = asyncio.run(run())
    assert len(chain) == 1 and chain[0].location == "https://elsewhere.example.test/"


def test_unreadable_cacert_is_bad_input(tmp_path: Path) -> None:
    """A cacert that is not a PEM file is refused as bad input naming the file."""
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(InputError, match=re.escape(f"cacert: {bad}")):
        asyncio.run(probe_many([], ProbeOptions(cacert=bad)))


def test_location_with_spaces_and_non_ascii_is_percent_encoded(server: RawServer) -> None:
    """A redirect to a path with spaces or non-ASCII text is followed, percent-encoded."""
    server.routes["/"] = Reply(
        raw="HTTP/1.1 301 X\r\nLocation: /ä b\r\nContent-Length: 0\r\n\r\n".encode("latin-1")
    )
    server.routes["/%C3%A4%20b"] = Reply()

    async def run() -> list[Result]:
        async with Prober(options(server.port)) as prober:
            return await prober.chain(f"https://{HOST}/")

    assert [r.status for r in asyncio.run(run())] == [301, 200]


def test_run_does_not_wait_for_a_stuck_lookup_thread() -> None:
    """probe.run returns as soon as its coroutine does, while a call it started in the
    loop's default executor (where getaddrinfo runs) is still blocked."""
    release = threading.Event()

    async def main() -> str:
        loop = asyncio.get_running_loop()
        stuck = loop.run_in_executor(None, release.wait, 60)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stuck, 0.1)
        return "done"

    try:
        assert run(main(), ProbeOptions(deadline=5)) == "done"
        assert not release.is_set()  # still blocked: run did not join it
    finally:
        release.set()


def test_run_stops_a_coroutine_that_outlives_the_deadline() -> None:
    """A probing coroutine still running past the deadline (and its grace) is cancelled and
    reported as a failure naming the deadline, not left to run."""
    cancelled = []

    async def main() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(GateError, match=re.escape("did not finish within the deadline of 0.5s")):
        run(main(), ProbeOptions(deadline=0.5))
    assert cancelled == [True]
