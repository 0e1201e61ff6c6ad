"""Misbehaving servers on 127.0.0.1 for the probe-fault suite: each a script run per connection.

`ScriptServer(script, tls)` accepts TCP connections on an ephemeral loopback port, completes
a TLS handshake when given a context, then hands the socket to `script(sock, stop)`, which
sends exactly the bytes of one misbehaviour (a head that never ends, a megabyte header line,
a body that never ends, ...). `stop` is set when the server stops, so every stall ends with
the test. Threads only: subprocesses (the real CLI) and async code can both talk to it.
"""

from __future__ import annotations

import datetime
import functools
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.servers import LoopbackTCP

Script = Callable[[socket.socket, threading.Event], None]
STALL = 120.0  # seconds a stalling script holds on at most (the test ends it sooner)


class ScriptServer:
    """A threaded server on 127.0.0.1 running `script` on every connection (after TLS)."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self._tcp = LoopbackTCP(self._serve)
        self.stop_event = self._tcp.stop_event
        self.port: int = self._tcp.port

    def __enter__(self) -> ScriptServer:
        self._tcp.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._tcp.stop()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(STALL)
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            self.script(sock, self.stop_event)
        except (OSError, ssl.SSLError, ValueError):
            return  # the client gave up (as it should): nothing left to send
        finally:
            sock.close()


def read_head(sock: socket.socket) -> str:
    """Read one request head; its path ('' when the client sent nothing whole)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return ""
        data += chunk
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    return parts[1] if len(parts) > 1 else ""


GOOD = b"X-Content-Type-Options: nosniff\r\n"  # the one header the suite's stage expects
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\n" + GOOD + b"Content-Length: 0\r\n\r\n"


def read_page(sock: socket.socket) -> bool:
    """Read requests, answering any but the page `/` with a correct 404 (the 404 probe);
    True once `/` is asked for, False when the client leaves first."""
    while path := read_head(sock):
        if path == "/":
            return True
        sock.sendall(NOT_FOUND)
    return False


def answer(raw: bytes) -> Script:
    """Read a request, send raw, close (a correct 404 for the 404 probe's path)."""

    def script(sock: socket.socket, stop: threading.Event) -> None:
        if read_page(sock):
            sock.sendall(raw)

    return script


def stall(sock: socket.socket, stop: threading.Event) -> None:
    """Accept (TLS done, when TLS) and never answer."""
    stop.wait(STALL)


def tls_stall(sock: socket.socket, stop: threading.Event) -> None:
    """Read the client's TLS hello and never answer it: the handshake hangs."""
    sock.recv(65536)
    stop.wait(STALL)


def slow_loris(sock: socket.socket, stop: threading.Event) -> None:
    """A status line, then one more header line every 0.2 s: a head that never ends."""
    read_head(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\n" + GOOD)
    n = 0
    while not stop.wait(0.2):
        n += 1
        sock.sendall(f"X-Drip-{n}: {n}\r\n".encode())


def reset(sock: socket.socket, stop: threading.Event) -> None:
    """Read a request, then close with a TCP RST (SO_LINGER 0)."""
    read_head(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def endless(head: bytes, chunk: bytes) -> Script:
    """Send head, then chunk after chunk until the client goes away (or the test ends)."""

    def script(sock: socket.socket, stop: threading.Event) -> None:
        if not read_page(sock):
            return
        sock.sendall(head)
        while not stop.is_set():
            sock.sendall(chunk)

    return script


def body_of(size: int) -> Script:
    """A correct head announcing `size` bytes, then that many (the client may stop early)."""
    head = b"HTTP/1.1 200 OK\r\n" + GOOD + f"Content-Length: {size}\r\n\r\n".encode()
    block = b"\0" * 65536

    def script(sock: socket.socket, stop: threading.Event) -> None:
        if not read_page(sock):
            return
        sock.sendall(head)
        sent = 0
        while sent < size and not stop.is_set():
            sock.sendall(block[: size - sent])
            sent += len(block)

    return script


def trickle(sock: socket.socket, stop: threading.Event) -> None:
    """A correct head announcing 1000 bytes, then one byte a second."""
    if not read_page(sock):
        return
    sock.sendall(b"HTTP/1.1 200 OK\r\n" + GOOD + b"Content-Length: 1000\r\n\r\n")
    while not stop.wait(1.0):
        sock.sendall(b".")


def redirect_loop(sock: socket.socket, stop: threading.Event) -> None:
    """/ -> /a -> /b -> / ... on one kept-alive connection."""
    hops = {"/": "/a", "/a": "/b", "/b": "/"}
    while path := read_head(sock):
        to = hops.get(path, "/")
        sock.sendall(f"HTTP/1.1 301 X\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n".encode())


def context(cert_pem: bytes, key_pem: bytes, folder: Path) -> ssl.SSLContext:
    """A server TLS context serving this certificate and key."""
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(key_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return ctx


@functools.cache
def self_signed(host: str, folder: Path) -> ssl.SSLContext:
    """A server context whose certificate names `host` and is signed by its own key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return context(cert.public_bytes(serialization.Encoding.PEM), key_pem, folder)


def issued(ca: trustme.CA, *hosts: str, expired: bool = False) -> ssl.SSLContext:
    """A server context with a leaf from ca for hosts (valid, or expired in 2020)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if expired:
        past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
        ca.issue_cert(*hosts, not_before=past, not_after=past).configure_cert(ctx)
    else:
        ca.issue_cert(*hosts).configure_cert(ctx)
    return ctx
