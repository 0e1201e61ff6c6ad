"""Fixtures for the middleware tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from middleware_support import Clock, write_stage_file

import rollout.middleware.watch as watch


@pytest.fixture
def stage_file(tmp_path: Path) -> Path:
    """A stage file at stage 1 with the usual app-owned headers and nosniff at the edge."""
    return write_stage_file(tmp_path / "staging.toml")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The stage-file watcher's clocks, at a standstill until the test moves them."""
    fake = Clock()
    monkeypatch.setattr(watch, "time", fake)
    return fake
