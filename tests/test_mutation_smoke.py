"""The mutation-testing command works here: a tiny run of it, well under a minute."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.mutation

ROOT = Path(__file__).resolve().parent.parent


def test_mutation_smoke_run_kills_the_planted_bugs() -> None:
    """`.ci/mutation.py --smoke` runs mutmut on value.py with its tests and scores >= 90 %."""
    if shutil.which("mutmut", path=str(Path(sys.executable).parent)) is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mutmut is not installed (pip install -e '.[test]')")
        pytest.skip("mutmut is not installed (pip install -e '.[test]')")
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "mutation.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("value: ")]
    killed, tested = map(int, line.split()[1].split("/"))
    assert tested > 20 and killed / tested >= 0.9, line
