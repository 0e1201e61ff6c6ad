"""A revert judges only the app-owned headers live: the edge's own HSTS and CSP, which a
revert leaves where they are, are not mistaken for another layer's (header.E004)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rollout import ladder, store
from rollout.demo.servers import start
from rollout.names import CSP, CSP_RO, HSTS
from rollout.plan import load_plan
from tests.conftest import Result

pytestmark = pytest.mark.integration

HOST = "shop.demo.test"
POLICY = """\
[policy]
content-security-policy = "default-src 'self'; object-src 'none'"
permissions-policy = "geolocation=(), camera=()"
referrer-policy = "no-referrer"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
csp-report-uri = "/csp-report"
"""


def test_revert_with_an_edge_owned_hsts_and_csp_confirms(
    tmp_path: Path, rollout: Callable[..., Result]
) -> None:
    """With the edge owning HSTS and CSP, revert --to 1 from stage 4 holds: exit 0, ok."""
    folder = tmp_path / "stages"
    edge = ["strict-transport-security", "content-security-policy", "x-content-type-options"]
    with start(folder, folder / "staging.toml", {}) as local:
        connect = ", ".join(f'"{c}"' for c in local.connect_to())
        plan_path = folder / "plan.toml"
        plan_path.write_text(
            POLICY + "[environments.staging]\n"
            f'urls = ["https://{HOST}/"]\n'
            f"edge = {json.dumps(edge)}\n"
            f"connect-to = [{connect}]\n"
            'cacert = "ca.pem"\n'
        )
        plan = load_plan(plan_path)
        at4 = ladder.settings_for(plan, "staging", 4)
        assert {HSTS, CSP} <= set(at4.edge) and CSP_RO not in at4.edge
        store.write_settings(plan, at4)
        local.set_edge_headers(at4.edge)
        result = rollout(
            "revert", "staging", "--to", "1", "--json", "--settle", "5", "--plan", str(plan_path)
        )
        assert result.code == 0, result.out + result.err
        out = json.loads(result.out)
        assert out["ok"] is True and out["stage"] == 1
        assert not [c for c in out["checks"] if c["id"] == "header.E004"]
        # The edge kept stage 4's HSTS and CSP; the app went back to stage 1's headers.
        current = store.read_settings(plan, "staging")
        assert current is not None and current.edge[HSTS] == at4.edge[HSTS]
