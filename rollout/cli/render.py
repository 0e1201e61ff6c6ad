"""`rollout render`: a stage as configuration for nginx, Apache, Django, or as headers/JSON."""

from __future__ import annotations

import click

from rollout.cli import STAGE, Options, StageChoice, common_options, emit_json
from rollout.render import DJANGO_VERSIONS, FORMATS


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
@click.option("--stage", "stage", type=STAGE, help="Render this stage, not the current one.")
@click.option(
    "--django",
    "django",
    type=click.Choice([str(v) for v in DJANGO_VERSIONS]),
    default="6",
    show_default=True,
    help="Django major version: 5 sends CSP through rollout's middleware, 6 through SECURE_CSP.",
)
@common_options
def render(opts: Options, env: str, fmt: str, stage: StageChoice | None, django: str) -> None:
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
    from rollout.names import stage_label
    from rollout.render import render as render_stage

    plan = opts.load_plan()
    environment = opts.environment(plan, env)  # refuses an unknown environment
    settings = None
    if stage is None:  # the current stage; a missing file is stage off
        settings = store.read_settings(plan, environment.name)
    if settings is None:
        settings = ladder.settings_for(plan, environment.name, stage.stage if stage else None)
    path = store.settings_path(plan, environment.name)
    text = render_stage(settings, fmt, django=int(django), settings_path=path)
    if opts.json and fmt != "json":
        emit_json(
            {
                "environment": settings.environment,
                "stage": stage_label(settings.stage),
                "ok": True,
                "format": fmt,
                "text": text,
            }
        )
        return
    click.echo(text, nl=False)
