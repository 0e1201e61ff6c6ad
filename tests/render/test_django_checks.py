"""The real `manage.py check --deploy` on sites set up from the rendered module: clean
where the edge sends a header Django checks for, still warning where nobody sends it.

Each case is a Django project in a folder of its own, with the module rendered by
`rollout render --format django --output mysite/rollout_settings.py` and MIDDLEWARE as
the module says, checked by Django 5 (this interpreter) and, where
ROLLOUT_DJANGO6_PYTHON names a Python with Django 6, by Django 6 as well. The checks read
are django/core/checks/security/base.py's, the same in 5.2 and 6.x.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PLAN, Result

ROOT = Path(__file__).resolve().parents[2]
DJANGO6_PYTHON = os.environ.get("ROLLOUT_DJANGO6_PYTHON")
# Every header warning of Django's deploy checks (W001, SecurityMiddleware missing, never
# applies: the module always says to list it).
HEADER_CHECKS = {"W002", "W004", "W005", "W006", "W008", "W019", "W021", "W022"}

SETTINGS = """\
SECRET_KEY = "rollout-tests-only-{pad}"
DEBUG = False
ALLOWED_HOSTS = ["app.test"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = []
MIDDLEWARE = {middleware!r}
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

from .rollout_settings import *  # noqa: F403
{after}"""

EDGE_NONE = PLAN.replace(
    'edge = ["strict-transport-security", "x-content-type-options"]', "edge = []"
)
EDGE_XFO_REFERRER = PLAN.replace(
    'edge = ["strict-transport-security", "x-content-type-options"]',
    'edge = ["x-frame-options", "referrer-policy"]',
)
# Nobody sends nosniff, X-Frame-Options or Referrer-Policy: the plan does not manage them.
UNMANAGED = "\n".join(
    line
    for line in EDGE_NONE.splitlines()
    if not line.startswith(("x-content-type-options", "x-frame-options", "referrer-policy"))
)
PRELOAD = "\n[ladder]\npreload = true\n"


@dataclass(frozen=True)
class Case:
    """A plan, a stage of production, and the warnings check --deploy must give."""

    plan: str
    stage: str
    warns: frozenset[str]
    silenced: frozenset[str] = frozenset()
    after: str = ""  # lines settings.py adds after the import


CASES = {
    # The example split: the edge owns HSTS and nosniff.
    "edge-hsts-nosniff-top": Case(PLAN, "6", frozenset(), frozenset({"W004", "W006"})),
    "edge-xfo-referrer-preload": Case(
        EDGE_XFO_REFERRER + PRELOAD, "7", frozenset(), frozenset({"W002", "W022"})
    ),
    "app-owns-all-preload": Case(EDGE_NONE + PRELOAD, "7", frozenset()),
    # Real gaps stay: nobody sends these headers at all...
    "nobody-sends-them": Case(UNMANAGED + PRELOAD, "7", frozenset({"W002", "W006", "W022"})),
    # ...before the ladder starts nobody sends HSTS (even where the edge will own it) nor
    # the app's headers, while the edge's nosniff is already on...
    "stage-off-edge-hsts": Case(
        PLAN, "off", frozenset({"W002", "W004", "W022"}), frozenset({"W006"})
    ),
    # ...the ladder is not yet at includeSubDomains and preload...
    "app-hsts-mid-ladder": Case(EDGE_NONE, "3", frozenset({"W005", "W021"})),
    # ...and a project that turns the redirect off (a proxy redirects) silences it itself.
    "redirect-off": Case(
        PLAN, "6", frozenset({"W008"}), frozenset({"W004", "W006"}), "SECURE_SSL_REDIRECT = False\n"
    ),
}

INTERPRETERS = {"django5": sys.executable, "django6": DJANGO6_PYTHON}


def warnings_of(python: str, root: Path) -> set[str]:
    """The security.W0xx header warnings `python -m django check --deploy` prints."""
    env = {
        "DJANGO_SETTINGS_MODULE": "mysite.settings",
        "PYTHONPATH": os.pathsep.join([str(root), str(ROOT)]),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [python, "-m", "django", "check", "--deploy"],
        cwd="/",  # not the project: ROLLOUT_SETTINGS must not depend on it
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return set(re.findall(r"\(security\.(W\d{3})\)", output)) & HEADER_CHECKS


def project(
    tmp_path: Path, case: Case, django: int, rollout: Callable[..., Result]
) -> tuple[Path, str]:
    """A Django project for the case: the module rendered with --output, and MIDDLEWARE
    as the module's own comment lists it. Returns the root and the module's text."""
    stages = tmp_path / "stages"
    stages.mkdir()
    plan = stages / "plan.toml"
    plan.write_text(case.plan)
    package = tmp_path / "mysite"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "urls.py").write_text("urlpatterns = []\n")
    module = package / "rollout_settings.py"
    args = ["--format", "django", "--django", str(django), "--stage", case.stage]
    result = rollout("render", "production", *args, "--output", str(module), "--plan", str(plan))
    assert result.code == 0, result.err
    text = module.read_text()
    listed = re.findall(r'^#\s+"([\w.]+)",$', text, flags=re.MULTILINE)
    settings = SETTINGS.format(pad="x" * 40, middleware=listed, after=case.after)
    (package / "settings.py").write_text(settings)
    return tmp_path, text


@pytest.mark.parametrize("interpreter", INTERPRETERS)
@pytest.mark.parametrize("name", CASES)
def test_check_deploy(
    name: str, interpreter: str, tmp_path: Path, rollout: Callable[..., Result]
) -> None:
    """check --deploy warns exactly about the headers nobody sends (or the ladder does not
    send yet); a header the edge sends is silenced, with a comment naming the edge."""
    python = INTERPRETERS[interpreter]
    if python is None:
        pytest.skip("Django 6 needs Python >= 3.12: set ROLLOUT_DJANGO6_PYTHON to run it")
    case = CASES[name]
    root, text = project(tmp_path, case, 5 if interpreter == "django5" else 6, rollout)
    assert warnings_of(python, root) == case.warns
    silenced = set(re.findall(r'"security\.(W\d{3})",  # [\w-]+: sent by the edge', text))
    assert silenced == case.silenced


def test_without_the_silencing_the_split_would_warn(
    tmp_path: Path, rollout: Callable[..., Result]
) -> None:
    """The same correct split with SILENCED_SYSTEM_CHECKS emptied warns W004 and W006:
    the silencing is what makes it clean, and it silences nothing else."""
    case = Case(PLAN, "6", frozenset(), after="SILENCED_SYSTEM_CHECKS = []\n")
    root, _ = project(tmp_path, case, 5, rollout)
    assert warnings_of(sys.executable, root) == {"W004", "W006"}
