"""Shared fixtures: a plan in a temporary stages folder, and the CLI run in-process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

PLAN = """\
[policy]
content-security-policy = "default-src 'self'; object-src 'none'"
permissions-policy = "geolocation=(), camera=()"
referrer-policy = "no-referrer"
x-frame-options = "DENY"
x-content-type-options = "nosniff"

[environments.staging]
urls = ["https://staging.example.test/"]

[environments.production]
after = "staging"
urls = ["https://www.example.test/"]
edge = ["strict-transport-security", "x-content-type-options"]
"""


@dataclass(frozen=True)
class Result:
    """What a user sees from one `rollout` run."""

    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def plan_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`rollout status` remembers validated plans under $XDG_CACHE_HOME: a test's stay in tmp."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


@pytest.fixture
def stages(tmp_path: Path) -> Path:
    """An empty stages folder."""
    folder = tmp_path / "stages"
    folder.mkdir()
    return folder


@pytest.fixture
def write_plan(stages: Path) -> Callable[..., Path]:
    """Write a plan (the standard test plan by default) to stages/plan.toml."""

    def write(text: str = PLAN, name: str = "plan.toml") -> Path:
        path = stages / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def rollout(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run `rollout ARGS...` in-process as the console script does; return code and output."""
    from rollout.__main__ import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run
