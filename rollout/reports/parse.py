"""A report POST's body read into CspReport records, both formats browsers send.

- `application/csp-report`: the legacy `report-uri` body, `{"csp-report": {...}}` with
  kebab-case keys (CSP Level 2 §4.4, kept by CSP Level 3 as the "deprecated serialization").
- `application/reports+json`: the Reporting API, a list of `{"type": "csp-violation",
  "body": {...}}` with camelCase keys (CSP Level 3 §5.3); other report types are skipped.

Everything in a report is chosen by whoever sent it, so nothing is kept as sent: URLs
become an origin or a keyword and a path, capped and percent-encoded; names must look
like CSP directive names; the sample is capped. Nothing here can raise anything but
Malformed or UnsupportedType.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

LEGACY_TYPE = "application/csp-report"
REPORTING_TYPE = "application/reports+json"
JSON_TYPE = "application/json"  # some browsers sent the legacy body as plain JSON

MAX_REPORTS = 100  # per body: more than a browser batches at once
MAX_PATH = 256  # characters of a document path kept (percent-encoded)
MAX_SAMPLE = 80  # browsers send at most 40; a little room for encodings
MAX_POLICY = 16384  # characters of original-policy kept to tell which policy it was
_URL_PREFIX = 4096  # characters of a URL read: an origin is always near the start

_DIRECTIVE = re.compile(r"[a-z][a-z0-9-]{0,39}")
_KEYWORD = re.compile(r"[a-z][a-z0-9-]{0,39}")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,31}")
_HOST = re.compile(r"[a-z0-9_]([a-z0-9_.-]{0,251}[a-z0-9_])?|\[[0-9a-f:.]{2,45}\]")
WEB_SCHEMES = frozenset({"http", "https", "ws", "wss"})
# Schemes that name no origin: the keyword is the scheme itself (`data`, `blob`, ...).
_SCHEME_KEYWORDS = frozenset({"data", "blob", "about", "filesystem", "javascript", "mediastream"})
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


class Malformed(ValueError):
    """The body is not a report a browser would send; the message says why (no echo)."""


class UnsupportedType(ValueError):
    """The body's content type is neither report format."""


@dataclass(frozen=True, slots=True)
class CspReport:
    """One violation as reported, reduced to what is kept."""

    directive: str  # the effective directive: script-src-elem, img-src, ...
    blocked: str  # the blocked URL's origin, or a keyword: inline, eval, data, ...
    document: str  # the page's path
    origin: str  # the page's origin ("" when it had none)
    source: str  # the origin or scheme of the script that caused it ("" when unknown)
    disposition: str  # "report", "enforce", or "" when the browser did not say
    sample: str  # the first characters of the blocked inline code, when the policy asks
    policy: str  # the violated policy as the browser saw it ("" when absent or too long)


