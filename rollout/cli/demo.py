"""`rollout demo`: the whole job on an embedded local environment."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--keep", is_flag=True, help="Leave the environment running to play with.")
@click.option(
    "--settle", type=float, default=10.0, show_default=True, help="Seconds each step may settle."
)
def demo(keep: bool, settle: float) -> None:
    """Run the whole job on loopback: real servers with TLS, every stage, two reverts.

    A temporary folder gets a plan, a CA and certificates; an app (uvicorn and rollout's
    ASGI middleware) runs behind a small edge that owns two headers, with an http->https
    redirector and a subdomain. Then `rollout advance` climbs from stage off to preload,
    verifying each stage live, `rollout revert` steps back and confirms the edge's headers
    survived, and an incident revert with --clear-hsts goes back to off. No network, no
    nginx; it cleans up after itself unless --keep.

    \b
    Example:
      rollout demo
      rollout demo --keep
    """
    from rollout.demo.script import run

    code = run(keep=keep, echo=click.echo, settle=settle)
    if code:
        raise click.exceptions.Exit(code)
