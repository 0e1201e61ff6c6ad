"""Fuzzing the plan loader and the stage-file reader: never a traceback, one-line refusals.

Documents start as a real plan (every key DESIGN.md fixes) or a real stage file written
the way rollout writes it, then hypothesis mutates them: a key set to a value of another
type or an odd one (huge and negative numbers, NaN, dates, non-ASCII digits, CR/LF/NUL,
nested tables), a key deleted or an unknown one added, bytes inserted or the text cut.
What must hold for every document:

- the loader returns, or raises InputError whose message is one line naming the file;
- an accepted plan builds its ladder and every stage's settings for every environment,
  and each header value of each stage passes its grammar (no CR/LF/NUL reaches a header);
- an accepted stage file holds only values the grammar accepts.

Budgets: tests/fuzz/strategies.py (few examples in CI, 10,000 each with ROLLOUT_DEEP=1).
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from rollout import headers, ladder, settings, stagefile
from rollout.errors import InputError
from rollout.plan import Plan, parse_plan
from tests.fuzz import strategies as s

PLAN: dict[str, Any] = {
    "policy": {
        "content-security-policy": (
            "default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
        ),
        "permissions-policy": "geolocation=(), camera=(), microphone=()",
        "referrer-policy": "strict-origin-when-cross-origin",
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        "csp-report-uri": "https://csp.example.test/report",
    },
    "ladder": {
        "hsts": [30, 300, 3600, 86400, 604800, 2592000, 31536000],
        "csp-enforce-from": 604800,
        "include-subdomains-from": 2592000,
        "preload": False,
    },
    "environments": {
        "staging": {
            "urls": ["https://staging.example.test/"],
            "edge": ["x-content-type-options"],
            "subdomains": ["api.staging.example.test"],
            "connect-to": ["staging.example.test:443:127.0.0.1:8443"],
            "resolve": ["api.staging.example.test:443:127.0.0.1"],
            "apply": "systemctl reload myapp",
            "soak": "1h",
        },
        "production": {"after": "staging", "urls": ["https://www.example.test/"]},
    },
}

# Values of every TOML type, weighted to the ones that broke parsers before.
scalar = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63), 10**18]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    s.anything,
    st.sampled_from(["1h", "999999999w", "١h", "max-age", "0s", "", "x" * 300, "a\r\nb"]),
    st.sampled_from(["https://a.example.test/", "http://[::1]:0/", "h:443:127.0.0.1:9"]),
    st.datetimes(timezones=st.none() | st.just(datetime.UTC)),
    st.dates(),
)
toml_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(s.token, inner, max_size=3),
    max_leaves=8,
)


def _like(value: Any) -> st.SearchStrategy[Any]:
    """A value of the same kind as value, so that many edits survive the type checks and
    reach the grammars (a header-shaped string for a string, another number for a number)."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(-10, 10**9), st.sampled_from([0, 1, 2**31, 2**63]))
    if isinstance(value, str):
        return st.one_of(s.CSP, s.PERMISSIONS, s.HSTS, s.REFERRER, s.FRAME_OPTIONS, s.VALUE)
    if isinstance(value, list):
        return st.lists(st.one_of(st.integers(0, 10**8), s.VALUE), max_size=8)
    return toml_value


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path (and list index) in doc."""
    found: list[tuple[Any, ...]] = []
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    )
    for key, value in items:
        found.append((*prefix, key))
        found += _paths(value, (*prefix, key))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> str:
    """base as TOML text after a few random edits of its tree, then maybe of its text."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["like", "like", "set", "delete", "add"]))
        if action == "like":
            parent[path[-1]] = draw(_like(parent[path[-1]]))
        elif action == "set":
            parent[path[-1]] = draw(toml_value)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(s.token)] = draw(toml_value)
        else:
            parent.append(draw(toml_value))
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):  # a value TOML cannot hold (a None nowhere, ...)
        text = tomli_w.dumps(base)
    if draw(st.booleans()) and draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.booleans())
        text = text[:at] if cut else text[:at] + draw(st.text(max_size=8)) + text[at:]
    return text


