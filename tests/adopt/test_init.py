"""`rollout init URL` against a live loopback site: the plan it writes, and what it refuses."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.adopt.conftest import Site
from tests.conftest import Result

pytestmark = pytest.mark.integration

Run = Callable[..., Result]


def test_init_writes_a_plan_that_loads_and_splits_owners(site: Site, rollout: Run) -> None:
    """The plan holds today's values, the edge's two headers as edge-owned, and loads."""
    plan = site.folder / "stages" / "plan.toml"
    r = rollout("init", site.url, "--plan", str(plan), "--env", "staging", *site.flags())
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "https://shop.demo.test/: 200; 404 probe: 404; http://: redirects to https"
    assert "  x-frame-options                      edge (likely)  DENY" in lines
    assert "  referrer-policy                      app (assumed)  no-referrer" in lines
    assert "  permissions-policy                   missing" in lines
    assert lines[-1] == f"✓ wrote {plan}: environment staging; next: rollout plan staging"
    doc = tomllib.loads(plan.read_text())
    assert doc["policy"] == {
        "content-security-policy": "default-src 'self'; report-uri /csp-report",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
    }
    env = doc["environments"]["staging"]
    assert env["urls"] == ["https://shop.demo.test/"]
    assert env["edge"] == ["x-content-type-options", "x-frame-options"]
    assert env["connect-to"] == site.env.connect_to()
    assert "# permissions-policy = " in plan.read_text()  # suggested, left for the user
    shown = rollout("plan", "staging", "--plan", str(plan))
    assert shown.code == 0, shown.err
    assert "x-frame-options (edge): DENY" in shown.out


def test_the_written_plan_verifies_its_edge_at_stage_off(site: Site, rollout: Run) -> None:
    """What init wrote is enough to verify: stage off checks the edge's headers live."""
    plan = site.folder / "stages" / "plan.toml"
    assert (
        rollout("init", site.url, "--plan", str(plan), "--env", "staging", *site.flags()).code == 0
    )
    # At stage off the app sends no HSTS or CSP either (else header.E004): take its stage
    # file away and wait, bounded, for the middleware to notice (it looks every 0.2 s).
    (site.folder / "app" / "staging.toml").unlink()
    deadline = time.monotonic() + 10
    while True:
        r = rollout("verify", "staging", "--stage", "off", "--plan", str(plan))
        if r.code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.code == 0, r.out + r.err
    assert "x-frame-options: DENY" in r.out


def test_app_url_makes_ownership_certain(site: Site, rollout: Run) -> None:
    """With the app's own address every header's owner is seen, HSTS aside (plain http)."""
    plan = site.folder / "plan.toml"
    r = rollout(
        "init", site.url, "--plan", str(plan), "--app-url", site.app_url, "--json", *site.flags()
    )
    assert r.code == 0, r.err
    out = json.loads(r.out)
    owners = {h["header"]: (h["owner"], h["confidence"]) for h in out["headers"]}
    assert owners == {
        "strict-transport-security": ("app", "assumed"),
        "content-security-policy-report-only": ("app", "seen"),
        "referrer-policy": ("app", "seen"),
        "x-frame-options": ("edge", "seen"),
        "x-content-type-options": ("edge", "seen"),
    }
    assert out["missing"] == ["permissions-policy"]
    assert out["environment"] == "production"


def test_init_never_replaces_a_plan(tmp_path: Path, rollout: Run) -> None:
    """An existing plan: exit 2, one line, the file untouched, and no probe made."""
    plan = tmp_path / "plan.toml"
    plan.write_text("# mine\n")
    # Port 9 on loopback answers nothing: reaching the probe would exit 1, not 2.
    r = rollout("init", "https://127.0.0.1:9/", "--plan", str(plan))
    assert r.code == 2
    assert r.err == (
        f"rollout: {plan}: already exists; rollout init never replaces a plan "
        "(pass --plan NEW_PATH)\n"
    )
    assert plan.read_text() == "# mine\n"


def test_unreachable_site_writes_nothing(tmp_path: Path, rollout: Run) -> None:
    """A site that does not answer: exit 1 naming the URL, and no plan on disk."""
    plan = tmp_path / "stages" / "plan.toml"
    r = rollout("init", "https://127.0.0.1:9/", "--plan", str(plan), "--timeout", "2")
    assert r.code == 1
    assert r.err.startswith("rollout: nothing written: https://127.0.0.1:9/: ")
    assert not plan.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://www.example.test/"], "URL: 'http://www.example.test/' is an http:// URL"),
        (["https://www.example.test/", "--env", "a b"], "--env: 'a b' is not a usable name"),
        (["https://www.example.test/", "--app-url", "ftp://x/"], "--app-url: 'ftp://x/' is not"),
        (["https://www.example.test/", "--connect-to", "nope"], "--connect-to: 'nope' is not"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, rollout: Run, args: list[str], message: str
) -> None:
    """A bad URL, name or flag is refused before any probe, in one line naming it."""
    plan = tmp_path / "plan.toml"
    r = rollout("init", *args, "--plan", str(plan))
    assert r.code == 2
    assert message in r.err
    assert r.err.count("\n") == 1
    assert not plan.exists()
