"""Why a probe got no usable response: the Fault kinds, and aiohttp's errors translated once.

aiohttp's client errors, and the fault each becomes:

    ClientError
    ├── ClientConnectionError
    │   ├── ClientOSError
    │   │   └── ClientConnectorError         refused (or reset, tls, ...: by its os_error)
    │   │       ├── ClientConnectorDNSError  dns
    │   │       └── ClientSSLError           tls
    │   │           └── ...CertificateError  tls-expired, tls-hostname, tls-untrusted
    │   ├── ServerDisconnectedError          closed-mid-response
    │   └── ClientConnectionResetError       reset
    ├── ClientPayloadError                   closed-mid-response (body cut short), malformed
    ├── ClientResponseError                  malformed; too-large (LineTooLong, too many lines)
    └── InvalidURL                           malformed

Timeouts (the prober's own `asyncio.timeout`) and redirect loops are decided by the prober.
"""

from __future__ import annotations

import errno
import ssl
from enum import StrEnum

import aiohttp
from aiohttp import http_exceptions

_RESET = frozenset({errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE})


class Fault(StrEnum):
    """Why a probe got no usable response."""

    REFUSED = "refused"
    DNS = "dns"
    TLS_UNTRUSTED = "tls-untrusted"
    TLS_HOSTNAME = "tls-hostname"
    TLS_EXPIRED = "tls-expired"
    TLS = "tls"
    TIMEOUT = "timeout"
    RESET = "reset"
    CLOSED = "closed-mid-response"
    MALFORMED = "malformed"
    TOO_LARGE = "too-large"
    REDIRECT_LOOP = "redirect-loop"


def translate(exc: aiohttp.ClientError, host: str, where: str) -> tuple[Fault, str]:
    """The fault and a one-line reason for an aiohttp error met probing host, whose TCP
    connection goes to where ("addr:port")."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _certificate(exc.certificate_error, host)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Fault.DNS, f"cannot resolve {where.rpartition(':')[0]}: {_os(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _connect(exc.os_error, where)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        # aiohttp passes the partly parsed head, if any, instead of its default message.
        if isinstance(exc.message, str):
            return Fault.CLOSED, "closed the connection without answering"
        return Fault.CLOSED, "closed the connection mid-response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        # "not completed" is aiohttp's word for a body the connection's end cut short.
        if "not completed" in str(exc):
            return Fault.CLOSED, "closed the connection mid-body"
        return Fault.MALFORMED, f"malformed body: {_line(_parser_error(exc) or exc)}"
    if isinstance(exc, aiohttp.ClientResponseError):
        cause = _parser_error(exc)
        if isinstance(cause, http_exceptions.LineTooLong):
            return Fault.TOO_LARGE, f"response head too large: {_line(cause)}"
        if cause is not None and "too many headers" in str(cause.message).lower():
            return Fault.TOO_LARGE, "response head too large: too many header lines"
        return Fault.MALFORMED, f"malformed response: {_line(cause or exc.message)}"
    if isinstance(exc, ConnectionResetError) or (
        isinstance(exc, aiohttp.ClientOSError) and exc.errno in _RESET
    ):
        return Fault.RESET, "connection reset by the server"
    if isinstance(exc, aiohttp.ClientOSError):
        if isinstance(exc.__cause__, ssl.SSLError):
            return Fault.TLS, f"TLS error mid-response: {_os(exc.__cause__)}"
        return Fault.CLOSED, f"connection failed mid-response: {_os(exc)}"
    if isinstance(exc, aiohttp.InvalidURL):
        return Fault.MALFORMED, "not a valid URL"
    return Fault.MALFORMED, f"{type(exc).__name__}: {_line(exc)}"


def _connect(error: OSError, where: str) -> tuple[Fault, str]:
    if isinstance(error, ssl.SSLError):
        return Fault.TLS, f"TLS handshake failed: {_os(error)}"
    if isinstance(error, ConnectionRefusedError):
        return Fault.REFUSED, f"connection refused by {where}"
    if isinstance(error, ConnectionResetError):
        return Fault.RESET, "connection reset during the handshake"
    return Fault.REFUSED, f"cannot connect to {where}: {_os(error)}"


def _certificate(error: BaseException, host: str) -> tuple[Fault, str]:
    # OpenSSL verify codes: 10 certificate has expired, 62 hostname mismatch.
    code = getattr(error, "verify_code", None)
    message = getattr(error, "verify_message", None) or _line(error)
    if code == 10:
        return Fault.TLS_EXPIRED, f"certificate has expired ({message})"
    if code == 62:
        return Fault.TLS_HOSTNAME, f"certificate is not valid for {host} ({message})"
    return Fault.TLS_UNTRUSTED, f"certificate is not trusted ({message})"


def _parser_error(exc: BaseException) -> http_exceptions.HttpProcessingError | None:
    """The parser's own exception behind aiohttp's wrapping, most specific first."""
    seen: BaseException | None = exc.__cause__
    found = None
    while seen is not None:
        if isinstance(seen, http_exceptions.HttpProcessingError):
            found = seen
        seen = seen.__cause__
    return found


def _os(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    if isinstance(error, OSError) and error.strerror:
        return str(error.strerror)
    return _line(error)


def _line(what: object) -> str:
    """One short line from a message the parser spreads over several (text, bytes, caret)."""
    if isinstance(what, http_exceptions.HttpProcessingError):
        what = what.message
    parts = [p.strip() for p in str(what).splitlines()]
    text = " ".join(p for p in parts if p and set(p) != {"^"})
    return text if len(text) <= 160 else text[:157] + "..."
