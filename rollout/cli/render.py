"""`rollout render`: a stage as configuration for nginx, Apache, Django, or as headers/JSON."""

from __future__ import annotations

import click

from rollout.cli import Options, common_options, emit_json
from rollout.errors import InputError
from rollout.render import DJANGO_VERSIONS, FORMATS


def parse_stage(text: str) -> int | None:
    """`--stage` as a ladder index, or None for off."""
    if text.strip().lower() == "off":
        return None
    if not text.strip().isdigit():
        raise InputError(f'--stage: {text!r} is not a stage number or "off"')
    return int(text)


@click.command("render")
@click.argument("env")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="headers",
    show_default=True,
    help="The layer to render for.",
)
@click.option("--stage", "stage", metavar="N|off", help="Render this stage, not the current one.")
@click.option(
    "--django",
    "django",
    type=click.Choice([str(v) for v in DJANGO_VERSIONS]),
    default="6",
    show_default=True,
    help="Django major version: 5 sends CSP through rollout's middleware, 6 through SECURE_CSP.",
)
@common_options
def render(opts: Options, env: str, fmt: str, stage: str | None, django: str) -> None:
    """Print ENV's stage as configuration for one layer.

    nginx and apache get the edge-owned headers (a snippet to include); django gets the
    app-owned ones (a fragment to append to settings.py); headers and json get all of
    them, marked with their owner. Without --stage, the environment's current stage
    (off when it has not started).

    \b
    Example:
      rollout render production --format nginx > /etc/nginx/snippets/headers.conf
      rollout render staging --format django --django 5 >> mysite/settings.py
      rollout render production --format headers --stage 3
    """
    from rollout import ladder, store
    from rollout.render import render as render_stage

    wanted = parse_stage(stage) if stage is not None else None
    plan = opts.load_plan()
    environment = opts.environment(plan, env)  # refuses an unknown environment
    settings = None
    if stage is None:  # the current stage; a missing file is stage off
        settings = store.read_settings(plan, environment.name)
    if settings is None:
        settings = ladder.settings_for(plan, environment.name, wanted)
    path = store.settings_path(plan, environment.name)
    text = render_stage(settings, fmt, django=int(django), settings_path=path)
    if opts.json and fmt != "json":
        emit_json(
            {
                "environment": settings.environment,
                "stage": settings.label if settings.stage is None else settings.stage,
                "ok": True,
                "format": fmt,
                "text": text,
            }
        )
        return
    click.echo(text, nl=False)
