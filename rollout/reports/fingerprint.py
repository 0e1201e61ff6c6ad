"""Which policy a report or a page view belongs to: a short id of the policy's meaning.

Two policies that differ only in order, case or where their reports go get the same id;
any change in what they allow gives a new one. Reports name the policy they violated
(`original-policy`), so the id ties a report to the policy that drew it, whatever stage
the servers were at when it arrived: a fixed policy starts with no reports at all.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from rollout.errors import HeaderValueError
from rollout.headers import csp

_REPORTING = frozenset({"report-uri", "report-to"})


@lru_cache(maxsize=256)
def policy_ids(value: str) -> tuple[str, ...]:
    """The id of each policy in a CSP header value (a comma separates policies)."""
    try:
        parsed = csp.parse(value)
    except HeaderValueError:
        return (_digest("unparsed:" + " ".join(value.lower().split())),)
    ids = []
    for policy in parsed.policies:
        kept = [d for d in policy.directives if d.name not in _REPORTING]
        text = csp.serialise(csp.CSP((csp.Policy(tuple(kept)),))) if kept else ""
        ids.append(_digest(csp.normalise(text) if text else ""))
    return tuple(ids)


def policy_id(value: str) -> str:
    """The id of a one-policy value (the first policy's, if it holds several)."""
    return policy_ids(value)[0]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
