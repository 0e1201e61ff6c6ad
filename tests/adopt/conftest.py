"""A live site on loopback for the adoption tests: the demo's edge, redirector and app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rollout.demo.servers import LocalEnvironment, start

HOST = "shop.demo.test"
EDGE = {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}

# What the app's middleware sends: stage 2 of a ladder, CSP still report-only.
STAGE_FILE = """\
environment = "staging"
stage = 2
name = "hsts-1h"

[app]
"strict-transport-security" = "max-age=3600"
"content-security-policy-report-only" = "default-src 'self'; report-uri /csp-report"
"referrer-policy" = "no-referrer"

[edge]
"""


@dataclass
class Site:
    """The running servers and the curl-style flags that reach them."""

    env: LocalEnvironment
    folder: Path

    @property
    def url(self) -> str:
        return f"https://{HOST}/"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.env.app_port}/"

    def flags(self) -> list[str]:
        """--connect-to and --cacert, as a user reaching the loopback site passes them."""
        out = ["--cacert", str(self.env.ca_path)]
        for entry in self.env.connect_to():
            out += ["--connect-to", entry]
        return out


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """The demo's site: an aiohttp TLS edge owning two headers, uvicorn + our middleware."""
    settings = tmp_path / "app" / "staging.toml"
    settings.parent.mkdir()
    settings.write_text(STAGE_FILE)
    env = start(tmp_path / "srv", settings, EDGE, host=HOST, subdomain=f"api.{HOST}")
    try:
        yield Site(env, tmp_path)
    finally:
        env.stop()
