"""Stage files for the middleware tests, written the way rollout writes them."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import tomli_w

from rollout.settings import StageSettings, dumps

APP = {
    "strict-transport-security": "max-age=300",
    "content-security-policy-report-only": "default-src 'self'; report-uri /csp",
    "permissions-policy": "geolocation=(), camera=()",
    "referrer-policy": "strict-origin-when-cross-origin",
    "x-frame-options": "DENY",
}
EDGE = {"x-content-type-options": "nosniff"}

WriteStage = Callable[..., Path]


def write_stage_file(
    path: Path,
    app: Mapping[str, str] = APP,
    edge: Mapping[str, str] = EDGE,
    stage: int | None = 1,
    name: str = "hsts-5m",
) -> Path:
    """Replace path atomically with a stage file holding these headers."""
    settings = StageSettings("staging", stage, name if stage is not None else "off", app, edge)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(dumps(settings)))
    os.replace(tmp, path)
    return path


# Stage files settings.loads must refuse, as raw bytes: a value that is not UTF-8, and one
# ending in a newline (a TOML escape, so the file itself is valid TOML).
BAD_VERSIONS = {
    "invalid-utf8": b'"DENY\xff"',
    "newline-escape": b'"DENY\\n"',
}


def write_bad_stage_file(path: Path, bad_value: bytes) -> Path:
    """Replace path atomically with a stage file whose x-frame-options value is bad_value."""
    text = (
        b'environment = "staging"\nstage = 1\nname = "hsts-5m"\n\n[app]\n'
        b'"strict-transport-security" = "max-age=999"\n'
        b'"x-frame-options" = ' + bad_value + b"\n"
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(text)
    os.replace(tmp, path)
    return path
