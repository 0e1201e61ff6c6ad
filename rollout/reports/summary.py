"""The reading side: one policy's violations in a window, most frequent first, noise apart.

Used by `rollout reports` and by the csp-reports gate, so both see the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rollout.reports import advice
from rollout.reports.fingerprint import policy_ids
from rollout.reports.store import Row, Store, default_location, open_store


@dataclass(frozen=True)
class Violation:
    """One distinct violation: directive, what was blocked, on which page; and the advice."""

    directive: str
    blocked: str
    document: str
    count: int
    first_seen: datetime
    last_seen: datetime
    sample: str = ""
    advice: str = ""
    noise: str = ""  # why it is noise ("extension", ...); "" for a real violation

    def to_json(self) -> dict[str, object]:
        """DESIGN.md's fields, then the advice (and, for noise, why)."""
        out: dict[str, object] = {
            "directive": self.directive,
            "blocked": self.blocked,
            "document": self.document,
            "count": self.count,
            "first_seen": _time(self.first_seen),
            "last_seen": _time(self.last_seen),
        }
        if self.sample:
            out["sample"] = self.sample
        if self.noise:
            out["noise"] = self.noise
        else:
            out["advice"] = self.advice
        return out


@dataclass(frozen=True)
class PolicyReports:
    """What one policy drew in a window: reports, page views, violations, noise."""

    header: str  # content-security-policy or content-security-policy-report-only
    value: str
    since: datetime
    reports: int = 0  # every report in the window, noise included
    page_views: int = 0
    violations: list[Violation] = field(default_factory=list)
    noise: list[Violation] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "header": self.header,
            "since": _time(self.since),
            "reports": self.reports,
            "page_views": self.page_views,
            "violations": [v.to_json() for v in self.violations],
            "noise": [v.to_json() for v in self.noise],
        }


def location(folder: Path, environment: str, configured: str | None) -> str | Path:
    """An environment's store: the plan's reports-store, else beside its stage file."""
    return configured or default_location(folder / f"{environment}.toml")


def read(
    store: Store,
    environment: str,
    header: str,
    value: str,
    since: datetime,
    origins: Sequence[str] = (),
) -> PolicyReports:
    """The violations of the policy `value` seen since `since`, most frequent first."""
    ids = policy_ids(value)
    stamp = since.timestamp()
    rows = store.rows(environment, ids, stamp)
    views = store.page_views(environment, ids, stamp)
    own = frozenset(origins)
    real: dict[tuple[str, ...], list[Row]] = {}
    noisy: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        why = advice.noise(row, own)
        key = (row.directive, row.blocked, row.document)
        (noisy if why else real).setdefault((*key, why) if why else key, []).append(row)
    violations = [_merge(key, group, value) for key, group in real.items()]
    noise = [_merge(key[:3], group, value, key[3]) for key, group in noisy.items()]
    order = _order
    return PolicyReports(
        header=header,
        value=value,
        since=since,
        reports=sum(r.count for r in rows),
        page_views=views,
        violations=sorted(violations, key=order),
        noise=sorted(noise, key=order),
    )


def _merge(key: tuple[str, ...], rows: list[Row], policy: str, why: str = "") -> Violation:
    directive, blocked, document = key
    sample = next((r.sample for r in rows if r.sample), "")
    return Violation(
        directive=directive,
        blocked=blocked,
        document=document,
        count=sum(r.count for r in rows),
        first_seen=datetime.fromtimestamp(min(r.first_seen for r in rows), UTC),
        last_seen=datetime.fromtimestamp(max(r.last_seen for r in rows), UTC),
        sample=sample,
        advice="" if why else advice.smallest_change(policy, directive, blocked, sample),
        noise=why,
    )


def _order(v: Violation) -> tuple[int, str, str, str]:
    return (-v.count, v.directive, v.blocked, v.document)


def counted(n: int, thing: str) -> str:
    """`1 page view`, `2 page views`, `0 distinct violations`."""
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def printable(text: str) -> str:
    """Report-derived text as one safe line: control and escape characters are shown as
    \\xNN, never obeyed, so a report cannot forge lines or repaint a terminal."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["PolicyReports", "Violation", "counted", "location", "open_store", "printable", "read"]
