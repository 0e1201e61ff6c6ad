"""The Django settings rendered into a module of their own that settings.py imports.

Each site is loaded by the real Django (`django.setup()` on DJANGO_SETTINGS_MODULE) in a
subprocess, so the settings module is imported exactly as `manage.py` would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django
import pytest

from tests.conftest import Result

VERSION = "6" if django.VERSION[0] >= 6 else "5"
BASE = """\
SECRET_KEY = "rollout-tests-only-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "rollout.middleware.django.SecurityHeadersMiddleware",
]
ROOT_URLCONF = "mysite.urls"
SECURE_REFERRER_POLICY = "same-origin"  # the project's own, before rollout's
"""
IMPORT = "\nfrom .rollout_settings import *  # noqa: F403\n"
LOAD = """\
import json, sys
import django
django.setup()
from django.conf import settings
names = [n for n in dir(settings) if n.startswith(("SECURE_", "X_FRAME_", "ROLLOUT_"))]
print(json.dumps({n: getattr(settings, n) for n in names}))
"""


def site(root: Path, settings_py: str) -> Path:
    """A Django project `mysite` under root with this settings.py."""
    package = root / "mysite"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "urls.py").write_text("urlpatterns = []\n")
    (package / "settings.py").write_text(settings_py)
    return package


def loaded(root: Path, cwd: str | None = None) -> dict[str, Any]:
    """The SECURE_*, X_FRAME_* and ROLLOUT_* settings Django ends up with for root's site,
    started in the working folder cwd (systemd's, gunicorn --chdir's) or this one."""
    env = {"DJANGO_SETTINGS_MODULE": "mysite.settings", "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", LOAD],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=cwd,
        env={**env, "PATH": "/usr/bin:/bin"},
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def fragment(rollout: Callable[..., Result], plan: Path, env: str, stage: str) -> str:
    """`rollout render ENV --format django --stage STAGE` as printed."""
    args = ["--format", "django", "--django", VERSION, "--stage", stage, "--plan", str(plan)]
    result = rollout("render", env, *args)
    assert result.code == 0, result.err
    return result.out


def render_module(
    rollout: Callable[..., Result], plan: Path, env: str, stage: str, package: Path
) -> None:
    """`rollout render ... --output mysite/rollout_settings.py`, as the guide says."""
    out = package / "rollout_settings.py"
    args = ["--format", "django", "--django", VERSION, "--stage", stage]
    result = rollout("render", env, *args, "--output", str(out), "--plan", str(plan))
    assert result.code == 0, result.err
    assert result.out == ""


def test_the_fragment_is_a_module_of_its_own(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], tmp_path: Path
) -> None:
    """It names nothing that only settings.py defines: it runs on an empty namespace."""
    plan = write_plan()
    for env, stage in (("staging", "off"), ("staging", "4"), ("production", "6")):
        namespace: dict[str, Any] = {}
        exec(compile(fragment(rollout, plan, env, stage), "rollout_settings.py", "exec"), namespace)
        assert "SECURE_HSTS_SECONDS" in namespace


def test_importing_gives_the_settings_appending_gave(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], tmp_path: Path
) -> None:
    """`from .rollout_settings import *` at the end of settings.py gives Django the same
    SECURE_* settings as appending the fragment to settings.py did, stage by stage."""
    plan = write_plan()
    for env, stage in (("staging", "off"), ("staging", "0"), ("staging", "4"), ("production", "6")):
        appended = tmp_path / f"appended-{env}-{stage}"
        site(appended, BASE + "\n" + fragment(rollout, plan, env, stage))
        imported = tmp_path / f"imported-{env}-{stage}"
        render_module(rollout, plan, env, stage, site(imported, BASE + IMPORT))
        want = loaded(appended)
        assert loaded(imported) == want
        assert want["SECURE_HSTS_SECONDS"] == {"off": 0, "0": 30, "4": 604800, "6": 0}[stage]


def test_rendering_again_leaves_one_consistent_set(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], tmp_path: Path
) -> None:
    """Rendered after an advance and again after a revert, the module holds one stage's
    block, and Django gets exactly what a fresh render of that stage gives."""
    plan = write_plan()
    package = site(tmp_path / "site", BASE + IMPORT)
    for stage in ("0", "4", "2"):
        render_module(rollout, plan, "staging", stage, package)
    module = (package / "rollout_settings.py").read_text()
    assert module.count("# --- rollout: ") == 1
    assert module.count("SECURE_HSTS_SECONDS = ") == 1
    assert "stage 2 (hsts-1h)" in module
    fresh = tmp_path / "fresh"
    render_module(rollout, plan, "staging", "2", site(fresh, BASE + IMPORT))
    got = loaded(tmp_path / "site")
    assert got == loaded(fresh)
    assert got["SECURE_HSTS_SECONDS"] == 3600
    assert got["SECURE_REFERRER_POLICY"] == "no-referrer"  # rollout's, over the project's


# --- item 3: ROLLOUT_SETTINGS resolves from the Django project, not the working folder --


def test_output_module_finds_the_stage_file_from_any_folder(
    write_plan: Callable[..., Path],
    rollout: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rendered as `apply` does (in the plan's folder, `--output ../mysite/...`), the module
    names the stage file relative to itself: Django started anywhere finds it, and so does
    a copy of the project moved elsewhere."""
    plan = write_plan()  # tmp_path/stages/plan.toml
    package = site(tmp_path, BASE + IMPORT)
    monkeypatch.chdir(plan.parent)
    args = ["--format", "django", "--django", VERSION, "--stage", "2", "--plan", "plan.toml"]
    result = rollout("render", "staging", *args, "--output", "../mysite/rollout_settings.py")
    assert result.code == 0, result.err
    assert '"../stages/staging.toml"' in (package / "rollout_settings.py").read_text()
    assert loaded(tmp_path, "/")["ROLLOUT_SETTINGS"] == str(plan.parent / "staging.toml")
    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("elsewhere"))
    got = loaded(moved, "/")["ROLLOUT_SETTINGS"]
    assert got == str(moved / "stages" / "staging.toml")


