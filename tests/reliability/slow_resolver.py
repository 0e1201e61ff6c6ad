"""A real slow resolver: the system's own getaddrinfo, pointed at a DNS server that answers late.

`python -m tests.reliability.slow_resolver DELAY -- ARGV...` must run inside
`unshare --user --map-root-user --mount --net` (see `command`): in that private network
namespace it brings loopback up, binds a UDP DNS server to 127.0.0.1:53 that answers every
query DELAY seconds late (A 127.0.0.1 for every name, no AAAA), bind-mounts a resolv.conf
naming it over /etc/resolv.conf, then runs ARGV and exits with its status. Nothing outside
the namespace sees the server or the changed resolv.conf; glibc's getaddrinfo in ARGV
blocks for DELAY seconds on each lookup, as it does behind a slow or distant resolver.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import dns.message
import dns.rdatatype
import dns.rrset

# glibc retries a query after `timeout` seconds; one slow answer per lookup needs more.
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:30 attempts:1\n"


def available() -> str | None:
    """None when user, mount and network namespaces can be made here, else why not."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2)"
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "--net", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot make namespaces here: {probe.stderr.strip()}"
    return None


def command(delay: float, argv: list[str]) -> list[str]:
    """argv run behind a resolver that answers every lookup `delay` seconds late."""
    return [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "--net",
        sys.executable,
        "-m",
        "tests.reliability.slow_resolver",
        f"{delay:g}",
        "--",
        *argv,
    ]


def _answer(sock: socket.socket, query: bytes, client: object, delay: float) -> None:
    timer = threading.Timer(delay, _reply, (sock, query, client))
    timer.daemon = True
    timer.start()


def _reply(sock: socket.socket, query: bytes, client: object) -> None:
    request = dns.message.from_wire(query)
    response = dns.message.make_response(request)
    question = request.question[0]
    if question.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "127.0.0.1"))
    sock.sendto(response.to_wire(), client)  # type: ignore[arg-type]


def serve(delay: float) -> None:
    """Answer DNS queries on 127.0.0.1:53, each `delay` seconds late, in a daemon thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))

    def loop() -> None:
        while True:
            query, client = sock.recvfrom(4096)
            _answer(sock, query, client, delay)

    threading.Thread(target=loop, daemon=True).start()


def main(args: list[str]) -> int:
    delay, sep, *argv = args
    assert sep == "--" and argv, "usage: slow_resolver DELAY -- ARGV..."
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    conf = Path(tempfile.mkdtemp(prefix="rollout-resolv-")) / "resolv.conf"
    conf.write_text(RESOLV_CONF, encoding="ascii")
    subprocess.run(["mount", "--bind", str(conf), "/etc/resolv.conf"], check=True)
    serve(float(delay))
    return subprocess.run(argv, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