def _assert_one_line(exc: InputError, source: str) -> None:
    message = str(exc)
    assert "\n" not in message and "\r" not in message, repr(message)
    assert message.startswith(source), message


def _assert_usable(plan: Plan) -> None:
    """An accepted plan: every stage of every environment builds, with valid values."""
    stages = ladder.build(plan)
    for env in plan.environments:
        for stage in [None, *range(len(stages))]:
            built = ladder.settings_for(plan, env, stage)
            for name, value in built.headers().items():
                headers.validate(name, value)


def loads_or_refuses(text: str) -> None:
    """A plan that builds every stage with valid values, or one line naming the file."""
    try:
        plan = parse_plan(text, "stages/plan.toml")
    except InputError as exc:
        _assert_one_line(exc, "stages/plan.toml")
        return
    _assert_usable(plan)


@s.FUZZ
@given(mutated(PLAN))
def test_plan_loader(text: str) -> None:
    """A mutated plan loads into a usable plan or is refused in one line naming the file."""
    loads_or_refuses(text)


@s.FUZZ
@given(s.anything)
def test_plan_loader_on_any_text(text: str) -> None:
    """Any text at all: a plan or a one-line refusal."""
    loads_or_refuses(text)


def test_non_ascii_report_uri_is_refused_at_load() -> None:
    """A csp-report-uri holding a non-ASCII character is refused when the plan loads, in
    one line naming the file and the key (it could never be sent in a header)."""
    text = tomli_w.dumps(PLAN).replace("https://csp.", "https://\u0080csp.")
    with pytest.raises(InputError, match=r"^stages/plan\.toml: policy\.csp-report-uri: "):
        parse_plan(text, "stages/plan.toml")


def _base_plan() -> Plan:
    return parse_plan(tomli_w.dumps(PLAN), "stages/plan.toml")


def _stage_files() -> list[dict[str, Any]]:
    """Real stage files, as rollout writes them, for each stage of each environment."""
    plan = _base_plan()
    return [
        settings.dumps(ladder.settings_for(plan, env, stage, updated="2026-01-01T00:00:00Z"))
        for env in plan.environments
        for stage in [None, *range(len(ladder.build(plan)))]
    ]


STAGE_FILES = _stage_files()


@pytest.mark.parametrize("index", [0, 1, 5, len(STAGE_FILES) - 1])
@s.FUZZ_SHARE
@given(data=st.data())
def test_stage_file_reader(index: int, data: st.DataObject) -> None:
    """A mutated stage file is read and checked against the plan, or refused in one line
    naming the file; what is accepted holds only values its grammar accepts."""
    text = data.draw(mutated(STAGE_FILES[index]))
    plan = _base_plan()
    source = "stages/staging.toml"
    try:
        current = settings.loads(text.encode("utf-8", "surrogatepass"), source)
    except InputError as exc:
        _assert_one_line(exc, source)
        return
    env = plan.environments.get(current.environment) or plan.environment("staging")
    try:
        checked = stagefile.check(plan, env, current, plan.folder / f"{env.name}.toml")
    except InputError as exc:
        _assert_one_line(exc, str(plan.folder))
        return
    for name, value in checked.headers().items():
        headers.validate(name, value)


@s.FUZZ
@given(st.binary(max_size=300))
def test_stage_file_reader_on_any_bytes(data: bytes) -> None:
    """Any bytes at all: a stage file or a one-line refusal naming the file."""
    try:
        settings.loads(data, "stages/staging.toml")
    except InputError as exc:
        _assert_one_line(exc, "stages/staging.toml")


def test_the_seeds_are_accepted() -> None:
    """The unmutated plan and stage files load (so mutations start from valid documents)."""
    plan = _base_plan()
    _assert_usable(plan)
    for doc in STAGE_FILES:
        current = settings.loads(tomli_w.dumps(doc), "stages/x.toml")
        stagefile.check(plan, plan.environment(current.environment), current, plan.folder / "x")
