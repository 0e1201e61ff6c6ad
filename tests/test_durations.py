"""Durations: one unit table for plans, stage names and messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollout.durations import UNITS, describe, format_duration, parse_duration
from rollout.plan import DEFAULT_HSTS


@given(st.integers(min_value=1, max_value=999_999_999))
def test_format_then_parse_round_trips(seconds: int) -> None:
    """Whatever format_duration writes, parse_duration reads back to the same seconds."""
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("unit", [u for u, _ in UNITS])
def test_every_unit_parses(unit: str) -> None:
    """Each unit a stage name can carry is also accepted as a duration."""
    assert parse_duration(f"2{unit}") == 2 * dict(UNITS)[unit]


def test_every_default_stage_name_is_a_duration() -> None:
    """hsts-1y and its siblings name durations a plan may write, e.g. soak = "1y"."""
    assert [parse_duration(format_duration(age)) for age in DEFAULT_HSTS] == list(DEFAULT_HSTS)
    assert format_duration(31536000) == "1y"


@pytest.mark.parametrize("text", ["", "1", "1 hour", "3mo", "-5s", "1.5h", "1h30m", "s"])
def test_what_is_not_a_duration(text: str) -> None:
    """Anything but digits and one unit is refused (None)."""
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42, "42s"), (303, "5m 3s"), (3600, "1h"), (7800, "2h 10m"), (273600, "3d 4h")],
)
def test_describe_rounds_for_people(seconds: float, text: str) -> None:
    """Times left read as at most two units."""
    assert describe(seconds) == text
