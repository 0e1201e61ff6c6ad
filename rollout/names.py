"""Header names, the stage label and the limits every layer shares.

Dependency-free (only `re`), so the middlewares, the renderers and the CLI's start-up can
all import it without pulling in pydantic, aiohttp or the grammars.
"""

from __future__ import annotations

import re
from typing import TypeAlias

HSTS = "strict-transport-security"
CSP = "content-security-policy"
CSP_RO = "content-security-policy-report-only"
CSP_FAMILY = frozenset({CSP, CSP_RO})
PERMISSIONS = "permissions-policy"
REFERRER = "referrer-policy"
XFO = "x-frame-options"
NOSNIFF = "x-content-type-options"
# Announces the named endpoints that CSP's report-to directive sends reports to.
REPORTING_ENDPOINTS = "reporting-endpoints"

# Browsers cap max-age at one year, and hstspreload.org asks for at least that much.
ONE_YEAR = 31536000
# The only HSTS value that makes a browser forget a policy it cached (RFC 6797 §6.1.1).
CLEAR_HSTS = "max-age=0"

# RFC 9110 §5.1: a header name is a token; rollout stores names lower-case.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
# RFC 9110 §5.5, restricted to one line of visible ASCII, SP and HTAB, trimmed: anything
# else could smuggle a second header into a response.
FIELD_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?")

# A stage is its index on the ladder, or None for stage "off" (not started).
Stage: TypeAlias = int | None
OFF = "off"
# A ramp holds at most 64 max-ages, plus the preload stage: so no ladder has a stage past
# 64, and a stage file or flag naming one was not written by rollout.
MAX_STAGES = 65


def stage_label(stage: Stage) -> int | str:
    """The stage as files and JSON write it: its number, or "off"."""
    return OFF if stage is None else stage


def parse_stage(text: str) -> Stage:
    """A stage as users type it, `3` or `off`; ValueError says what was wrong."""
    word = text.strip().lower()
    if word == OFF:
        return None
    if word.isascii() and word.isdigit():
        digits = word.lstrip("0") or "0"
        # Past 4300 digits int() itself refuses, naming sys.set_int_max_str_digits.
        if len(digits) > 9:
            shown = f"{digits[:9]}… ({len(digits)} digits)"
            raise ValueError(f"there is no stage {shown}; a ladder has at most {MAX_STAGES} stages")
        return int(digits)
    raise ValueError(f'{text!r} is not a stage number or "off"')
