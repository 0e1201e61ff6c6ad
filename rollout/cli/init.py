"""`rollout init URL`: probe a live site and write a starting plan, never over an old one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from rollout.cli import Options, common_options, emit_json
from rollout.errors import GateError, InputError, PlanError

T = TypeVar("T")


@click.command("init")
@click.argument("url")
@click.option(
    "--env",
    "env_name",
    default="production",
    show_default=True,
    metavar="NAME",
    help="Name of the environment the plan starts with.",
)
@click.option(
    "--app-url",
    metavar="URL",
    help="The app's own address behind the proxy (e.g. http://127.0.0.1:8000/): "
    "tells app-owned from edge-owned headers for sure.",
)
@common_options
def init(opts: Options, url: str, env_name: str, app_url: str | None) -> None:
    """Probe a live site and write a starting plan: the headers it sends, who likely
    sends each (app or edge), what is missing, and a first environment with the URL.

    It probes the page, a 404 on its origin and its http:// URL, like verify. The plan
    goes to stages/plan.toml (or --plan PATH), which must not exist: init never replaces
    a plan. Review the comments it writes, then run `rollout plan`.

    \b
    Example:
      rollout init https://www.example.test/
      rollout init https://www.example.test/ --env staging --app-url http://127.0.0.1:8000/
      rollout init https://shop.test/ --connect-to shop.test:443:127.0.0.1:8443 --cacert ca.pem
    """
    from rollout.addresses import check_url, parse_connect_to, parse_resolve
    from rollout.discover import observe, survey
    from rollout.plan import parse_plan
    from rollout.probe import ProbeOptions
    from rollout.starter import starter_plan, write_new

    path = opts.plan_path
    if path.exists() or path.is_symlink():
        raise InputError(
            f"{path}: already exists; rollout init never replaces a plan (pass --plan NEW_PATH)"
        )
    for flag, value in (("URL", url), ("--app-url", app_url)):
        if value is None:
            continue
        try:
            if flag == "URL":
                check_url(value)
            elif not value.lower().startswith(("http://", "https://")):
                raise ValueError(f"{value!r} is not an http:// or https:// URL")
        except ValueError as exc:
            raise InputError(f"{flag}: {exc}") from None
    # The name must make a loadable plan: refuse it now, before any probe.
    try:
        parse_plan(f"[policy]\n[environments.{json.dumps(env_name)}]\n", path)
    except PlanError as exc:  # "FILE: KEY: reason": the user typed a flag, not a file
        raise InputError(f"--env: {str(exc).split(': ', 2)[-1]}") from None
    options = ProbeOptions(
        connect_to=tuple(_parse("--connect-to", c, parse_connect_to) for c in opts.connect_to),
        resolve=tuple(_parse("--resolve", r, parse_resolve) for r in opts.resolve),
        cacert=_cacert(opts.cacert),
        insecure=opts.insecure,
        timeout=opts.timeout,
    )
    site = asyncio.run(survey(url, options, app_url=app_url))
    if site.page.fault is not None:
        raise GateError(f"nothing written: {site.page.reason}")
    found = observe(site)
    if site.app_page is not None and site.app_page.fault is not None:
        click.echo(f"! --app-url: {site.app_page.reason}; owners judged without it", err=True)
    starter = starter_plan(
        site,
        found,
        environment=env_name,
        plan_path=path,
        connect_to=opts.connect_to,
        resolve=opts.resolve,
        cacert=options.cacert,
        insecure=opts.insecure,
    )
    write_new(path, starter.text)
    if opts.json:
        emit_json(
            {
                "ok": True,
                "plan": str(path),
                "environment": env_name,
                "url": site.final_url,
                "headers": [
                    {
                        "header": o.header,
                        "values": list(o.values),
                        "owner": o.owner,
                        "confidence": o.confidence,
                        "why": o.why,
                        "notes": list(o.notes),
                    }
                    for o in found
                ],
                "edge": starter.edge,
                "missing": starter.missing,
                "notes": starter.notes,
            }
        )
        return
    http = "redirects to https" if site.redirects_to_https() else _status(site.http)
    click.echo(
        f"{site.final_url}: {site.page.status}; 404 probe: {_status(site.not_found)}; "
        f"http://: {http}"
    )
    width = max((len(o.header) for o in found), default=0)
    for o in found:
        click.echo(f"  {o.header:<{width}}  {o.owner} ({o.confidence})  {o.values[0]}")
        click.echo(f"  {'':<{width}}  {o.why}")
        for note in o.notes:
            click.echo(f"  {'':<{width}}  ! {note}")
    for name in starter.missing:
        click.echo(f"  {name:<{width}}  missing")
    for note in starter.notes:
        click.echo(f"! {note}")
    click.echo(f"✓ wrote {path}: environment {env_name}; next: rollout plan {env_name}")


def _parse(flag: str, entry: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(entry)
    except ValueError as exc:
        raise InputError(f"{flag}: {exc}") from None


def _cacert(path: Path | None) -> Path | None:
    if path is None:
        return None
    if not path.is_file():
        raise InputError(f"--cacert: {str(path)!r} is not a file")
    return path.resolve()


def _status(result: object) -> str:
    from rollout.probe import Result

    assert isinstance(result, Result)
    return str(result.status) if result.ok else f"no answer ({result.reason})"
