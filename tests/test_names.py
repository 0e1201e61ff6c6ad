"""The stage label: one parser and one label for every command and file."""

from __future__ import annotations

import pytest

from rollout.names import parse_stage, stage_label


@pytest.mark.parametrize(("text", "stage"), [("0", 0), ("7", 7), ("off", None), (" OFF ", None)])
def test_parse_stage(text: str, stage: int | None) -> None:
    """A number or `off`, case and surrounding space aside."""
    assert parse_stage(text) == stage


@pytest.mark.parametrize("text", ["", "-1", "top", "1.0", "٣"])
def test_parse_stage_refuses(text: str) -> None:
    """Anything else says what was given and what is expected."""
    with pytest.raises(ValueError, match=r"is not a stage number or \"off\"$"):
        parse_stage(text)


def test_label_round_trips() -> None:
    """The label of a parsed stage parses back to it."""
    for stage in (None, 0, 3):
        assert parse_stage(str(stage_label(stage))) == stage
