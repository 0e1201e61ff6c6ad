"""The plan, `plan.toml`: pydantic models that refuse a bad plan with one precise line."""

from __future__ import annotations

import difflib
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rollout import planview
from rollout.addresses import (
    ConnectTo,
    Resolve,
    check_url,
    host_problem,
    parse_connect_to,
    parse_resolve,
)
from rollout.durations import MAX_DURATION, format_duration, parse_duration
from rollout.errors import HeaderValueError, PlanError
from rollout.headers.value import check_value
from rollout.names import CSP_FAMILY, CSP_RO, HSTS, MAX_STAGES, ONE_YEAR, REPORTING_ENDPOINTS
from rollout.settings import NotRegularFile, nesting_at, read_regular

__all__ = [
    "ConnectTo",
    "Environment",
    "Ladder",
    "Plan",
    "Policy",
    "Resolve",
    "load_plan",
    "parse_connect_to",
    "parse_plan",
    "parse_resolve",
    "with_overrides",
]

DEFAULT_HSTS = (30, 300, 3600, 86400, 604800, 2592000, ONE_YEAR)
# Far above what browsers keep (they cap max-age at ONE_YEAR), yet low enough that a time
# plus any max-age stays a date Python can hold.
MAX_AGE = 10**10
MAX_RAMP = MAX_STAGES - 1  # the preload stage comes on top

_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")


class _Refusal(ValueError):
    """A refusal raised inside a validator, with the key path it is about."""

    def __init__(self, loc: tuple[str | int, ...], reason: str) -> None:
        super().__init__(reason)
        self.loc = loc
        self.reason = reason


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=_kebab)


