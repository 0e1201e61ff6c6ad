"""Asynchronous HTTP probing like curl, on aiohttp: raw header lines in order, faults as results.

A probe sends one `GET` and keeps the response head exactly as the server sent it: every
header line, in order, with its original name case and duplicates kept (aiohttp's
`raw_headers`). Connecting follows curl: `resolve` and `connect-to` change where the TCP
connection goes while SNI, the Host header and certificate verification stay on the
URL's host name.

Why aiohttp and not httpx: on 2,000 local HTTPS probes at concurrency 32 (see
bench/README.md), httpx 0.28 took 25-90x as long as a raw aiohttp loop (6.3x over HTTP/2),
and even httpcore driven one connection per worker on plain asyncio stayed at 1.9x;
probing through aiohttp takes 1.28x, and a whole verify of 1,000 pages 0.98x. Every
aiohttp error becomes a `Fault` in `rollout.http_faults`, and only there.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import ipaddress
import math
import socket
import ssl
import threading
import types
import weakref
from collections.abc import Callable, Coroutine, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from rollout import __version__
from rollout.addresses import ConnectTo, Resolve
from rollout.errors import GateError, InputError
from rollout.http_faults import Fault, translate

__all__ = [
    "ConnectTo",
    "Fault",
    "ProbeOptions",
    "Prober",
    "Resolve",
    "Result",
    "origin_of",
    "probe_many",
    "run",
]

USER_AGENT = f"rollout/{__version__}"
MAX_LINE = 64 * 1024  # bytes in one head line; curl allows 100 KiB for the head, nginx sends 4-8
MAX_HEADERS = 256  # header lines in one head
MAX_BODY = 1024 * 1024  # bodies are read only to reuse the connection; bigger ones close it
MAX_HOPS = 5
# What `run` allows past the deadline: closing the connections (each close is bounded, see
# Prober.aclose) and judging the responses. The deadline itself already bounds every probe.
CLOSE_GRACE = 2.0

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class ProbeOptions:
    """How to connect and how long to wait; the defaults are the CLI's."""

    resolve: Sequence[Resolve] = ()
    connect_to: Sequence[ConnectTo] = ()
    cacert: Path | None = None
    insecure: bool = False
    timeout: float = 10.0  # seconds per request, connect to last byte
    deadline: float | None = None  # seconds for a whole run; None: no overall limit
    concurrency: int = 32


@dataclass(frozen=True)
class Result:
    """One response head as sent, or the fault that prevented one."""

    url: str
    status: int | None = None
    version: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # raw lines in order, original name case
    fault: Fault | None = None
    reason: str = ""  # one line naming the URL, for faults

    @property
    def ok(self) -> bool:
        return self.fault is None

    def get_all(self, name: str) -> list[str]:
        """Every value of one header, one per header line, in order."""
        return list(self._by_name.get(name.lower(), ()))

    @functools.cached_property
    def _by_name(self) -> dict[str, list[str]]:
        # Judging one response asks for a dozen names: index its lines once.
        index: dict[str, list[str]] = {}
        for n, v in self.headers:
            index.setdefault(n.lower(), []).append(v)
        return index

    @property
    def location(self) -> str | None:
        """The redirect target resolved against the URL, if exactly one Location was sent."""
        values = self.get_all("location")
        if self.status not in _REDIRECTS or len(values) != 1:
            return None
        return urljoin(self.url, values[0])


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, lower-case host, port) of an http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