def test_printed_fragment_names_the_absolute_path(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cd stages && rollout render ... --format django` used to print 'staging.toml',
    relative to wherever rollout ran; without --output it is the absolute path now."""
    plan = write_plan()
    monkeypatch.chdir(plan.parent)
    result = rollout("render", "staging", "--format", "django", "--plan", "plan.toml")
    assert result.code == 0, result.err
    assert f'ROLLOUT_SETTINGS = "{plan.parent / "staging.toml"}"' in result.out


def test_output_far_from_the_stage_file_names_the_absolute_path(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], tmp_path: Path
) -> None:
    """A module that shares no folder but / with the stage file gets its absolute path."""
    plan = write_plan()
    module = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    if module is None:
        pytest.skip("no /dev/shm: no folder outside the test's own tree to write to")
    target = module / f"rollout_settings_{os.getpid()}.py"
    try:
        result = rollout(
            "render", "staging", "--format", "django", "--output", str(target), "--plan", str(plan)
        )
        assert result.code == 0, result.err
        assert f'ROLLOUT_SETTINGS = "{plan.parent / "staging.toml"}"' in target.read_text()
    finally:
        target.unlink(missing_ok=True)


def test_a_projects_formatter_and_linter_leave_the_module_alone(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], tmp_path: Path
) -> None:
    """A generated file: a project's `ruff format --check` (even at line length 40, which
    would rewrap every line) and `ruff check` accept it as rendered, printed or written."""
    plan = write_plan()
    package = site(tmp_path, BASE + IMPORT)
    module = package / "rollout_settings.py"
    for env, stage in (("staging", "off"), ("staging", "4"), ("production", "6")):
        for version in ("5", "6"):
            args = ["--format", "django", "--django", version, "--stage", stage, "--plan"]
            written = rollout("render", env, *args, str(plan), "--output", str(module))
            assert written.code == 0, written.err
            printed = rollout("render", env, *args, str(plan))
            for text in (module.read_text(), printed.out):
                for command in (
                    ["format", "--check", "--line-length", "40"],
                    ["check", "--select", "E,F,W,I,UP,B,SIM,RUF"],
                ):
                    ruff = subprocess.run(
                        [sys.executable, "-m", "ruff", *command, "--isolated", "-"],
                        input=text,
                        capture_output=True,
                        text=True,
                        timeout=60,
                    )
                    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
