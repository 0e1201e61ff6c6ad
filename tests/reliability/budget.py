"""How much the reliability suites try: a small CI budget, a deep one with ROLLOUT_DEEP=1.

    ROLLOUT_DEEP=1 CI=true .venv/bin/pytest -q -p no:cacheprovider \\
        tests/reliability tests/fuzz tests/test_transitions_crash.py

is the deep run docs/reliability.md records (about 20-30 minutes on two shared cores).
"""

from __future__ import annotations

import os

DEEP = os.environ.get("ROLLOUT_DEEP", "") not in ("", "0")


def budget(ci: int, deep: int) -> int:
    """ci in an ordinary run, deep when ROLLOUT_DEEP is set."""
    return deep if DEEP else ci
