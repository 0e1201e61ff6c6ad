"""Noise, and the smallest policy change that would allow a violation. Printed, never done.

Noise is what a site's own policy cannot fix and should not widen for (the rules, after
Sentry's and Dropbox's published filters):

- `extension`: the blocked URL or the offending script is a browser extension's or the
  browser's own (`chrome-extension:`, `moz-extension:`, `safari-web-extension:`,
  `chrome:`, ...), including the `data:` images and fonts toolbars inject;
- `about`: `about:blank` and `about:srcdoc` frames;
- `not-a-page`: the document is not an http(s) page (a saved file, an error page);
- `other-site`: the document is not on one of the environment's origins (a copied page,
  or a forged report).

The advice names the directive the browser actually used (CSP3 §6.8.3: `script-src-elem`
falls back to `script-src`, then `default-src`) and the one source to add there; where
only `default-src` applies, it adds a directive of its own instead of widening them all.
"""

from __future__ import annotations

import base64
import hashlib

from rollout.errors import HeaderValueError
from rollout.headers import csp
from rollout.reports.parse import WEB_SCHEMES
from rollout.reports.store import Row

# CSP3 §6.8.3 "directive fallback list", for the effective directives browsers report.
_FALLBACK = {
    "script-src-elem": ("script-src-elem", "script-src", "default-src"),
    "script-src-attr": ("script-src-attr", "script-src", "default-src"),
    "style-src-elem": ("style-src-elem", "style-src", "default-src"),
    "style-src-attr": ("style-src-attr", "style-src", "default-src"),
    "worker-src": ("worker-src", "child-src", "script-src", "default-src"),
    "frame-src": ("frame-src", "child-src", "default-src"),
    "fenced-frame-src": ("fenced-frame-src", "frame-src", "child-src", "default-src"),
    "child-src": ("child-src", "default-src"),
    "script-src": ("script-src", "default-src"),
    "style-src": ("style-src", "default-src"),
}
_FETCH = frozenset(
    {"connect-src", "font-src", "img-src", "manifest-src", "media-src", "object-src"}
    | {"prefetch-src"}
)
# Where a new directive goes when only default-src covers the effective one.
_FAMILY = {
    "script-src-elem": "script-src",
    "script-src-attr": "script-src",
    "style-src-elem": "style-src",
    "style-src-attr": "style-src",
}
_KEYWORD_SOURCES = {
    "eval": "'unsafe-eval'",
    "wasm-eval": "'wasm-unsafe-eval'",
    "data": "data:",
    "blob": "blob:",
    "self": "'self'",
    "filesystem": "filesystem:",
    "mediastream": "mediastream:",
}
SAMPLE_LENGTH = 40  # browsers send the first 40 characters of inline code


def noise(row: Row, origins: frozenset[str]) -> str:
    """Why a violation is noise ("extension", "about", "not-a-page", "other-site"), or ""."""
    for where in (row.source, row.blocked):
        scheme = where.split(":", 1)[0] if ":" in where else ""
        if scheme and scheme not in WEB_SCHEMES:
            return "extension"
    if row.blocked == "about":
        return "about"
    if row.origin.split(":", 1)[0] not in WEB_SCHEMES:
        return "not-a-page"
    if origins and row.origin not in origins:
        return "other-site"
    return ""


NOISE_TEXT = {
    "extension": "a browser extension or the browser itself",
    "about": "an about: frame",
    "not-a-page": "not a page of this site",
    "other-site": "a page of another site",
}


def smallest_change(policy: str, directive: str, blocked: str, sample: str) -> str:
    """One line: the smallest change to policy that would allow this violation."""
    try:
        parsed = csp.parse(policy).policies[0]
    except (HeaderValueError, IndexError):
        return "the policy could not be read to advise"
    used = governing(parsed, directive)
    if blocked.startswith("trusted-types"):
        return "a Trusted Types policy or sink: see trusted-types and require-trusted-types-for"
    if blocked == "invalid":
        return "the report's blocked URL could not be read; look at the page by hand"
    if blocked == "inline":
        return _inline(parsed, directive, used, sample)
    source = _KEYWORD_SOURCES.get(blocked, blocked)
    return _add(parsed, directive, used, source)


def governing(policy: csp.Policy, directive: str) -> str:
    """The directive a browser applies for an effective directive (CSP3 §6.8.3): the first
    of its fallback list the policy has, else the effective directive itself."""
    chain = _FALLBACK.get(directive, (directive, "default-src") if directive in _FETCH else ())
    return next((name for name in chain if policy.get(name) is not None), directive)


def _inline(parsed: csp.Policy, directive: str, governing: str, sample: str) -> str:
    def add(source: str) -> str:
        return _add(parsed, directive, governing, source)

    if directive.endswith("-attr"):
        what = "event handler" if directive.startswith("script") else "style attribute"
        digest = _hash(sample) if _whole(sample) else "its 'sha256-...' hash"
        allow = add("'unsafe-hashes' " + digest)
        return f"move the inline {what} into a file, or {allow}"
    kind = "script" if directive.startswith("script") else "style"
    if _whole(sample):
        return f"{add(_hash(sample))} (the whole inline {kind}: {sample!r})"
    if sample:
        hashed = add(f"the 'sha256-...' hash of the inline {kind} that starts {sample!r}")
        return f"{hashed}, or move it into a file"
    return (
        f"add 'report-sample' to {governing} to see which inline {kind} it is; then its "
        "'sha256-...' hash, or move it into a file"
    )


def _add(parsed: csp.Policy, directive: str, governing: str, source: str) -> str:
    current = parsed.get(governing)
    if current is None or governing == directive or governing != "default-src":
        target = governing if current is not None else directive
        values = [] if current is None else [v for v in current.values if v != "'none'"]
        if current is not None and "'none'" in current.values:
            return f"set {target} to {' '.join([*values, source])} (it is 'none')"
        return f"add {source} to {target}"
    # Only default-src applies: a directive of its own widens this one thing only.
    own = _FAMILY.get(directive, directive)
    values = [v for v in current.values if v != "'none'"]
    return f"add `{own} {' '.join([*values, source])}` (default-src's sources plus {source})"


def _whole(sample: str) -> bool:
    """Whether a sample is the whole inline code (shorter than what browsers cut it to)."""
    return 0 < len(sample) < SAMPLE_LENGTH


def _hash(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return f"'sha256-{digest}'"
