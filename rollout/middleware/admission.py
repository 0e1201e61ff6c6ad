"""What a stage file must pass before a middleware serves it: whole, grammatical, one stage.

`rollout.settings.loads` checks that a file is well-formed; the CLI then checks it
against the plan (`rollout.stagefile`). A middleware has no plan, so it applies the part
of those checks that needs none, at reload time only (the request path never sees it):

- the file is whole: rollout writes it with `[edge]` as its last table and a line end
  last, so a file read while something rewrote it in place (truncated, then written a
  piece at a time) lacks one or the other, and is never served as a shrunken header set;
- every value follows its header's grammar (`rollout.headers.validate`, as the CLI);
- the stage number and name agree (`off` with `off`; `hsts-<duration>` or `preload`);
- the app's HSTS is the one the stage's name implies: `hsts-1d` sends `max-age=86400`
  without preload, `preload` sends preload and includeSubDomains; `max-age=0` (what
  `revert --clear-hsts` writes) fits any stage, and stage off sends nothing else;
- CSP is sent by one owner: one mode, or at an enforcing stage the enforcing policy
  with the plan's next policy report-only beside it.

Plan-bound rules (includeSubDomains and the CSP mode by stage, the edge's values, who
owns what) stay with the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from rollout import headers
from rollout.durations import UNITS, format_duration
from rollout.errors import HeaderValueError, SettingsError
from rollout.headers import hsts
from rollout.names import CSP_FAMILY, HSTS, MAX_STAGES, OFF, ONE_YEAR
from rollout.settings import StageSettings, loads

INCOMPLETE = (
    "incomplete: rollout writes [edge] as the last table, then a line end, and this file "
    "stops before that (cut short, or read while something rewrote it in place; a file "
    "written by hand needs them too, an empty [edge] included)"
)
# A table header line: `[edge]`, `[ "edge" ]`, with an optional comment. Values are one
# line each (settings.loads refuses a line break), so no value can look like one.
_TABLE = re.compile(r"""\s*\[\s*(?P<name>[A-Za-z0-9_-]+|"[^"]*"|'[^']*')\s*\]\s*(?:#.*)?""")
_UNITS = "".join(unit for unit, _ in UNITS)
_STAGE_NAME = re.compile(r"hsts-(?P<count>[0-9]{1,12})(?P<unit>[" + _UNITS + "])")
_UNIT = dict(UNITS)
PRELOAD = "preload"
# A ramp holds at most MAX_STAGES - 1 max-ages; the preload stage comes on top.
_LAST_HSTS_INDEX = MAX_STAGES - 2


def admit(data: bytes, source: str) -> StageSettings:
    """A stage file's bytes read and checked as above; SettingsError names source and key."""
    if not data:
        raise SettingsError(f"{source}: empty (being rewritten in place, or cut short)")
    # Whole first: a file cut short fails wherever the cut fell (mid-string, before the
    # stage line, ...), a different message each time; what happened is one thing.
    if not data.endswith(b"\n") or _last_table(data) != "edge":
        raise SettingsError(f"{source}: {INCOMPLETE}")
    settings = loads(data, source=source)
    try:
        check(settings)
    except SettingsError as exc:
        raise SettingsError(f"{source}: {exc}") from None
    return settings


def _last_table(data: bytes) -> str | None:
    """The name of the last `[table]` line; read before decoding, for any bytes."""
    last = None
    for raw in data.splitlines():
        line = raw.decode("utf-8", "replace")
        if line.lstrip().startswith("["):
            m = _TABLE.fullmatch(line)
            last = m.group("name").strip("\"'") if m else line
    return last


def check(settings: StageSettings) -> None:
    """Refuse settings that no stage of any plan sends; SettingsError names the key."""
    _check_label(settings)
    for table, owned in (("app", settings.app), ("edge", settings.edge)):
        for name, value in owned.items():
            try:
                headers.validate(name, value)
            except HeaderValueError as exc:
                raise SettingsError(f"{table}.{name}: {exc}") from None
    _check_csp(settings)
    _check_hsts(settings)


def _check_label(settings: StageSettings) -> None:
    stage, name = settings.stage, settings.name
    if stage is None:
        if name != OFF:
            raise SettingsError(f"name: {name!r}, but the stage is off")
        return
    if name == OFF:
        raise SettingsError(f'name: "off", but the stage is {stage}')
    if name == PRELOAD:
        if stage == 0:
            raise SettingsError(
                "stage: 0, but the preload stage comes after the top of a ramp, never first"
            )
        return
    if _seconds(name) is None:
        raise SettingsError(
            f"name: {name!r} is no stage name a ladder gives (hsts-30s, hsts-1d, ..., preload)"
        )
    if stage > _LAST_HSTS_INDEX:
        raise SettingsError(
            f"stage: {stage}, but a ramp has at most {_LAST_HSTS_INDEX + 1} max-ages, "
            f"so {name!r} is at most stage {_LAST_HSTS_INDEX}"
        )


def _seconds(name: str) -> int | None:
    """The max-age an `hsts-<duration>` stage name stands for, written as rollout writes it."""
    m = _STAGE_NAME.fullmatch(name)
    if m is None:
        return None
    seconds = int(m.group("count")) * _UNIT[m.group("unit")]
    return seconds if seconds and f"hsts-{format_duration(seconds)}" == name else None


def _check_csp(settings: StageSettings) -> None:
    owners = [(t, n) for t, o in (("app", settings.app), ("edge", settings.edge)) for n in o]
    family = sorted((t, n) for t, n in owners if n in CSP_FAMILY)
    # Both names from one owner is an enforcing stage with the plan's next policy sent
    # report-only beside it (content-security-policy-next); two owners never.
    if len({t for t, _ in family}) > 1:
        (t0, n0), (t1, n1) = family[0], family[1]
        raise SettingsError(f"{t1}.{n1}: also {t0}.{n0}; CSP is sent by one owner")


def _check_hsts(settings: StageSettings) -> None:
    app: Mapping[str, str] = settings.app
    at = _at(settings)
    if settings.stage is None:
        extra = sorted(n for n in app if not (n == HSTS and _cleared(app[n])))
        if extra:
            raise SettingsError(
                f"app.{extra[0]}: stage off sends no app-owned headers (only max-age=0)"
            )
        return
    value = app.get(HSTS)
    if value is None:
        if HSTS not in settings.edge:
            raise SettingsError(f"app.{HSTS}: missing; {at} sends HSTS, from the app or the edge")
        return
    parsed = hsts.parse(value)  # validated above
    if parsed.max_age == 0:
        return  # revert --clear-hsts: fits any stage
    if settings.name == PRELOAD:
        if not (parsed.preload and parsed.include_subdomains and parsed.max_age >= ONE_YEAR):
            raise SettingsError(
                f"app.{HSTS}: {value!r}, but {at} sends max-age of at least {ONE_YEAR}, "
                "includeSubDomains and preload"
            )
        return
    seconds = _seconds(settings.name)
    if parsed.max_age != seconds:
        raise SettingsError(
            f"app.{HSTS}: max-age is {parsed.max_age}, but {at} sends max-age={seconds}"
        )
    if parsed.preload:
        raise SettingsError(
            f"app.{HSTS}: {value!r} has preload, which only the preload stage sends"
        )


def _cleared(value: str) -> bool:
    try:
        return hsts.parse(value).max_age == 0
    except HeaderValueError:
        return False


def _at(settings: StageSettings) -> str:
    return f"stage {settings.label} ({settings.name})"
