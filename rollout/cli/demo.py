"""`rollout demo`: the whole job, from stage off to preload and back, on loopback.

Every step is a real `rollout` command run through the CLI's own entry point against the
embedded environment in `rollout.demo.servers`, so what the demo prints is exactly what a
user sees: advance through every stage with its live proof, the CSP reports gate holding
on a violation a visitor reported until the plan allows the source, a revert that
confirms the edge's headers survived, and an incident revert that clears HSTS. It lives
beside the other commands because it drives them.
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
# The pages load a widget from a CDN the first policy forgets; the fix allows it.
CDN = f"https://cdn.{HOST}"
WIDGET = f"{CDN}/widget.js"
FIXED_CSP = CSP.replace("; img-src", f"; script-src 'self' {CDN}; img-src")

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
csp-violations = 0   # CSP enforces only after a report-only soak with no violation
"""


@dataclass
class Tally:
    """What the demo did, for the summary."""

    advances: int = 0
    reverts: int = 0
    held: int = 0  # advances the CSP reports gate refused
    failures: list[str] = field(default_factory=list)


@dataclass
class Action:
    """A step that is not a `rollout` command: a visitor, an edit of the plan."""

    text: str
    run: Callable[[], list[str]]  # what it did, one line each; raises on failure


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
    head = f'\n<script src="{WIDGET}"></script>'
    local = servers.start(
        stages, stages / f"{ENV}.toml", EDGE, host=HOST, subdomain=SUBDOMAIN, head=head
    )
    try:
        connect = '", "'.join(local.connect_to())

        def write_plan(csp: str) -> None:
            plan.write_text(
                PLAN.format(
                    env=ENV,
                    csp=csp,
                    host=HOST,
                    subdomain=SUBDOMAIN,
                    connect_to=f'["{connect}"]',
                    xfo=EDGE["x-frame-options"],
                    nosniff=EDGE["x-content-type-options"],
                )
            )

        write_plan(CSP)
        echo(
            f"rollout demo: an app (uvicorn + rollout's ASGI middleware) behind an edge that "
            f"owns {', '.join(EDGE)}, over TLS on 127.0.0.1:{local.https_port}, http "
            f"redirects on :{local.http_port}, a subdomain {SUBDOMAIN}; plan {plan}"
        )
        for step in _script(local, write_plan, settle):
            if isinstance(step, Action):
                echo("")
                echo(f"# {step.text}")
                try:
                    done = step.run()
                except (OSError, RuntimeError) as exc:
                    tally.failures.append(f"{step.text}: {exc}")
                    break
                for line in done:
                    echo(f"  {line}")
                continue
            args, want, kind = step
            code = _rollout(plan, args, echo)
            if code != want:
                tally.failures.append(f"`rollout {shlex.join(args)}` exited {code}, not {want}")
                break
            if kind == "advance":
                tally.advances += 1
            elif kind == "revert":
                tally.reverts += 1
            elif kind == "held":
                tally.held += 1
        took = time.monotonic() - started
        echo("")
        if tally.failures:
            echo(f"✗ demo failed: {tally.failures[0]}")
        else:
            echo(
                f"✓ demo done in {took:.1f}s: the CSP reports gate held on a violation a "
                "visitor reported, and opened once the plan allowed the source; "
                f"{tally.advances} advances from stage off to "
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


Command = tuple[Sequence[str], int, str]  # rollout ARGS, the exit code it must give, its kind


def _script(
    local: object, write_plan: Callable[[str], None], settle: float
) -> list[Command | Action]:
    from rollout.demo.servers import LocalEnvironment

    assert isinstance(local, LocalEnvironment)
    wait = ["--settle", f"{settle:g}"]

    def browse() -> list[str]:
        from rollout.demo.browser import visit

        seen = visit(local, "/account", [WIDGET])
        local.flush_reports()  # the app's writer would store it within a second anyway
        lines = [f"GET {seen.url} (a navigation): {seen.status}"]
        if not seen.blocked:
            return [*lines, "the report-only CSP allows every script: nothing to report"]
        lines.append(f"the report-only CSP would block {', '.join(seen.blocked)}")
        if seen.report_status != 204:
            raise RuntimeError(f"the report endpoint answered {seen.report_status}, not 204")
        return [*lines, "the browser reports it to the app's endpoint: 204"]

    def fix() -> list[str]:
        write_plan(FIXED_CSP)
        return [f'content-security-policy = "{FIXED_CSP}"']

    steps: list[Command | Action] = [(["plan", ENV], 0, "")]
    steps += [(["advance", ENV, *wait], 0, "advance") for _ in range(4)]  # off -> 3
    steps += [
        Action("a visitor opens a page that loads a widget from a CDN", browse),
        (["reports", ENV], 1, ""),
        (["advance", ENV, *wait], 1, "held"),
        Action(f"you allow the CDN in the plan (rollout never widens a policy): {CDN}", fix),
        (["advance", ENV, *wait], 0, ""),  # the fixed policy goes out report-only
        Action("the visitor comes back", browse),
        (["reports", ENV], 0, ""),
    ]
    steps += [(["advance", ENV, *wait], 0, "advance") for _ in range(4)]  # 3 -> preload
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
    echo(f"  rollout reports {ENV}")
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
