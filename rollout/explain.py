"""A report explained: checks grouped by response, root causes first.

A page or 404 probe that answers 5xx was not served by the app (a proxy answering 502
while the backend is down, say), so the headers that are missing from it say nothing about
the stage: reports lead with the status and fold those header checks into one line.
Every check stays in the report, and in `--json`; this module only says how they group.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rollout.checks import NOT_FOUND_STATUS, PAGE_SERVER_ERROR, Check

_STATUS_IDS = frozenset({PAGE_SERVER_ERROR.id, NOT_FOUND_STATUS.id})


@dataclass(frozen=True)
class Response:
    """The checks made on one probe of one URL: status, redirect or connection first."""

    probe: str
    url: str | None
    checks: tuple[Check, ...]

    @property
    def cause(self) -> Check | None:
        """The failed status check that leaves this response's header checks unjudged."""
        for check in self.checks:
            status = check.status
            if check.failed and check.id in _STATUS_IDS and status is not None and status >= 500:
                return check
        return None

    @property
    def unjudged(self) -> tuple[Check, ...]:
        """The failed header checks that follow from `cause` (none without one)."""
        if self.cause is None:
            return ()
        return tuple(c for c in self.checks if c.failed and c.header is not None)

    @property
    def shown(self) -> tuple[Check, ...]:
        """The checks worth a line of their own: all but the unjudged ones."""
        hidden = {id(c) for c in self.unjudged}
        return tuple(c for c in self.checks if id(c) not in hidden)

    @property
    def why(self) -> str:
        """Why the unjudged checks were not judged, e.g. "the page answered 502"."""
        cause = self.cause
        if cause is None:
            return ""
        what = "the page" if self.probe == "page" else f"the {self.probe} probe"
        return f"{what} answered {cause.status}"


def by_response(checks: Iterable[Check]) -> list[Response]:
    """Checks grouped by probe and URL in report order, each group's status checks first."""
    groups: dict[tuple[str, str | None], list[Check]] = {}
    for check in checks:
        groups.setdefault((check.probe, check.url), []).append(check)
    return [
        Response(
            probe,
            url,
            # Status, redirect and connection checks (no header) lead: they explain the rest.
            tuple(sorted(found, key=lambda c: c.header is not None)),
        )
        for (probe, url), found in groups.items()
    ]
