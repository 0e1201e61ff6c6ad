"""The stage file, `stages/<env>.toml`: what one environment sends, split by owner.

This module is the reader the middlewares import, so it depends on tomllib and the
standard library only: adding rollout to an app must not pull in pydantic, httpx or click.
Writing lives in `rollout.store`, which serialises with `dumps` below.

The file looks like this (header names lower-case, values exactly as sent):

    environment = "staging"
    stage = 3                  # a ladder index, or "off"
    name = "hsts-1d"
    updated = "2026-11-21T23:59:00Z"

    [app]                      # stamped by the middleware
    "strict-transport-security" = "max-age=86400"

    [edge]                     # sent by the proxy/CDN (see `rollout render`)
    "x-content-type-options" = "nosniff"
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rollout.errors import SettingsError
from rollout.names import FIELD_VALUE, HEADER_NAME, OFF, Stage

_TOP_KEYS = frozenset({"environment", "stage", "name", "updated", "app", "edge"})


@dataclass(frozen=True)
class StageSettings:
    """One environment's stage and the exact header values it sends, by owner."""

    environment: str
    stage: Stage  # None is stage "off"
    name: str
    app: Mapping[str, str] = field(default_factory=dict)
    edge: Mapping[str, str] = field(default_factory=dict)
    updated: str = ""

    @property
    def label(self) -> str:
        """The stage as users write it: its number, or "off"."""
        return OFF if self.stage is None else str(self.stage)

    def headers(self) -> dict[str, str]:
        """Every expected header, app-owned and edge-owned."""
        return {**self.app, **self.edge}


def load(path: str | Path) -> StageSettings | None:
    """Read a stage file; None when it does not exist yet (stage off)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SettingsError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return loads(data, source=str(p))


def loads(data: bytes | str, source: str = "<settings>") -> StageSettings:
    """Parse and validate a stage file's text; SettingsError names the file and key."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{source}: not UTF-8 (byte {exc.start + 1}): {exc.reason}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{source}: not valid TOML: {exc}") from None

    def fail(key: str, why: str) -> SettingsError:
        return SettingsError(f"{source}: {key}: {why}")

    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise fail(unknown[0], "unknown key; this file is written by rollout, not by hand")
    env = doc.get("environment")
    if not isinstance(env, str) or not env:
        raise fail("environment", "missing or not a string")
    stage = doc.get("stage")
    if stage == OFF:
        stage = None
    elif isinstance(stage, bool) or not isinstance(stage, int) or stage < 0:
        raise fail("stage", f'{stage!r} is not a stage number or "off"')
    name = doc.get("name", OFF if stage is None else "")
    if not isinstance(name, str) or not name:
        raise fail("name", "missing or not a string")
    updated = doc.get("updated", "")
    if not isinstance(updated, str):
        raise fail("updated", "not a string")
    app = _headers(doc.get("app", {}), "app", fail)
    edge = _headers(doc.get("edge", {}), "edge", fail)
    both = sorted(set(app) & set(edge))
    if both:
        raise fail(f"edge.{both[0]}", "also in [app]; each header has exactly one owner")
    return StageSettings(env, stage, name, app, edge, updated)


def _headers(table: object, key: str, fail: Callable[[str, str], SettingsError]) -> dict[str, str]:
    if not isinstance(table, dict):
        raise fail(key, "must be a table of header names to values")
    out: dict[str, str] = {}
    for name, value in table.items():
        if not HEADER_NAME.fullmatch(name):
            raise fail(f"{key}.{name}", "not a lower-case header name")
        if not isinstance(value, str):
            raise fail(f"{key}.{name}", "value must be a string")
        if not FIELD_VALUE.fullmatch(value):
            raise fail(
                f"{key}.{name}",
                f"{value!r} has control, non-ASCII or surrounding space characters",
            )
        out[name] = value
    return out


def dumps(settings: StageSettings) -> dict[str, object]:
    """The TOML document for a stage file, as a dict for tomli_w (see rollout.store)."""
    return {
        "environment": settings.environment,
        "stage": OFF if settings.stage is None else settings.stage,
        "name": settings.name,
        "updated": settings.updated,
        "app": dict(settings.app),
        "edge": dict(settings.edge),
    }
