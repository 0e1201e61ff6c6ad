"""The benchmarks' smoke run: `bench/run_all.py --quick` runs every contender and writes the page.

Tiny N and one round, so the scripts never rot; it asserts what ran, never how fast.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


def _missing() -> list[str]:
    missing = [
        module
        for module in ("matplotlib", "secure", "Secweb", "shcheck", "drheader", "uvloop")
        if importlib.util.find_spec(module) is None
    ]
    if not (shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)):
        missing.append("nginx")
    if not shutil.which("curl"):
        missing.append("curl")
    return missing


def test_quick_run_writes_every_table_and_plot(tmp_path: Path) -> None:
    """Every benchmark runs each contender once and the page links a plot per table."""
    missing = _missing()
    if missing:
        reason = f"the bench extra or a binary is missing: {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI installs '.[bench]'")
        pytest.skip(f"{reason}; pip install -e '.[bench]'")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_all.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    page = (tmp_path / "RESULTS.md").read_text()
    for title in (
        "Middleware in process",
        "Middleware over the wire",
        "Django",
        "verify: 20 pages",
        "verify at scale",
        "Where a `rollout verify` process spends its time",
        "Start-up",
        "A real revert",
    ):
        assert title in page
    # Every contender produced a figure: no row without a median.
    rows = [line for line in page.splitlines() if line.startswith("| ") and "| —" in line]
    assert rows == []
    images = re.findall(r"\]\(results/([\w-]+\.png)\)", page)
    assert len(images) == 9
    for image in images:
        assert (tmp_path / "results" / image).stat().st_size > 1000
    assert "## Goals" in page
