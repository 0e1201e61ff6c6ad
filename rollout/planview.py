"""A validated plan without pydantic, for `rollout status`: the plans it validated, remembered.

Validating a plan imports pydantic and builds its models, about ten times Python's own
start-up, for a command that only reads files. So `rollout status`, after validating a
plan, remembers its fields (JSON, under `$XDG_CACHE_HOME/rollout/plans/`, keyed by the
plan's bytes, its path and this rollout's plan code); the next `status` of the same bytes
rebuilds the plan from them as these plain twins: the same attributes, and the few
methods that the status path (ladder, store, stagefile, history, gates) calls. Anything
unusual (no entry, another rollout, a cacert gone since) means the normal path:
validate, then remember. Imports only the standard library.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rollout import __version__
from rollout.addresses import ConnectTo, Resolve
from rollout.errors import PlanError
from rollout.settings import read_regular

if TYPE_CHECKING:
    from rollout.plan import Plan

_E = TypeVar("_E")  # an environment: plan.Environment or EnvironmentView

# The [policy] keys that are not headers sent as they stand (plan.Policy.headers leaves
# them out too; tests/test_status_quick.py compares the two).
_NOT_HEADERS = frozenset({"csp_report_uri", "content_security_policy_next"})
MAX_ENTRIES = 64  # a handful of plans per user; the oldest go first
MAX_BYTES = 8 << 20


class PolicyView:
    """`[policy]`, as `rollout.plan.Policy` holds it."""

    csp_report_uri: str | None

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)
        self._fields = fields

    def headers(self) -> dict[str, str]:
        """The policy's headers (lower-case name -> value), as `Policy.headers` gives them."""
        return {
            name.replace("_", "-"): value
            for name, value in self._fields.items()
            if value is not None and name not in _NOT_HEADERS
        }


class LadderView:
    """`[ladder]`, as `rollout.plan.Ladder` holds it."""

    hsts: list[int]
    csp_enforce_from: int
    include_subdomains_from: int | bool
    preload: bool

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)

    @property
    def enforce_from(self) -> int | None:
        return enforce_from(self.csp_enforce_from, self.hsts)

    @property
    def subdomains_from(self) -> int | None:
        return subdomains_from(self.include_subdomains_from, self.hsts)


def environment_in(path: Path, environments: Mapping[str, _E], name: str) -> _E:
    """The named environment of the plan at path; PlanError names the ones there are
    (for plan.Plan and its twin alike)."""
    try:
        return environments[name]
    except KeyError:
        known = ", ".join(environments)
        raise PlanError(
            f"{path}: environments: no environment {name!r} (the plan has {known})"
        ) from None


# The ladder's two derived thresholds, for plan.Ladder and LadderView alike.


def enforce_from(csp_enforce_from: int, hsts: list[int]) -> int | None:
    """The least max-age that enforces CSP; None: CSP stays report-only on this ramp."""
    return csp_enforce_from if csp_enforce_from <= hsts[-1] else None


def subdomains_from(include_subdomains_from: int | bool, hsts: list[int]) -> int | None:
    """The least max-age that adds includeSubDomains; None: never on this ramp."""
    if include_subdomains_from is False or include_subdomains_from > hsts[-1]:
        return None
    return int(include_subdomains_from)


class EnvironmentView:
    """`[environments.NAME]`, as `rollout.plan.Environment` holds it."""

    name: str
    edge: frozenset[str]
    soak: int | None
    after: str | None
    cacert: Path | None

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)
        self.edge = frozenset(fields["edge"])
        self.connect_to = [ConnectTo(*c) for c in fields["connect_to"]]
        self.resolve = [Resolve(*r) for r in fields["resolve"]]
        self.cacert = None if fields["cacert"] is None else Path(fields["cacert"])


class PlanView:
    """A whole plan that validated, as `rollout.plan.Plan` holds it."""

    def __init__(self, path: Path, fields: dict[str, Any]) -> None:
        self.path = path
        self.policy = PolicyView(fields["policy"])
        self.ladder = LadderView(fields["ladder"])
        self.environments = {
            name: EnvironmentView(env) for name, env in fields["environments"].items()
        }

    @property
    def folder(self) -> Path:
        return self.path.parent

    def environment(self, name: str) -> EnvironmentView:
        return environment_in(self.path, self.environments, name)


def recall(path: Path) -> Plan | None:
    """The plan at `path` rebuilt from the cache if its bytes validated before, else None."""
    try:
        data, _ = read_regular(path)
        entry = _entry(path, data)
        if entry is None:
            return None
        raw, st = read_regular(entry)
        if st.st_size > MAX_BYTES or st.st_uid != os.getuid():
            return None
        fields = json.loads(raw)
    except (OSError, ValueError):
        return None
    view = PlanView(path, fields)
    # Validation looked at the file system once: a cacert must still be a file.
    for env in view.environments.values():
        if env.cacert is not None and not env.cacert.is_file():
            return None
    return view  # type: ignore[return-value]  # the same attributes, pydantic-free


def remember(path: Path, data: bytes, plan: Plan) -> None:
    """Keep a plan that validated from exactly `data`; never fails the command."""
    import tempfile

    with contextlib.suppress(OSError, ValueError, TypeError, RuntimeError):
        entry = _entry(path, data)
        if entry is None or entry.exists():
            return
        folder = entry.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps(plan.model_dump(mode="json", exclude={"path"}))
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as f:
            f.write(text)
        os.replace(f.name, entry)
        _prune(folder)


def _entry(path: Path, data: bytes) -> Path | None:
    try:
        home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    except RuntimeError:  # no HOME and no passwd entry: nowhere to remember
        return None
    if not os.path.isabs(home):
        return None  # the XDG spec: a relative path is invalid, ignore it
    key = hashlib.sha256()
    # A relative plan path resolves against the working folder, and so do its folders.
    for part in (__version__, _code_stamp(), str(path), os.path.abspath(path)):
        key.update(part.encode("utf-8", "surrogateescape") + b"\0")
    key.update(data)
    return Path(home) / "rollout" / "plans" / f"{key.hexdigest()}.json"


def _code_stamp() -> str:
    """The code validation runs (the plan models, these twins, the grammars, addresses,
    durations): an edited rollout never reads entries an older one wrote."""
    here = Path(__file__).parent
    stamps = []
    for source in sorted([*here.glob("*.py"), *here.glob("headers/*.py")]):
        st = os.stat(source)
        stamps.append(f"{source.name}:{st.st_size}:{st.st_mtime_ns}")
    return ",".join(stamps)


def _prune(folder: Path) -> None:
    entries = []
    for item in os.scandir(folder):
        st = item.stat(follow_symlinks=False)
        if stat.S_ISREG(st.st_mode):
            entries.append((st.st_mtime_ns, item.path))
    for _, old in sorted(entries)[:-MAX_ENTRIES]:
        with contextlib.suppress(OSError):
            os.unlink(old)
