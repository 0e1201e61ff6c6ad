"""Figures for docs/reliability.md: with ROLLOUT_FIGURES=FILE, suites append one JSON line
per measurement to FILE (nothing is written without it)."""

from __future__ import annotations

import json
import os


def record(suite: str, **row: object) -> None:
    """Append {"suite": suite, **row} to $ROLLOUT_FIGURES, if set."""
    path = os.environ.get("ROLLOUT_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"suite": suite, **row}) + "\n")
