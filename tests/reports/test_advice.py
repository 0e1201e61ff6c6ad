"""Noise rules and the smallest policy change for each kind of violation."""

from __future__ import annotations

import base64
import hashlib

import pytest

from rollout.reports.advice import noise, smallest_change
from rollout.reports.store import Row

ORIGINS = frozenset({"https://shop.example.test"})


def row(blocked: str, *, source: str = "", origin: str = "https://shop.example.test") -> Row:
    """A stored violation on the shop's home page."""
    return Row("img-src", blocked, "/", origin, source, 1, 0.0, 0.0, "")


@pytest.mark.parametrize(
    ("found", "why"),
    [
        (row("https://cdn.example.test"), ""),
        (row("data"), ""),
        (row("inline", source="https://shop.example.test"), ""),
        (row("chrome-extension://abcdef"), "extension"),
        (row("data", source="chrome-extension://abcdef"), "extension"),
        (row("data", source="moz-extension://1234"), "extension"),
        (row("inline", source="safari-web-extension://x"), "extension"),
        (row("chrome:"), "extension"),
        (row("about"), "about"),
        (row("https://cdn.example.test", origin="about"), "not-a-page"),
        (row("https://cdn.example.test", origin="file:"), "not-a-page"),
        (row("https://cdn.example.test", origin="https://copy.example.test"), "other-site"),
    ],
    ids=["cdn", "data", "inline", "extension", "toolbar-data", "moz-data", "safari",
         "browser", "about", "about-page", "file", "other-site"],
)  # fmt: skip
def test_noise_rules(found: Row, why: str) -> None:
    """Extensions (and the data: they inject), about: frames, non-pages and other sites'
    pages are noise; the site's own violations are not."""
    assert noise(found, ORIGINS) == why


def sha(text: str) -> str:
    """The CSP hash source of text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@pytest.mark.parametrize(
    ("policy", "directive", "blocked", "sample", "advice"),
    [
        ("default-src 'self'; script-src 'self'", "script-src-elem",
         "https://cdn.example.test", "", "add https://cdn.example.test to script-src"),
        ("default-src 'self'", "script-src-elem", "https://cdn.example.test", "",
         "add `script-src 'self' https://cdn.example.test` (default-src's sources plus "
         "https://cdn.example.test)"),
        ("default-src 'self'; img-src 'self'", "img-src", "data", "", "add data: to img-src"),
        ("default-src 'none'", "img-src", "https://img.example.test", "",
         "add `img-src https://img.example.test` (default-src's sources plus "
         "https://img.example.test)"),
        ("default-src 'self'; img-src 'none'", "img-src", "blob", "",
         "set img-src to blob: (it is 'none')"),
        ("script-src 'self'", "script-src", "eval", "", "add 'unsafe-eval' to script-src"),
        ("default-src 'self'; script-src 'self'", "script-src-elem", "inline", "alert(1)",
         f"add {sha('alert(1)')} to script-src (the whole inline script: 'alert(1)')"),
        ("default-src 'self'; script-src 'self'", "script-src-elem", "inline", "x" * 40,
         f"add the 'sha256-...' hash of the inline script that starts {'x' * 40!r} to "
         "script-src, or move it into a file"),
        ("default-src 'self'; script-src 'self'", "script-src-elem", "inline", "",
         "add 'report-sample' to script-src to see which inline script it is; then its "
         "'sha256-...' hash, or move it into a file"),
        ("default-src 'self'; script-src 'self'", "script-src-attr", "inline", "go()",
         f"move the inline event handler into a file, or add 'unsafe-hashes' {sha('go()')} "
         "to script-src"),
        ("default-src 'self'; frame-ancestors 'none'", "frame-ancestors",
         "https://partner.example.test", "",
         "set frame-ancestors to https://partner.example.test (it is 'none')"),
        ("default-src 'self'; worker-src 'self'", "worker-src", "blob", "",
         "add blob: to worker-src"),
        ("default-src 'self'; child-src 'self'", "frame-src", "https://video.example.test", "",
         "add https://video.example.test to child-src"),
        ("default-src 'self'", "require-trusted-types-for", "trusted-types-sink", "",
         "a Trusted Types policy or sink: see trusted-types and require-trusted-types-for"),
    ],
    ids=["own-directive", "default-only", "data", "default-none", "none", "eval",
         "inline-whole", "inline-cut", "inline-no-sample", "attr", "ancestors", "worker",
         "frame-via-child", "trusted-types"],
)  # fmt: skip
def test_smallest_change(
    policy: str, directive: str, blocked: str, sample: str, advice: str
) -> None:
    """The advice adds the one source to the directive the browser used, never widening
    default-src for everything, and hashes an inline script the report showed whole."""
    assert smallest_change(policy, directive, blocked, sample) == advice


def test_the_hash_advice_is_what_csp_expects() -> None:
    """The hash for a sample is base64 SHA-256 of its UTF-8, as CSP's hash-source is."""
    advice = smallest_change("script-src 'self'", "script-src-elem", "inline", "doIt('é')")
    assert sha("doIt('é')") in advice
