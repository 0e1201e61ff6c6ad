"""`rollout render`: a stage as configuration for nginx, Apache, Django, or as headers/JSON."""

from __future__ import annotations

import click

from rollout.cli import STAGE, Options, StageChoice, common_options, emit_json, env_argument
from rollout.cli.output import replace
from rollout.render import DJANGO_VERSIONS, FORMATS


@click.command("render")
@env_argument()
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
@common_options(probes=False, output=True)
def render(
    opts: Options,
    env_name: str,
    fmt: str,
    stage: StageChoice | None,
    django: str,
) -> None:
    """Print ENV's stage as configuration for one layer, or write it to --output FILE.

    nginx and apache get the edge-owned headers (a snippet to include); django gets the
    app-owned ones (a settings module: end settings.py with `from .rollout_settings
    import *`); headers and json get
    all of them, marked with their owner. Without --stage, the environment's current
    stage (off when it has not started).

    Install with --output, never `> FILE`: the shell empties FILE before rollout runs, so
    a refusal would leave the live snippet empty and the next reload would drop HSTS.

    \b
    Example:
      rollout render production --format nginx --output /etc/nginx/snippets/rollout-headers.conf
      rollout render staging --format django --django 5 --output mysite/rollout_settings.py
      rollout render production --format headers --stage 3
    """
    from rollout import ladder, store
    from rollout.errors import PlanError, SettingsError
    from rollout.names import CSP, CSP_FAMILY, HSTS, stage_label
    from rollout.render import refusal, title
    from rollout.render import render as render_stage

    plan = opts.load_plan()
    environment = opts.environment(plan, env_name)  # refuses an unknown environment
    settings = None
    if stage is None:  # the current stage; a missing file is stage off
        settings = store.read_settings(plan, environment.name)
    if settings is None:
        settings = ladder.settings_for(plan, environment.name, stage.stage if stage else None)
    path = store.settings_path(plan, environment.name)
    refused = refusal(settings, fmt)
    if refused is not None:
        key, why = refused
        if stage is None and path.exists():  # a hand edit to the stage file
            raise SettingsError(f"{path}: {key}: {why}")
        name = key.partition(".")[2]  # else a plan value: name the plan's key
        plan_key = (
            "ladder.hsts" if name == HSTS else f"policy.{CSP if name in CSP_FAMILY else name}"
        )
        raise PlanError(f"{opts.plan_path}: {plan_key}: {why}")
    output = opts.output
    text = render_stage(settings, fmt, django=int(django), settings_path=path, output=output)
    if opts.json and fmt != "json":
        if output is not None:  # the file gets the configuration; stdout says where
            replace(output, text)
        emit_json(
            {
                "environment": settings.environment,
                "stage": stage_label(settings.stage),
                "ok": True,
                "format": fmt,
                "text": text,
                "output": None if output is None else str(output),
            }
        )
        return
    opts.emit(text, wrote=f": {title(settings)}")
