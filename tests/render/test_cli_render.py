"""`rollout render`: the current stage or --stage, every format, bad input refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rollout import ladder, store
from rollout.plan import load_plan


def test_current_stage_defaults_to_off(write_plan: Callable[..., Path], rollout: Any) -> None:
    """Before any advance the environment renders stage off: edge nosniff only."""
    plan = write_plan()
    result = rollout("render", "production", "--plan", str(plan))
    assert result.code == 0, result.err
    assert result.out.splitlines()[1:] == ["X-Content-Type-Options: nosniff   # edge"]


def test_renders_the_stage_file(write_plan: Callable[..., Path], rollout: Any) -> None:
    """With a stage file written, render shows that stage's edge headers for nginx."""
    path = write_plan()
    plan = load_plan(path)
    store.write_settings(plan, ladder.settings_for(plan, "production", 2))
    result = rollout("render", "production", "--format", "nginx", "--plan", str(path))
    assert result.code == 0, result.err
    assert 'add_header Strict-Transport-Security "max-age=3600" always;' in result.out


def test_stage_flag_and_json(write_plan: Callable[..., Path], rollout: Any) -> None:
    """--stage picks a ladder stage without touching the stage file; json shows it."""
    path = write_plan()
    result = rollout("render", "staging", "--format", "json", "--stage", "4", "--plan", str(path))
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["stage"] == 4 and doc["name"] == "hsts-1w"
    assert doc["app"]["strict-transport-security"] == "max-age=604800"
    assert not (path.parent / "staging.toml").exists()


def test_django_fragment_names_the_stage_file(
    write_plan: Callable[..., Path], rollout: Any
) -> None:
    """The Django fragment points ROLLOUT_SETTINGS at the environment's stage file."""
    path = write_plan()
    args = ["--format", "django", "--django", "5", "--stage", "0", "--plan", str(path)]
    result = rollout("render", "staging", *args)
    assert result.code == 0, result.err
    assert f'ROLLOUT_SETTINGS = "{path.parent / "staging.toml"}"' in result.out
    assert "SECURE_HSTS_SECONDS = 30" in result.out


def test_bad_stage_is_exit_2(write_plan: Callable[..., Path], rollout: Any) -> None:
    """A --stage that is not a number or off, or past the ladder, is one line and exit 2."""
    path = write_plan()
    bad = rollout("render", "staging", "--stage", "top", "--plan", str(path))
    assert bad.code == 2
    assert bad.err == "rollout: --stage: 'top' is not a stage number or \"off\"\n"
    past = rollout("render", "staging", "--stage", "42", "--plan", str(path))
    assert past.code == 2
    assert "there is no stage 42" in past.err and "Traceback" not in past.err


def test_unknown_environment_is_exit_2(write_plan: Callable[..., Path], rollout: Any) -> None:
    """An environment the plan does not define is refused with exit 2."""
    result = rollout("render", "qa", "--plan", str(write_plan()))
    assert result.code == 2
    assert "qa" in result.err and result.out == ""
