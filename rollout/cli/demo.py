"""`rollout demo`: the whole job, from stage off to preload and back, on loopback.

Every step is a real `rollout` command run through the CLI's own entry point against the
embedded environment in `rollout.demo.servers`, so what the demo prints is exactly what a
user sees: advance through every stage with its live proof, a revert that confirms the
edge's headers survived, and an incident revert that clears HSTS. It lives beside the
other commands because it drives them.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

from rollout.cli import Seconds
from rollout.errors import InputError

ENV = "staging"
HOST = "shop.demo.test"
SUBDOMAIN = f"api.{HOST}"
EDGE = {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; " + (
    "frame-ancestors 'none'"
)

PLAN = """\
# The demo's plan: the default ladder plus preload, no soak, on loopback.
[policy]
content-security-policy = "{csp}"
permissions-policy = "geolocation=(), camera=(), microphone=()"
referrer-policy = "strict-origin-when-cross-origin"
x-frame-options = "{xfo}"
x-content-type-options = "{nosniff}"
csp-report-uri = "/csp-report"

[ladder]
preload = true       # a final stage that adds preload, after every subdomain check

[environments.{env}]
urls = ["https://{host}/", "https://{host}/account"]
edge = ["x-content-type-options", "x-frame-options"]   # the proxy sends these
subdomains = ["{subdomain}"]
connect-to = {connect_to}
cacert = "ca.pem"
soak = "0s"          # a real plan waits: the default is the current stage's max-age
"""


@dataclass
class Tally:
    """What the demo did, for the summary."""

    advances: int = 0
    reverts: int = 0
    failures: list[str] = field(default_factory=list)


def run(*, keep: bool, echo: Callable[[str], None], settle: float = 10.0) -> int:
    """Run the demo; 0 when every step did what it should."""
    try:
        import trustme  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise InputError(
            f"rollout demo needs the demo extra ({exc.name} is missing): "
            "pip install 'rollout[demo]'"
        ) from None
    from rollout.demo import servers

    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="rollout-demo-"))
    stages = folder / "stages"
    plan = stages / "plan.toml"
    tally = Tally()
    local = servers.start(stages, stages / f"{ENV}.toml", EDGE, host=HOST, subdomain=SUBDOMAIN)
    try:
        connect = '", "'.join(local.connect_to())
        plan.write_text(
            PLAN.format(
                env=ENV,
                csp=CSP,
                host=HOST,
                subdomain=SUBDOMAIN,
                connect_to=f'["{connect}"]',
                xfo=EDGE["x-frame-options"],
                nosniff=EDGE["x-content-type-options"],
            )
        )
        echo(
            f"rollout demo: an app (uvicorn + rollout's ASGI middleware) behind an edge that "
            f"owns {', '.join(EDGE)}, over TLS on 127.0.0.1:{local.https_port}, http "
            f"redirects on :{local.http_port}, a subdomain {SUBDOMAIN}; plan {plan}"
        )
        script = _script(tally, settle)
        for args, want, kind in script:
            code = _rollout(plan, args, echo)
            if code != want:
                tally.failures.append(f"`rollout {shlex.join(args)}` exited {code}, not {want}")
                break
            if kind == "advance":
                tally.advances += 1
            elif kind == "revert":
                tally.reverts += 1
        took = time.monotonic() - started
        echo("")
        if tally.failures:
            echo(f"✗ demo failed: {tally.failures[0]}")
        else:
            echo(
                f"✓ demo done in {took:.1f}s: {tally.advances} advances from stage off to "
                f"preload, each verified live; {tally.reverts} reverts, each confirming the "
                "edge's headers survived; the last one sent max-age=0 to clear HSTS"
            )
        if keep:
            _keep(plan, local, echo)
    finally:
        local.stop()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return 1 if tally.failures else 0


def _script(tally: Tally, settle: float) -> list[tuple[Sequence[str], int, str]]:
    wait = ["--settle", f"{settle:g}"]
    steps: list[tuple[Sequence[str], int, str]] = [(["plan", ENV], 0, "")]
    steps += [(["advance", ENV, *wait], 0, "advance") for _ in range(8)]
    steps += [
        (["status", ENV], 0, ""),
        (["revert", ENV, "--reason", "demo: step back from preload", *wait], 0, "revert"),
        (
            ["revert", ENV, "--to", "off", "--clear-hsts", "--reason", "demo: incident", *wait],
            0,
            "revert",
        ),
        (["history", ENV], 0, ""),
    ]
    return steps


def _rollout(plan: Path, args: Sequence[str], echo: Callable[[str], None]) -> int:
    """One `rollout ...` command, through the console script's own entry point."""
    from rollout.cli import main

    echo("")
    echo(f"$ rollout {shlex.join(args)}")
    try:
        main(["--plan", str(plan), *args])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0  # pragma: no cover - main always exits


def _keep(plan: Path, local: object, echo: Callable[[str], None]) -> None:
    from rollout.demo.servers import LocalEnvironment

    assert isinstance(local, LocalEnvironment)
    connect = " ".join(f"--connect-to {c}" for c in local.connect_to())
    echo("")
    echo("The environment keeps running; in another shell try:")
    echo(f"  export ROLLOUT_PLAN={plan}")
    echo(f"  rollout status {ENV}")
    echo(f"  rollout advance {ENV} --dry-run")
    echo(f"  rollout verify {ENV}")
    echo(f"  curl -sI {connect} --cacert {local.ca_path} https://{HOST}/")
    echo("Press Ctrl-C to stop it.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        echo("stopping")


@click.command("demo")
@click.option("--keep", is_flag=True, help="Leave the environment running to play with.")
@click.option(
    "--settle",
    type=Seconds(0),
    default=10.0,
    show_default=True,
    help="Seconds each step may wait for new values to show live.",
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
    code = run(keep=keep, echo=click.echo, settle=settle)
    if code:
        raise click.exceptions.Exit(code)
