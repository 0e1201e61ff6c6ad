"""Where to reach a server: host names, ports, curl-style address overrides, https URLs."""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import urlsplit

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


class ConnectTo(NamedTuple):
    """A `--connect-to HOST:PORT:ADDR:PORT` entry; addr is kept without IPv6 brackets."""

    host: str
    port: int
    addr: str
    addr_port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}:{bracket(self.addr)}:{self.addr_port}"


class Resolve(NamedTuple):
    """A `--resolve HOST:PORT:ADDR` entry; addr is an IP address without brackets."""

    host: str
    port: int
    addr: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}:{bracket(self.addr)}"


def bracket(addr: str) -> str:
    """An address as curl writes it: IPv6 in brackets."""
    return f"[{addr}]" if ":" in addr else addr


def host_problem(host: str) -> str | None:
    """Why host is not a DNS host name, or None."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return "is an IP address, not a host name"
    except ValueError:
        pass
    labels = host.lower().split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return "is not a host name (letters, digits, '-' and dots)"
    return None


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{what} {text!r} is not a port from 1 to 65535")
    return int(text)


def _addr(text: str, *, ip_only: bool) -> str:
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        if ip_only or bare != text or host_problem(bare):
            raise ValueError(f"{text!r} is not an IP address") from None
        return bare.lower()
    if ip.version == 6 and bare == text:
        raise ValueError(f"write the IPv6 address {text!r} in brackets: [{text}]")
    return str(ip)


_CONNECT_TO = re.compile(r"^([^:\[\]]+):([^:]+):(\[[^\]]*\]|[^:\[\]]+):([^:]+)\Z")
_RESOLVE = re.compile(r"^([^:\[\]]+):([^:]+):(\[[^\]]*\]|[^\[\]]+)\Z")


def parse_connect_to(entry: str) -> ConnectTo:
    """Parse `HOST:PORT:ADDR:PORT` as curl --connect-to takes it (IPv6 in brackets)."""
    m = _CONNECT_TO.match(entry)
    if not m:
        raise ValueError(f"{entry!r} is not HOST:PORT:ADDR:PORT (as curl --connect-to)")
    host, port, addr, addr_port = m.groups()
    if host_problem(host) and not is_ip(host):
        raise ValueError(f"{entry!r}: {host!r} is not a host name")
    return ConnectTo(
        host.lower(), _port(port, "port"), _addr(addr, ip_only=False), _port(addr_port, "port")
    )


def parse_resolve(entry: str) -> Resolve:
    """Parse `HOST:PORT:ADDR` as curl --resolve takes it (IPv6 in brackets)."""
    m = _RESOLVE.match(entry)
    if not m:
        raise ValueError(f"{entry!r} is not HOST:PORT:ADDR (as curl --resolve)")
    host, port, addr = m.groups()
    if host_problem(host):
        raise ValueError(f"{entry!r}: {host!r} is not a host name")
    return Resolve(host.lower(), _port(port, "port"), _addr(addr, ip_only=True))


def is_ip(text: str) -> bool:
    """Whether text is an IPv4 or IPv6 address (no brackets)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_url(url: str) -> str:
    """Refuse anything but an absolute https:// URL; return a key for duplicates."""
    if url.lower().startswith("http://"):
        raise ValueError(
            f"{url!r} is an http:// URL; list https:// pages (the http probe is derived)",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL: {str(exc).lower()}") from None
    if parts.scheme.lower() != "https" or not parts.hostname or re.search(r"\s", url):
        raise ValueError(f"{url!r} is not an absolute https:// URL")
    if parts.username is not None or parts.fragment:
        raise ValueError(f"{url!r}: leave out credentials and #fragments")
    if host_problem(parts.hostname) and not is_ip(parts.hostname):
        raise ValueError(f"{url!r}: {parts.hostname!r} is not a host name")
    path = parts.path or "/"
    return f"{parts.hostname.lower()}:{port or 443}{path}?{parts.query}"