def media_type(content_type: str) -> str:
    """The media type of a Content-Type value, lower-case, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def parse_body(content_type: str, body: bytes) -> list[CspReport]:
    """The CSP violations in a POST body; Malformed or UnsupportedType when it is neither."""
    kind = media_type(content_type)
    if kind not in (LEGACY_TYPE, REPORTING_TYPE, JSON_TYPE):
        raise UnsupportedType(f"content type {kind[:60]!r} is neither report format")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise Malformed("the body is not JSON") from None
    if isinstance(doc, dict) and kind != REPORTING_TYPE:
        entry = doc.get("csp-report")
        if not isinstance(entry, dict):
            raise Malformed('the body has no "csp-report" object')
        return [_legacy(entry)]
    if isinstance(doc, list) and kind != LEGACY_TYPE:
        return _reporting(doc)
    raise Malformed(f"the body is not the JSON a {kind} report holds")


def _reporting(doc: list[object]) -> list[CspReport]:
    found: list[CspReport] = []
    bad = 0
    for item in doc[:MAX_REPORTS]:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            bad += 1
            continue
        if item["type"] != "csp-violation":
            continue  # deprecation, intervention, ...: not ours to keep
        body = item.get("body")
        if not isinstance(body, dict):
            bad += 1
            continue
        try:
            found.append(
                _report(
                    directive=body.get("effectiveDirective"),
                    blocked=body.get("blockedURL"),
                    document=body.get("documentURL", item.get("url")),
                    source=body.get("sourceFile"),
                    disposition=body.get("disposition"),
                    sample=body.get("sample"),
                    policy=body.get("originalPolicy"),
                )
            )
        except Malformed:
            bad += 1
    if bad and not found:
        raise Malformed("no entry is a CSP violation report")
    return found


def _legacy(entry: dict[str, object]) -> CspReport:
    directive = entry.get("effective-directive")
    violated = entry.get("violated-directive")
    if directive is None and isinstance(violated, str) and violated.split():
        directive = violated.split()[0]  # CSP2 browsers: "script-src 'self'"
    return _report(
        directive=directive,
        blocked=entry.get("blocked-uri"),
        document=entry.get("document-uri"),
        source=entry.get("source-file"),
        disposition=entry.get("disposition"),
        sample=entry.get("script-sample"),
        policy=entry.get("original-policy"),
    )


def _report(
    *,
    directive: object,
    blocked: object,
    document: object,
    source: object,
    disposition: object,
    sample: object,
    policy: object,
) -> CspReport:
    if not isinstance(directive, str) or not _DIRECTIVE.fullmatch(directive.lower()):
        raise Malformed("a report names no directive")
    if not isinstance(document, str) or not document:
        raise Malformed("a report names no document")
    origin, path = _document(document)
    return CspReport(
        directive=directive.lower(),
        blocked=blocked_source(blocked if isinstance(blocked, str) else ""),
        document=path,
        origin=origin,
        source=_source(source),
        disposition=disposition if disposition in ("report", "enforce") else "",
        sample=_clean(sample[:MAX_SAMPLE]) if isinstance(sample, str) else "",
        policy=_clean(policy) if isinstance(policy, str) and len(policy) <= MAX_POLICY else "",
    )


def blocked_source(value: str) -> str:
    """What was blocked, as kept: an origin (`https://cdn.example.test`) or a keyword."""
    text = value.strip()
    if not text:
        return "inline"  # CSP Level 2 browsers left it empty for inline code and eval
    word = text.lower()
    if _KEYWORD.fullmatch(word):
        return word  # inline, eval, wasm-eval, self, data, blob, trusted-types-sink, ...
    return url_origin(text)


def url_origin(url: str) -> str:
    """A URL's origin (scheme://host[:port], default port left out), or its scheme as a
    keyword (`data`, `blob`, `about`), or `scheme://host` for extensions and the like;
    "invalid" when it is none of these."""
    head = url[:_URL_PREFIX]
    scheme, sep, _ = head.partition(":")
    scheme = scheme.lower()
    if not sep or not _SCHEME.fullmatch(scheme):
        return "invalid"
    if scheme in _SCHEME_KEYWORDS:
        return scheme
    try:
        parts = urlsplit(head)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return "invalid"
    if ":" in host:
        host = f"[{host}]"
    if not host:
        return f"{scheme}:" if scheme not in WEB_SCHEMES else "invalid"
    if not _HOST.fullmatch(host):
        return "invalid"
    default = {"http": 80, "ws": 80, "https": 443, "wss": 443}.get(scheme)
    return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def _document(url: str) -> tuple[str, str]:
    origin = url_origin(url)
    if origin.split(":", 1)[0] not in WEB_SCHEMES:
        return origin, ""
    try:
        path = urlsplit(url[:_URL_PREFIX]).path or "/"
    except ValueError:
        return origin, ""
    # The query and fragment are left out: they may hold tokens or personal data.
    path = quote(path, safe=_PATH_SAFE)
    if len(path) > MAX_PATH:
        path = path[: MAX_PATH - 3] + "..."
    return origin, path


def _source(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        return ""
    return url_origin(value.strip())


def _clean(text: str) -> str:
    """text storable anywhere: no NUL (PostgreSQL refuses it), no lone surrogates."""
    return text.replace("\0", "\ufffd").encode("utf-8", "replace").decode("utf-8")
