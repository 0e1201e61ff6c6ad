"""A stage as configuration for one layer: headers, json, nginx, apache or django.

Every renderer takes a `rollout.settings.StageSettings` and returns text; none imports
pydantic, httpx or click, so the CLI stays thin and apps can call them directly.
"""

from __future__ import annotations

from pathlib import Path

from rollout.errors import InputError
from rollout.settings import StageSettings

FORMATS = ("headers", "json", "nginx", "apache", "django")
DJANGO_VERSIONS = (5, 6)


def display_name(name: str) -> str:
    """A lower-case header name as people write it: `Strict-Transport-Security`."""
    return "-".join(word.capitalize() for word in name.split("-"))


def title(settings: StageSettings) -> str:
    """The one-line description every rendered file opens with."""
    if settings.stage is None:
        return f"{settings.environment}, stage off"
    return f"{settings.environment}, stage {settings.stage} ({settings.name})"


def render(
    settings: StageSettings,
    fmt: str,
    *,
    django: int = 6,
    settings_path: Path | None = None,
) -> str:
    """Render a stage in one of FORMATS; `django` and `settings_path` shape the Django one."""
    if fmt == "headers":
        from rollout.render.headers import render_headers

        return render_headers(settings)
    if fmt == "json":
        from rollout.render.json import render_json

        return render_json(settings)
    if fmt == "nginx":
        from rollout.render.nginx import render_nginx

        return render_nginx(settings)
    if fmt == "apache":
        from rollout.render.apache import render_apache

        return render_apache(settings)
    if fmt == "django":
        from rollout.render.django import render_django

        if django not in DJANGO_VERSIONS:
            raise InputError(f"--django: {django} is not one of 5, 6")
        return render_django(settings, version=django, settings_path=settings_path)
    raise InputError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