class Policy(_Model):
    """`[policy]`: the final, enforced header values."""

    content_security_policy: StrictStr | None = None
    permissions_policy: StrictStr | None = None
    referrer_policy: StrictStr | None = None
    x_frame_options: StrictStr | None = None
    x_content_type_options: StrictStr | None = None
    csp_report_uri: StrictStr | None = None
    # Sent report-only beside the enforcing policy once CSP enforces (docs/reports.md).
    content_security_policy_next: StrictStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _misplaced(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if HSTS in data:
                raise _Refusal((HSTS,), "HSTS values come from [ladder] hsts; remove it here")
            if CSP_RO in data:
                raise _Refusal(
                    (CSP_RO,),
                    "the ladder decides when CSP is report-only; "
                    "write the policy as content-security-policy",
                )
        return data

    @field_validator(
        "content_security_policy",
        "permissions_policy",
        "referrer_policy",
        "x_frame_options",
        "x_content_type_options",
        "content_security_policy_next",
    )
    @classmethod
    def _header(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        assert info.field_name is not None
        return _validate_header(_kebab(info.field_name).removesuffix("-next"), value)

    @field_validator("csp_report_uri")
    @classmethod
    def _report_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # Visible ASCII only, as in any header value; no backslash: the URI is also a
        # quoted string in Reporting-Endpoints.
        check_value(value)
        ok = re.match(r"^(https?://[^\s/?#\\]+|/)[^\s;,'\"\\]*\Z", value)
        if not ok:
            raise ValueError(f"{value!r} is not an https:// URL or a path starting with /")
        return value

    @model_validator(mode="after")
    def _report_uri_needs_a_policy(self) -> Policy:
        if self.csp_report_uri is not None and self.content_security_policy is None:
            raise _Refusal(
                ("csp-report-uri",),
                "there is no content-security-policy to add it to; set one or remove this",
            )
        if self.content_security_policy_next is not None and self.content_security_policy is None:
            raise _Refusal(
                ("content-security-policy-next",),
                "there is no content-security-policy for it to follow; write it there instead",
            )
        return self

    def headers(self) -> dict[str, str]:
        """The policy's headers (lower-case name -> value), without csp-report-uri and the
        next policy (the ladder decides where those go)."""
        values = self.model_dump(
            exclude={"csp_report_uri", "content_security_policy_next"}, by_alias=True
        )
        return {name: value for name, value in values.items() if value is not None}


class Ladder(_Model):
    """`[ladder]`: the HSTS ramp and where CSP enforcement and includeSubDomains begin."""

    hsts: list[StrictInt] = Field(default_factory=lambda: list(DEFAULT_HSTS))
    csp_enforce_from: StrictInt = 604800
    # False: never (subdomains you do not control); preload is then refused.
    include_subdomains_from: StrictInt | StrictBool = 2592000
    preload: StrictBool = False

    @field_validator("hsts")
    @classmethod
    def _ramp(cls, ramp: list[int]) -> list[int]:
        if not ramp:
            raise ValueError("the ramp is empty; list max-age values in seconds, ascending")
        if len(ramp) > MAX_RAMP:
            raise ValueError(f"{len(ramp)} max-ages; a ramp holds at most {MAX_RAMP}")
        for i, age in enumerate(ramp):
            if age <= 0:
                raise _Refusal((i,), f"{age} is not a positive number of seconds")
            if age > MAX_AGE:
                raise _Refusal(
                    (i,),
                    f"{age} is above {MAX_AGE} seconds; browsers keep at most {ONE_YEAR} "
                    "(1y), so end the ramp there",
                )
            if i and age <= ramp[i - 1]:
                raise _Refusal((i,), f"{age} does not ascend (it follows {ramp[i - 1]})")
        return ramp

    @field_validator("include_subdomains_from")
    @classmethod
    def _never_or_seconds(cls, value: int | bool) -> int | bool:
        if value is True:
            raise ValueError("true is not a number of seconds; give seconds, or false for never")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> Ladder:
        top = self.hsts[-1]
        for key in ("csp_enforce_from", "include_subdomains_from"):
            value = getattr(self, key)
            if value is False:
                continue
            if value < 0:
                raise _Refusal((_kebab(key),), f"{value} is negative; use seconds >= 0")
            # A default beyond a short ramp means "never on this ramp" (`rollout plan`
            # says so); only a value the user wrote is refused for being unreachable.
            if value > top and key in self.model_fields_set:
                raise _Refusal(
                    (_kebab(key),),
                    f"{value} is above every stage's max-age (the ramp ends at {top}); "
                    "lower it or extend hsts",
                )
        if self.preload and self.subdomains_from is None:
            raise _Refusal(
                ("preload",),
                "preload needs includeSubDomains, which include-subdomains-from = false "
                "turns off; remove one of them",
            )
        if self.preload and top < ONE_YEAR:
            raise _Refusal(
                ("preload",),
                f"preload needs a last max-age of at least {ONE_YEAR} (the ramp ends at {top})",
            )
        return self

    @property
    def enforce_from(self) -> int | None:
        """The least max-age that enforces CSP; None: CSP stays report-only on this ramp."""
        return planview.enforce_from(self.csp_enforce_from, self.hsts)

    @property
    def subdomains_from(self) -> int | None:
        """The least max-age that adds includeSubDomains; None: never on this ramp."""
        return planview.subdomains_from(self.include_subdomains_from, self.hsts)

    def unreached_defaults(self) -> list[str]:
        """What a default threshold beyond this ramp's top did instead, one line each."""
        top, out = self.hsts[-1], []
        if self.enforce_from is None:
            out.append(
                f"csp-enforce-from is not set and its default ({self.csp_enforce_from}) is "
                f"above the ramp's top ({top}): CSP stays report-only at every stage; set "
                "it to enforce"
            )
        if self.subdomains_from is None and self.include_subdomains_from is not False:
            out.append(
                f"include-subdomains-from is not set and its default "
                f"({self.include_subdomains_from}) is above the ramp's top ({top}): no stage "
                "adds includeSubDomains; set it, or false to say never"
            )
        return out


def _resolve_cacert(value: str, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base", Path("."))
    path = (Path(base) / Path(value).expanduser()).resolve()
    if not path.is_file():
        raise ValueError(f"{value!r} is not a file (looked for {path})")
    return path


class Environment(_Model):
    """`[environments.NAME]`: where an environment answers and who owns which header."""

    name: StrictStr
    urls: list[StrictStr] = Field(default_factory=list)
    edge: frozenset[str] = frozenset()
    subdomains: list[StrictStr] = Field(default_factory=list)
    connect_to: list[ConnectTo] = Field(default_factory=list)
    resolve: list[Resolve] = Field(default_factory=list)
    cacert: Path | None = None
    apply: list[str] | None = None
    soak: int | None = None  # seconds; None is "max-age", the current stage's HSTS max-age
    after: StrictStr | None = None
    # The CSP reports gate (docs/reports.md): None leaves CSP on the ladder alone.
    csp_violations: StrictInt | None = None
    csp_min_page_views: StrictInt | None = None
    csp_soak: int | None = None  # seconds a staged report-only policy runs; None: as soak
    reports_store: StrictStr | None = None  # a PostgreSQL URL or an SQLite path; None: beside

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        seen: set[str] = set()
        for i, url in enumerate(urls):
            try:
                key = check_url(url)
            except ValueError as exc:
                raise _Refusal((i,), str(exc)) from None
            if key in seen:
                raise _Refusal((i,), f"{url!r} is listed twice")
            seen.add(key)
        return urls

    @field_validator("edge", mode="before")
    @classmethod
    def _edge(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("must be a list of header names")
        names: set[str] = set()
        for i, name in enumerate(value):
            if not isinstance(name, str):
                raise _Refusal((i,), f"{_show(name)} is not a header name")
            names.add(name.strip().lower())
        # Whoever owns one CSP header owns both (an enforcing stage may send both) and the
        # Reporting-Endpoints header that announces where their reports go.
        family = CSP_FAMILY | {REPORTING_ENDPOINTS}
        return frozenset(names | family) if names & family else frozenset(names)

    @field_validator("subdomains")
    @classmethod
    def _subdomains(cls, hosts: list[str]) -> list[str]:
        out = []
        for i, host in enumerate(hosts):
            if "://" in host or "/" in host:
                raise _Refusal(
                    (i,), f"{host!r} is not a host name; write it like 'api.example.test'"
                )
            problem = host_problem(host)
            if problem:
                raise _Refusal((i,), f"{host!r} {problem}")
            out.append(host.lower())
        return out

    @field_validator("connect_to", mode="before")
    @classmethod
    def _connect_to(cls, value: Any) -> Any:
        return [_entry(i, item, parse_connect_to) for i, item in enumerate(_list(value))]

    @field_validator("resolve", mode="before")
    @classmethod
    def _resolve(cls, value: Any) -> Any:
        return [_entry(i, item, parse_resolve) for i, item in enumerate(_list(value))]

    @field_validator("cacert", mode="before")
    @classmethod
    def _cacert(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{_show(value)} is not a file path")
        return _resolve_cacert(value, info)

    @field_validator("apply", mode="before")
    @classmethod
    def _apply(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                argv = shlex.split(value)
            except ValueError as exc:
                why = str(exc).lower()
                raise ValueError(f"{value!r} cannot be split into arguments: {why}") from None
        elif isinstance(value, list):
            for i, arg in enumerate(value):
                if not isinstance(arg, str):
                    raise _Refusal((i,), f"{_show(arg)} is not a string")
            argv = list(value)
        else:
            raise ValueError(f"{_show(value)} is not a command string or a list of arguments")
        if not argv or not argv[0]:
            raise ValueError("the command is empty")
        return argv

    @field_validator("csp_violations", "csp_min_page_views")
    @classmethod
    def _count(cls, value: int | None, info: ValidationInfo) -> int | None:
        least = 1 if info.field_name == "csp_min_page_views" else 0
        if value is not None and not least <= value <= 10**9:
            raise ValueError(f"{value} is not a whole number from {least} to 1000000000")
        return value

    @field_validator("reports_store")
    @classmethod
    def _store(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        if value.startswith(("postgresql://", "postgres://")):
            try:
                password = urlsplit(value).password
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a valid URL: {exc}") from None
            if password is not None:
                raise ValueError(
                    "holds a password; keep it out of the plan (use ~/.pgpass or PGPASSWORD)"
                )
            return value
        if "://" in value or not value.strip() or "\0" in value:
            raise ValueError(f"{value!r} is not a postgresql:// URL or an SQLite file path")
        base = (info.context or {}).get("base", Path("."))
        return str((Path(base) / Path(value).expanduser()).absolute())

    @field_validator("csp_soak", mode="before")
    @classmethod
    def _csp_soak(cls, value: Any) -> Any:
        return _duration(value, max_age=False)

    @field_validator("soak", mode="before")
    @classmethod
    def _soak(cls, value: Any) -> Any:
        return _duration(value, max_age=True)


def _duration(value: Any, *, max_age: bool) -> int | None:
    """Seconds in a plan duration; "max-age" (None) only where max_age allows it."""
    if max_age and value == "max-age":
        return None
    if isinstance(value, str):
        seconds = parse_duration(value)
        if seconds is not None and seconds > MAX_DURATION:
            longest = format_duration(MAX_DURATION)
            raise ValueError(f"{value!r} is longer than {longest}, the longest soak")
        if seconds is not None:
            return seconds
    also = ' or "max-age"' if max_age else ""
    raise ValueError(f"{_show(value)} is not a duration like 30s, 15m, 24h, 7d, 1y{also}")


def _show(value: Any) -> str:
    """A value as TOML would write it, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{_show(value)} is not a list")
    return value


def _entry(i: int, item: Any, parse: Any) -> Any:
    if not isinstance(item, str):
        raise _Refusal((i,), f"{_show(item)} is not a string")
    try:
        return parse(item)
    except ValueError as exc:
        raise _Refusal((i,), str(exc)) from None


def _validate_header(name: str, value: str) -> str:
    from rollout.headers import validate

    return validate(name, value)


class Plan(_Model):
    """A whole plan: the policy, the ladder and the environments, all validated."""

    path: Path
    policy: Policy
    ladder: Ladder = Field(default_factory=Ladder)
    environments: dict[str, Environment] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        envs = data.get("environments")
        if not isinstance(envs, dict):
            return data
        stem = Path(data.get("path", "plan.toml")).stem.lower()
        named = {}
        for key, table in envs.items():
            if not _ENV_NAME.match(key) or key.lower() == stem:
                why = (
                    f"its settings file would overwrite {stem}.toml"
                    if key.lower() == stem
                    else "use letters, digits, '-' and '_' (it names stages/<env>.toml)"
                )
                raise _Refusal(("environments", key), f"{key!r} is not a usable name: {why}")
            if isinstance(table, dict):
                if "name" in table:
                    raise _Refusal(("environments", key, "name"), _unknown("name", Environment))
                table = {**table, "name": key}
            named[key] = table
        return {**data, "environments": named}

    @model_validator(mode="after")
    def _links(self) -> Plan:
        if not self.environments:
            raise _Refusal(("environments",), "the plan names no environment; add one")
        sends = {HSTS, *CSP_FAMILY, *self.policy.headers()}
        if self.policy.csp_report_uri is not None:
            sends.add(REPORTING_ENDPOINTS)
        for env in self.environments.values():
            for header in sorted(env.edge - sends - {REPORTING_ENDPOINTS}):
                where = ("environments", env.name, "edge")
                known = ", ".join(sorted(sends))
                raise _Refusal(where, f"{header!r} is not a header the plan sends ({known})")
            self._csp_gate(env)
            if env.after is None:
                continue
            where = ("environments", env.name, "after")
            if env.after == env.name:
                raise _Refusal(where, "an environment cannot come after itself")
            chain = [env.name]
            cur: str | None = env.after
            while cur is not None:
                if cur not in self.environments:
                    known = ", ".join(self.environments)
                    raise _Refusal(where, f"no environment {cur!r} (the plan has {known})")
                if cur in chain:
                    loop = " -> ".join([*chain, cur])
                    raise _Refusal(where, f"after forms a cycle: {loop}")
                chain.append(cur)
                cur = self.environments[cur].after
        return self

    def _csp_gate(self, env: Environment) -> None:
        """The CSP reports gate needs reports to judge and a report-only stage to soak."""
        where = ("environments", env.name)
        if env.csp_violations is None:
            for key in ("csp_min_page_views", "csp_soak"):
                if getattr(env, key) is not None:
                    raise _Refusal(
                        (*where, _kebab(key)), "only applies with csp-violations; set that too"
                    )
            return
        at = (*where, "csp-violations")
        if self.policy.content_security_policy is None:
            raise _Refusal(at, "the policy has no content-security-policy to gate")
        if self.policy.csp_report_uri is None:
            raise _Refusal(
                at, 'reports need somewhere to go: set policy.csp-report-uri (e.g. "/csp-report")'
            )
        enforce = self.ladder.enforce_from
        if enforce is not None and enforce <= self.ladder.hsts[0]:
            raise _Refusal(
                at,
                f"stage 0 already enforces CSP (ladder.csp-enforce-from = {enforce}), so no "
                "report-only stage comes first to gather reports; raise csp-enforce-from",
            )

    @property
    def folder(self) -> Path:
        """The plan's folder, where settings and history files live."""
        return self.path.parent

    def environment(self, name: str) -> Environment:
        """The named environment; PlanError names the ones there are."""
        return planview.environment_in(self.path, self.environments, name)


def _unknown(key: str, model: type[BaseModel]) -> str:
    allowed = [_kebab(f) for f in model.model_fields if f not in ("name", "path")]
    near = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {near[0]!r}?" if near else "expected " + ", ".join(allowed)
    return f"unknown key; {hint}"


_MODELS: dict[str, type[BaseModel]] = {
    "policy": Policy,
    "ladder": Ladder,
    "environments": Environment,
}


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.match(r"^[A-Za-z0-9_-]+$", part) else f'"{part}"'
            out += f".{text}" if out else text
    return out or "plan"


def _message(err: Any) -> tuple[tuple[str | int, ...], str]:
    """One pydantic error as (key path, reason), in the plan's own terms."""
    loc = tuple(err["loc"])
    kind, value = err["type"], err.get("input")
    error = (err.get("ctx") or {}).get("error")
    if isinstance(error, _Refusal):
        return loc + error.loc, error.reason
    if isinstance(error, HeaderValueError | ValueError):
        return loc, str(error)
    if kind == "extra_forbidden":
        model = _MODELS.get(str(loc[0]), Plan) if len(loc) <= 3 else Plan
        return loc, _unknown(str(loc[-1]), model)
    if kind == "missing" and loc == ("policy",):
        return loc, "the [policy] table is missing; it holds the final header values"
    if kind == "missing":
        return loc, "required; it is missing"
    if kind == "int_type" and loc and loc[-1] in ("csp-violations", "csp-min-page-views"):
        return loc, f"{_show(value)} is not a whole number"
    if kind == "int_type":
        return loc, f"{_show(value)} is not a whole number of seconds"
    if kind == "string_type":
        return loc, f"{_show(value)} is not a string"
    if kind == "bool_type":
        return loc, f"{_show(value)} is not true or false"
    if kind in ("list_type", "frozen_set_type"):
        return loc, f"{_show(value)} is not a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return loc, f"{_show(value)} is not a table"
    return loc, err["msg"]


def parse_plan(text: str, path: str | Path = "plan.toml") -> Plan:
    """Validate a plan's TOML text; PlanError is one line: file, key, reason."""
    source = Path(path)
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        where = nesting_at(text)
        if where is None:
            raise PlanError(f"{source}: not valid TOML: {_TOO_DEEP}") from None
        raise PlanError(f"{source}:{where[0]}: {where[1]}: {_TOO_DEEP}") from None
    except tomllib.TOMLDecodeError as exc:
        m = re.match(r"^(.*) \(at line (\d+), column (\d+)\)$", str(exc))
        if m:
            why, line, col = m.groups()
            reason = f"not valid TOML: {why[:1].lower()}{why[1:]} (column {col})"
            raise PlanError(f"{source}:{line}: {reason}") from None
        raise PlanError(f"{source}: not valid TOML: {exc}") from None
    if "path" in doc:
        raise PlanError(f"{source}: path: {_unknown('path', Plan)}")
    try:
        return Plan.model_validate({**doc, "path": source}, context={"base": source.parent})
    except ValidationError as exc:
        loc, reason = _message(exc.errors()[0])
        raise PlanError(f"{source}: {_dotted(loc)}: {reason}") from None


_TOO_DEEP = "arrays or tables nested too deeply"


def load_plan(path: str | Path) -> Plan:
    """Read and validate the plan file; PlanError when it is missing or refused.

    A symlink to a regular file is read (deploys link plans); a FIFO or a device, behind a
    symlink or not, is refused at once rather than waited on.
    """
    source = Path(path)
    try:
        data, _ = read_regular(source)
    except FileNotFoundError:
        raise PlanError(
            f"{source}: no such plan file; pass --plan PATH or set ROLLOUT_PLAN"
        ) from None
    except NotRegularFile:
        raise PlanError(f"{source}: is not a regular file") from None
    except OSError as exc:
        raise PlanError(f"{source}: cannot read the plan: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PlanError(f"{source}:{line}: not UTF-8 text; save the plan as UTF-8") from None
    return parse_plan(text, source)


def with_overrides(
    plan: Plan,
    env_name: str,
    *,
    resolve: list[str] | tuple[str, ...] = (),
    connect_to: list[str] | tuple[str, ...] = (),
    cacert: str | Path | None = None,
) -> Environment:
    """The named environment with command-line --resolve/--connect-to/--cacert added.

    Command-line entries come first and replace the plan's entries for the same HOST:PORT.
    """
    env = plan.environment(env_name)
    extra_r = [_flag("--resolve", entry, parse_resolve) for entry in resolve]
    extra_c = [_flag("--connect-to", entry, parse_connect_to) for entry in connect_to]
    update: dict[str, Any] = {}
    if extra_r:
        taken = {(r.host, r.port) for r in extra_r}
        update["resolve"] = extra_r + [r for r in env.resolve if (r.host, r.port) not in taken]
    if extra_c:
        taken = {(c.host, c.port) for c in extra_c}
        update["connect_to"] = extra_c + [
            c for c in env.connect_to if (c.host, c.port) not in taken
        ]
    if cacert is not None:
        path = Path(cacert).expanduser().resolve()
        if not path.is_file():
            raise PlanError(f"--cacert: {str(cacert)!r} is not a file")
        update["cacert"] = path
    return env.model_copy(update=update) if update else env


def _flag(flag: str, entry: str, parse: Any) -> Any:
    try:
        return parse(entry)
    except ValueError as exc:
        raise PlanError(f"{flag}: {exc}") from None
