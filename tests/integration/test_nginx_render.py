"""The nginx renderer's escaping, checked by a real nginx serving the values."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from rollout_itest import HOST, Nginx, find_nginx, free_port

from rollout.render import render
from rollout.settings import StageSettings

pytestmark = [pytest.mark.integration, pytest.mark.nginx]

ODD = {
    "x-quoted": "say \"hi\" \\ then 'self'",
    "x-dollar": "https://cdn.example.test/$path?a=$1;b={x}",
    "strict-transport-security": "max-age=300",
}


def test_nginx_serves_rendered_values_exactly(
    tmp_path: Path, server_cert: Any, ca: trustme.CA
) -> None:
    """Quotes, backslashes, `$`, braces and `;` reach the response unchanged, even on a 502."""
    nginx = Nginx(find_nginx(), tmp_path, server_cert, app_port=free_port())  # no app: 502
    snippet = render(StageSettings("p", 1, "hsts-5m", {}, ODD), "nginx")
    geo = next(line for line in snippet.splitlines() if "geo $" in line).lstrip("# ")
    nginx.start(snippet, http_extra=geo)
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        url = f"https://127.0.0.1:{nginx.ports.https}/"
        response = httpx.get(url, verify=context, headers={"host": HOST}, timeout=10)
    finally:
        nginx.stop()
    assert response.status_code == 502
    for name, value in ODD.items():
        assert response.headers.get_list(name) == [value]
