"""pytest plugin: the `rollout_headers` fixture asserts an app serves its stage's headers.

`pip install rollout` registers it (the `pytest11` entry point). Loading it costs pytest
nothing but two option groups: rollout's own modules load when a test uses the fixture,
and Starlette, httpx (httpx2) or Django only when the test hands it their client.

    def test_security_headers(rollout_headers):
        rollout_headers.check(TestClient(app))            # "/" and a 404
        rollout_headers.check(TestClient(app), "/login")

Configure which stage in pytest's configuration or on its command line:

    [tool.pytest.ini_options]
    rollout_plan = "stages/plan.toml"     # with rollout_env: stages/<env>.toml beside it
    rollout_env = "production"
    # or: rollout_stage = "stages/production.toml"
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rollout.appcheck import HeaderCheck

_OPTIONS = (
    ("stage", "FILE", "stage file whose app-owned headers the app must serve (stages/ENV.toml)"),
    ("plan", "PATH", "plan file; with the environment, the stage file beside it"),
    ("env", "NAME", "environment of the plan (its stage file is PLAN_FOLDER/NAME.toml)"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rollout", "rollout: security headers of the current stage")
    for name, metavar, help_text in _OPTIONS:
        group.addoption(f"--rollout-{name}", metavar=metavar, default=None, help=help_text)
        parser.addini(f"rollout_{name}", help_text, default=None)


def _setting(config: pytest.Config, name: str) -> Path | str | None:
    """The command line's value (relative to where pytest ran), else the ini's (relative
    to the ini file's folder), else None; the environment name stays a name."""
    given: str | None = config.getoption(f"--rollout-{name}")
    base = config.invocation_params.dir
    if given is None:
        given = str(config.getini(f"rollout_{name}") or "") or None
        base = config.inipath.parent if config.inipath else config.rootpath
    if given is None or name == "env":
        return given
    return base / given


@pytest.fixture
def rollout_headers(request: pytest.FixtureRequest) -> HeaderCheck:
    """Asserts a Starlette TestClient, an httpx client or ASGITransport, or a Django test
    client serves the current stage's app-owned headers on a page and on a 404."""
    from rollout.appcheck import HeaderCheck

    config = request.config
    stage, plan, env = (_setting(config, name) for name, _, _ in _OPTIONS)
    return HeaderCheck.configured(
        stage=stage if isinstance(stage, Path) else None,
        plan=plan if isinstance(plan, Path) else None,
        env=env if isinstance(env, str) else None,
    )
