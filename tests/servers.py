"""Real loopback test servers: trustme TLS, a raw-header HTTP(S) server, fault servers.

`RawServer` answers each request from a route table of `Reply` objects that say exactly
which bytes go on the wire: header lines as written (duplicates, odd case, folded
continuation lines), any status, or a fault (hang, close, reset, cut off mid-response).
It runs in a thread, so sync tests, async code and subprocesses can all talk to it.

Import as `from tests.servers import RawServer, Reply, tls_material`.
"""

from __future__ import annotations

import datetime
import functools
import socket
import socketserver
import ssl
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trustme

# Every test host name lives under example.test; one wildcard certificate covers them.
HOSTS = ("example.test", "*.example.test", "*.staging.example.test", "localhost", "127.0.0.1")


@dataclass(frozen=True)
class TLSMaterial:
    """A test CA and server contexts: valid, for another host, and expired."""

    ca: trustme.CA
    ca_path: Path
    server: ssl.SSLContext
    wrong_host: ssl.SSLContext
    expired: ssl.SSLContext
    untrusted: ssl.SSLContext  # valid names, issued by a CA nobody trusts


def _context(cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx


@functools.cache
def tls_material() -> TLSMaterial:
    """One CA per test session, its PEM on disk, and server contexts for each TLS case."""
    ca = trustme.CA()
    folder = Path(tempfile.mkdtemp(prefix="rollout-tls-"))
    ca_path = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    return TLSMaterial(
        ca=ca,
        ca_path=ca_path,
        server=_context(ca.issue_cert(*HOSTS)),
        wrong_host=_context(ca.issue_cert("other.invalid")),
        expired=_context(ca.issue_cert(*HOSTS, not_before=past, not_after=past)),
        untrusted=_context(trustme.CA().issue_cert(*HOSTS)),
    )


@dataclass
class Reply:
    """One response: header lines exactly as sent, or a fault instead of a response."""

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b"ok\n"
    raw: bytes | None = None  # sent verbatim instead of status/headers/body
    # "hang", "close", "reset", "cut" (half the bytes, then close), "eof" (all, then close),
    # "stall" (all, then hold the connection open without reading, never closing it)
    fault: str | None = None

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        lines = [f"HTTP/1.1 {self.status} X"]
        lines += [f"{name}: {value}" if name else value for name, value in self.headers]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def redirect(location: str, status: int = 301, *extra: tuple[str, str]) -> Reply:
    """A redirect to location, with any extra header lines."""
    return Reply(status, [("Location", location), *extra], body=b"")


class LoopbackTCP:
    """A threaded TCP server on 127.0.0.1 handing each connection to `serve`, in its own
    thread; `stop_event` tells long-running handlers to give up."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self.stop_event = threading.Event()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@dataclass
class RawServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 answering from `routes` (path -> Reply);
    unknown paths get `fallback`. Set `tls` to serve HTTPS."""

    routes: dict[str, Reply] = field(default_factory=dict)
    fallback: Reply = field(default_factory=lambda: Reply(404, body=b"not found\n"))
    tls: ssl.SSLContext | None = None
    requests: list[tuple[str, Mapping[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._tcp = LoopbackTCP(self._serve)
        self._stop = self._tcp.stop_event
        self.port: int = self._tcp.port

    def start(self) -> RawServer:
        self._tcp.start()
        return self

    def stop(self) -> None:
        self._tcp.stop()

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            buffer = b""
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if " " in lines[0] else "/"
                fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
                headers = {k.strip().lower(): v.strip() for k, v in fields.items()}
                self.requests.append((path, headers))
                reply = self.routes.get(path, self.fallback)
                if not self._send(sock, reply):
                    return
        except (OSError, ssl.SSLError, ValueError):
            return  # the client went away or failed its handshake: nothing to serve
        finally:
            sock.close()

    def _send(self, sock: socket.socket, reply: Reply) -> bool:
        if reply.fault == "hang":
            self._stop.wait(60)
            return False
        if reply.fault == "close":
            return False
        if reply.fault == "reset":
            # SO_LINGER with a zero timeout turns close() into a TCP RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        data = reply.encode()
        if reply.fault == "cut":
            sock.sendall(data[: max(1, len(data) // 2)])
            return False
        sock.sendall(data)
        if reply.fault == "stall":
            self._stop.wait(60)
            return False
        return reply.fault != "eof"


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port with nothing listening: connections to it are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    yield port


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (not even TLS)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()
