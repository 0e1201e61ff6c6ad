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

import errno
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rollout.errors import SettingsError
from rollout.names import FIELD_VALUE, HEADER_NAME, MAX_STAGES, OFF, Stage

_TOP_KEYS = frozenset({"environment", "stage", "name", "updated", "app", "edge"})
# Rollout adds at most a soak or a max-age (centuries at most) to a time it recorded, and
# Python's dates end at 9999: a time past this one was not written by rollout.
LATEST_YEAR = 9000
_TOO_DEEP = "arrays or tables nested too deeply"


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


class NotRegularFile(OSError):
    """The path is a FIFO, a device, a socket or a folder: rollout reads only regular files."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(errno.EINVAL, "is not a regular file", os.fspath(path))


def read_regular(path: str | os.PathLike[str]) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes and the fstat of what was read; a symlink to one is fine.

    Anything else raises NotRegularFile without waiting: a FIFO would block open() and
    read() until a writer came, and a device may never end.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise NotRegularFile(path)  # refused before open(): opening a device can act
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the stat and the open
            raise NotRegularFile(path)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def load(path: str | Path) -> StageSettings | None:
    """Read a stage file; None when it does not exist yet (stage off)."""
    p = Path(path)
    try:
        data, _ = read_regular(p)
    except FileNotFoundError:
        return None
    except NotRegularFile:
        raise SettingsError(f"{p}: is not a regular file") from None
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
    except RecursionError:
        where = nesting_at(text)
        if where is None:
            raise SettingsError(f"{source}: not valid TOML: {_TOO_DEEP}") from None
        raise SettingsError(f"{source}: {where[1]}: {_TOO_DEEP} (line {where[0]})") from None
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
    elif stage >= MAX_STAGES:
        # The number follows the name after a ladder change (rollout.stagefile), but no
        # ladder ever had this one: a hand edit, not a renumbering.
        shown = str(stage) if stage < 10**9 else f"a {len(str(stage))}-digit number"
        raise fail(
            "stage",
            f"{shown} is no ladder's stage (a ladder has at most {MAX_STAGES}); "
            "this file is written by rollout, not by hand",
        )
    name = doc.get("name", OFF if stage is None else "")
    if not isinstance(name, str) or not name:
        raise fail("name", "missing or not a string")
    updated = doc.get("updated", "")
    if not isinstance(updated, str):
        raise fail("updated", "not a string")
    if past_latest(updated):
        raise fail(
            "updated",
            f"{updated!r} is past the year {LATEST_YEAR}; this file is written by rollout, "
            "not by hand",
        )
    app = _headers(doc.get("app", {}), "app", fail)
    edge = _headers(doc.get("edge", {}), "edge", fail)
    both = sorted(set(app) & set(edge))
    if both:
        raise fail(f"edge.{both[0]}", "also in [app]; each header has exactly one owner")
    return StageSettings(env, stage, name, app, edge, updated)


def past_latest(text: str) -> bool:
    """Whether text is an ISO 8601 time in LATEST_YEAR or after (never one rollout wrote)."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).year >= LATEST_YEAR
    except ValueError:
        return False


def nesting_at(text: str, limit: int = 100) -> tuple[int, str] | None:
    """Where TOML text nests arrays or inline tables more than `limit` deep: (line, key).

    Only for messages, once tomllib gave up with a RecursionError: it skips strings and
    comments, but does not know every corner of TOML.
    """
    depth, line, table, key, start, i = 0, 1, "", "", 0, 0
    while i < len(text):
        c = text[i]
        if c == "\n":
            line, start = line + 1, i + 1
        elif c == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif c in "\"'":
            end = _string_end(text, i)
            line += text.count("\n", i, end)
            i = end
            continue
        elif c == "[" and depth == 0 and not text[start:i].strip():
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            table = text[i:end].split("#")[0].strip("[] \t")
            i = end
            continue
        elif c in "[{":
            depth += 1
            if depth > limit:
                return line, f"{table}.{key}" if table and key else key or table
        elif c in "]}":
            depth = max(0, depth - 1)
        elif c == "=" and depth == 0:
            key = text[start:i].strip()
        i += 1
    return None


def _string_end(text: str, i: int) -> int:
    """The index just past the TOML string starting at text[i] (a quote)."""
    quote = text[i]
    delim = quote * 3 if text.startswith(quote * 3, i) else quote
    j = i + len(delim)
    while j < len(text):
        if quote == '"' and text[j] == "\\":
            j += 2
        elif text.startswith(delim, j):
            j = end = j + len(delim)
            if len(delim) == 3:  # up to two more quotes end a multi-line string's content
                while j < len(text) and text[j] == quote and j < end + 2:
                    j += 1
            return j
        elif len(delim) == 1 and text[j] == "\n":
            return j  # unterminated: the newline ends it
        else:
            j += 1
    return j


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