class _CurlResolver(AbstractResolver):
    """Sends a host:port to its connect-to or resolve address; aiohttp takes SNI and the
    certificate's expected name from `hostname`, so those stay on the URL's host."""

    def __init__(self, target: Callable[[str, int], tuple[str, int]]) -> None:
        self._target = target
        self._system = aiohttp.DefaultResolver()
        self.pending: collections.Counter[str] = collections.Counter()  # host -> lookups

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addr, addr_port = self._target(host, port)
        addr = addr.strip("[]")  # an IPv6 address as written in a URL or a curl option
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            self.pending[host] += 1
            try:
                found = await self._system.resolve(addr, addr_port, family)
            finally:
                self.pending[host] -= 1
            return [ResolveResult(**{**r, "hostname": host}) for r in found]
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [
            ResolveResult(
                hostname=host,
                host=str(ip),
                port=addr_port,
                family=family,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        await self._system.close()


class Prober:
    """Probes sharing one TLS context, one concurrency gate and one aiohttp session, whose
    connector keeps a pool of kept-alive connections per origin; use as
    `async with Prober(options) as p: await p.fetch(url)`."""

    def __init__(self, options: ProbeOptions) -> None:
        self.options = options
        self.ssl = _ssl_context(options)
        self._gate = asyncio.Semaphore(max(1, options.concurrency))
        loop = asyncio.get_running_loop()
        self._deadline = None if options.deadline is None else loop.time() + options.deadline
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._timeout = _timeout(options.timeout)
        self._resolver = _CurlResolver(self.target)
        tracing = aiohttp.TraceConfig()
        tracing.on_connection_create_start.append(_connecting)
        tracing.on_connection_create_end.append(_connected)
        tracing.on_connection_reuseconn.append(_connected)
        connector = aiohttp.TCPConnector(
            ssl=self.ssl,
            resolver=self._resolver,
            limit=max(1, options.concurrency),
            socket_factory=self._socket,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": USER_AGENT, "Accept": "*/*"},
            skip_auto_headers=("Accept-Encoding",),  # bodies are dropped unread anyway
            cookie_jar=aiohttp.DummyCookieJar(),  # each probe sees the server as a stranger
            auto_decompress=False,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS,
            trace_configs=[tracing],
        )

    async def __aenter__(self) -> Prober:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection, waiting briefly so no socket outlives the event loop."""
        await self._session.close()
        await self._resolver.close()
        # aiohttp closes a TLS connection it gave up on (a broken response) by sending
        # close_notify and waiting for the peer's; CPython before 3.12.8 then ignores an
        # abort (cpython#118960), so a peer that never answers would leave the socket open
        # past the event loop. Shutting the socket down ends that wait at once.
        for sock in list(self._sockets):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _ in range(100):
            if all(s.fileno() == -1 for s in self._sockets):
                break
            await asyncio.sleep(0)

    def _socket(self, addr_info: aiohttp.AddrInfoType) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family, kind, proto)
        self._sockets.add(sock)
        return sock

    def target(self, host: str, port: int) -> tuple[str, int]:
        """Where curl would connect for host:port, given connect-to and resolve."""
        # The plan's parser keeps addresses without IPv6 brackets and refuses curl's
        # wildcards, so an entry applies exactly to its own HOST:PORT.
        for c in self.options.connect_to:
            if (c.host, c.port) == (host, port):
                return c.addr, c.addr_port
        for r in self.options.resolve:
            if (r.host, r.port) == (host, port):
                return r.addr, port
        return host, port

    async def fetch(self, url: str) -> Result:
        """GET one URL; never raises for network trouble, returns a faulted Result."""
        async with self._gate:
            budget = self.options.timeout
            if self._deadline is not None:
                left = self._deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    return _faulted(url, Fault.TIMEOUT, "the overall deadline passed first")
                budget = min(budget, left)
            phase = _Phase()
            try:
                timeout = self._timeout if budget == self.options.timeout else _timeout(budget)
                return await self._fetch(url, timeout, phase)
            except TimeoutError:  # aiohttp's timeouts are TimeoutErrors too
                why = f"no response head within {_seconds(budget)}s ({self._stalled(url, phase)})"
                return _faulted(url, Fault.TIMEOUT, why)
            except aiohttp.ClientError as exc:
                return self._fault(url, exc)

    def _stalled(self, url: str, phase: _Phase) -> str:
        """Where a timed-out request was: resolving, connecting or waiting for the head."""
        _, host, port = origin_of(url)
        if phase.connected:
            return "connected, but no complete response head came"
        if self._resolver.pending[host]:
            return f"still resolving {host}"
        if phase.connecting:
            addr, addr_port = self.target(host, port)
            return f"still connecting to {addr}:{addr_port}: TCP or TLS handshake"
        return "waiting for a free connection"

    def _fault(self, url: str, exc: aiohttp.ClientError) -> Result:
        try:
            scheme, host, port = origin_of(url)
        except ValueError:
            return _faulted(url, Fault.MALFORMED, "not a valid URL")
        if scheme not in ("http", "https") or not host:
            return _faulted(url, Fault.MALFORMED, "not an http(s) URL")
        addr, addr_port = self.target(host, port)
        return _faulted(url, *translate(exc, host, f"{addr}:{addr_port}"))

    async def chain(self, url: str, max_hops: int = MAX_HOPS) -> list[Result]:
        """Fetch a URL and follow same-origin redirects; a cross-origin one ends the chain."""
        seen = {url}
        results = [await self.fetch(url)]
        while (nxt := results[-1].location) is not None and origin_of(nxt) == origin_of(url):
            if nxt in seen or len(results) > max_hops:
                why = (
                    f"redirects {len(results)} times, back to {nxt}"
                    if nxt in seen
                    else (f"still redirecting after {max_hops} hops")
                )
                results.append(_faulted(nxt, Fault.REDIRECT_LOOP, why))
                break
            seen.add(nxt)
            results.append(await self.fetch(nxt))
        return results

    async def _fetch(self, url: str, timeout: aiohttp.ClientTimeout, phase: _Phase) -> Result:
        # A Location may carry spaces or non-ASCII text: yarl percent-encodes it, as curl does.
        async with self._session.get(
            url, allow_redirects=False, timeout=timeout, trace_request_ctx=phase
        ) as response:
            headers = tuple(
                [
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in response.raw_headers
                ]
            )
            await _drain(response)
            v = response.version
            version = None if v is None else f"{v.major}.{v.minor}"
            return Result(url, response.status, version, headers)


class _Phase:
    """How far one request got, as aiohttp's trace signals tell (for a timeout's reason)."""

    __slots__ = ("connected", "connecting")

    def __init__(self) -> None:
        self.connecting = False
        self.connected = False


async def _connecting(
    session: aiohttp.ClientSession, ctx: types.SimpleNamespace, params: object
) -> None:
    ctx.trace_request_ctx.connecting = True


async def _connected(
    session: aiohttp.ClientSession, ctx: types.SimpleNamespace, params: object
) -> None:
    ctx.trace_request_ctx.connected = True


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read a small body so its connection can carry the next probe; a big or unbounded
    one stays unread, and aiohttp closes its connection instead of reusing it."""
    if response.content.is_eof():
        return  # the whole body came with the head: nothing left to wait for
    chunked = response.headers.get("Transfer-Encoding", "").lower().endswith("chunked")
    length = response.content_length
    if not chunked and (length is None or length > MAX_BODY):
        return
    read = 0
    try:
        while read <= MAX_BODY and (chunk := await response.content.readany()):
            read += len(chunk)
    except TimeoutError:
        # A body that trickles past the timeout (a stream, a stalled server) does not undo
        # the head: browsers apply headers as they arrive. The connection is not reused.
        return


def _seconds(value: float) -> str:
    """A duration for a message: 1, 0.5, 12.25 (a deadline-cut budget is 0.99974...)."""
    return f"{round(value, 2):g}"


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    # aiohttp's timer bounds the whole request, connect to the last body byte read. By
    # default it rounds deadlines over 5 s up to a whole second; an infinite threshold
    # makes it fire on time.
    return aiohttp.ClientTimeout(total=max(seconds, 0.001), ceil_threshold=math.inf)


def _faulted(url: str, fault: Fault, why: str) -> Result:
    return Result(url, fault=fault, reason=f"{url}: {why}")


def _ssl_context(options: ProbeOptions) -> ssl.SSLContext:
    cacert = options.cacert
    try:
        # The file's identity is part of the key, so an edited cacert is read again.
        stamp = None if cacert is None else (cacert.stat().st_mtime_ns, cacert.stat().st_size)
    except OSError:
        stamp = None
    return _cached_context(cacert, stamp, options.insecure)


@functools.lru_cache(maxsize=8)
def _cached_context(cacert: Path | None, stamp: object, insecure: bool) -> ssl.SSLContext:
    # Loading the system's trust roots takes ~20 ms, as long as a hundred probes: build the
    # context once per process (advance verifies several times), not once per prober.
    ctx = ssl.create_default_context()
    if cacert is not None:
        try:
            ctx.load_verify_locations(cafile=str(cacert))
        except (OSError, ssl.SSLError) as exc:
            raise InputError(f"cacert: {cacert}: not a readable PEM file ({exc})") from None
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


P = ParamSpec("P")
T = TypeVar("T")


class _LookupThreads(concurrent.futures.ThreadPoolExecutor):
    """An event loop's default executor that runs each call in a daemon thread of its own
    and never waits for one: a getaddrinfo stuck behind a slow resolver is left to finish
    (or not) on its own, instead of holding the run at exit as asyncio.run's executor does.
    aiohttp caches and shares lookups per host, so there is about one thread per host."""

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the waiting coroutine, as an executor does
                future.set_exception(exc)
            else:
                future.set_result(result)

        threading.Thread(target=work, name="rollout-lookup", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return  # nothing to join: the threads are daemons, and a stuck one is abandoned


def run(main: Coroutine[Any, Any, T], options: ProbeOptions | None = None) -> T:
    """Run a probing coroutine to its end on a fresh event loop, as asyncio.run does, but
    bounded: it returns within the options' deadline (and CLOSE_GRACE), and never waits for
    a lookup thread stuck in getaddrinfo. Past that bound it raises GateError (exit 1).
    Every synchronous entry point that probes (verify, revert's confirmation) goes through it."""
    deadline = None if options is None else options.deadline
    loop = asyncio.new_event_loop()
    loop.set_default_executor(_LookupThreads())
    limit = None if deadline is None else deadline + CLOSE_GRACE
    try:
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(asyncio.wait_for(main, limit))
        except TimeoutError:
            raise GateError(
                f"the probes did not finish within the deadline of {_seconds(deadline or 0)}s"
            ) from None
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what the run left (a shared lookup, a connection closing), as asyncio.run does."""
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    if left:
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))


async def probe_many(urls: Iterable[str], options: ProbeOptions) -> list[Result]:
    """Fetch every URL once (no redirects followed), in the order given."""
    async with Prober(options) as prober:
        return list(await asyncio.gather(*(prober.fetch(u) for u in urls)))
