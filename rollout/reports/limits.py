"""The report endpoint's bounds: how big a body may be, how often one client may post.

The endpoint is public and on the app's own request path, so every bound is checked
before any work that grows with the input, and the bookkeeping itself is bounded.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The endpoint's bounds; the defaults suit a browser's traffic with room to spare."""

    max_body: int = 65536  # bytes; a browser's batch of 100 reports fits, a flood does not
    burst: int = 60  # reports a client may post at once (one legacy POST per violation)
    per_second: float = 2.0  # then this many a second, per client, per process
    max_clients: int = 10000  # clients remembered; the least recent is forgotten first
    max_pending: int = 10000  # reports waiting for the writer; past it, 429


class RateLimiter:
    """A token bucket per client: `burst` at once, refilled at `per_second`."""

    def __init__(self, limits: Limits) -> None:
        self._burst = float(limits.burst)
        self._rate = limits.per_second
        self._max = limits.max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, client: str, now: float | None = None) -> bool:
        """Whether client may post one more report now (and count it if so)."""
        at = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(client, (self._burst, at))
            tokens = min(self._burst, tokens + (at - last) * self._rate)
            allowed = tokens >= 1.0
            self._buckets[client] = (tokens - 1.0 if allowed else tokens, at)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
            return allowed
