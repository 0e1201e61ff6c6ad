"""Durations as plans, stage names and messages write them: 30s, 5m, 1h, 1d, 1w, 1y.

One table serves both directions, so every name `rollout plan` gives a stage (hsts-1y)
is also a duration the plan accepts (soak = "1y"), and the other way round.
"""

from __future__ import annotations

import re

# Largest unit first, so 604800 formats as "1w" and 5400 as "90m". A year is 365 days,
# as max-age=31536000 counts it.
UNITS = (("y", 31536000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_SIZE = dict(UNITS)
# ASCII digits only: `\d` would also take ١ or ² (which int() reads as digits too).
_DURATION = re.compile(r"([0-9]{1,9})([" + "".join(_SIZE) + r"])")
# The longest wait a plan may ask for: 10y. Dates are added to, and Python's end at 9999.
MAX_DURATION = 10 * _SIZE["y"]


def parse_duration(text: str) -> int | None:
    """Seconds in `30s`, `15m`, `24h`, `7d`, `2w` or `1y`; None if text is not one."""
    m = _DURATION.fullmatch(text.strip())
    return int(m.group(1)) * _SIZE[m.group(2)] if m else None


def format_duration(seconds: int) -> str:
    """Seconds in the largest unit that divides them: 30s, 5m, 1h, 1d, 1w, 30d, 1y, 90m."""
    for unit, size in UNITS:
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def describe(seconds: float) -> str:
    """A time left or waited, rounded for people: 42s, 5m 3s, 2h 10m, 3d 4h."""
    left = max(0, round(seconds))
    units = UNITS[2:]  # d, h, m, s: weeks and years read worse than days here
    for i, (unit, size) in enumerate(units):
        if left >= size or unit == "s":
            text = f"{left // size}{unit}"
            if i + 1 < len(units):
                sub_unit, sub_size = units[i + 1]
                if sub := (left % size) // sub_size:
                    text += f" {sub}{sub_unit}"
            return text
    raise AssertionError("unreachable: the last unit is 1s")
