"""A stage as configuration for one layer: headers, json, nginx, apache or django.

Every renderer takes a `rollout.settings.StageSettings` and returns text; none imports
pydantic, httpx or click, so the CLI stays thin and apps can call them directly.
"""

from __future__ import annotations

import re
from pathlib import Path

from rollout.errors import HeaderValueError, InputError, SettingsError
from rollout.headers.value import check_value
from rollout.settings import StageSettings

FORMATS = ("headers", "json", "nginx", "apache", "django")
DJANGO_VERSIONS = (5, 6)

# Every header rollout manages is letters, digits and `-`. A stage file only checks the
# wider RFC 9110 token grammar, which lets in characters the config languages read as
# syntax: `#` opens an nginx comment (`proxy_hide_header #x;` swallows the `;` and the
# next directive), and quotes, `$` or `%` mean something to nginx or Apache.
RENDERABLE_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def display_name(name: str) -> str:
    """A lower-case header name as people write it: `Strict-Transport-Security`."""
    return "-".join(word.capitalize() for word in name.split("-"))


def title(settings: StageSettings) -> str:
    """The one-line description every rendered file opens with."""
    if settings.stage is None:
        return f"{settings.environment}, stage off"
    return f"{settings.environment}, stage {settings.stage} ({settings.name})"


def check_renderable(settings: StageSettings, fmt: str, source: str | None = None) -> None:
    """Refuse a stage that would not render safely as fmt: SettingsError names source and key.

    source defaults to the environment's stage file name.
    """
    refused = refusal(settings, fmt)
    if refused is not None:
        where = source or f"{settings.environment}.toml"
        raise SettingsError(f"{where}: {refused[0]}: {refused[1]}")


def refusal(settings: StageSettings, fmt: str) -> tuple[str, str] | None:
    """The first `(key, reason)` that makes the stage unsafe to render as fmt, if any."""
    for table, owned in (("app", settings.app), ("edge", settings.edge)):
        for name, value in owned.items():
            if not RENDERABLE_NAME.fullmatch(name):
                return (
                    f"{table}.{name}",
                    f"{name!r} is not a header name rollout renders (letters, digits and "
                    "'-' only); no plan sends it, so the stage file was edited by hand",
                )
            # Stage files and plans are checked on read, but a StageSettings built in code
            # reaches here unchecked: a CR or LF would split the header in every format.
            try:
                check_value(value)
            except HeaderValueError as exc:
                return f"{table}.{name}", str(exc)
    if fmt == "apache":
        from rollout.render.apache import refusal as apache_refusal

        for name, value in settings.edge.items():
            why = apache_refusal(value)
            if why:
                return f"edge.{name}", why
    return None


def render(
    settings: StageSettings,
    fmt: str,
    *,
    django: int = 6,
    settings_path: Path | None = None,
    output: Path | None = None,
) -> str:
    """Render a stage in one of FORMATS; `django`, `settings_path` (the stage file) and
    `output` (where the text goes) shape the Django one.

    A stage that would not render safely (see `refusal`) raises SettingsError naming the
    stage file (settings_path, else the environment's) and the key.
    """
    if fmt in FORMATS:
        check_renderable(settings, fmt, str(settings_path) if settings_path else None)
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
        return render_django(
            settings, version=django, settings_path=settings_path, module_path=output
        )
    raise InputError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
