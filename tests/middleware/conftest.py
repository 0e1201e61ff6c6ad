"""Fixtures for the middleware tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from middleware_support import write_stage_file


@pytest.fixture
def stage_file(tmp_path: Path) -> Path:
    """A stage file at stage 1 with the usual app-owned headers and nosniff at the edge."""
    return write_stage_file(tmp_path / "staging.toml")
