"""The stage-file reader that the middlewares import."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rollout import settings
from rollout.errors import SettingsError

GOOD = """\
environment = "staging"
stage = 3
name = "hsts-1d"
updated = "2026-11-21T23:59:00Z"

[app]
"strict-transport-security" = "max-age=86400"
"content-security-policy-report-only" = "default-src 'self'"

[edge]
"x-content-type-options" = "nosniff"
"""


def test_reads_stage_and_headers_by_owner() -> None:
    """A well-formed file yields the stage, its name and the headers split by owner."""
    s = settings.loads(GOOD, "stages/staging.toml")
    assert (s.environment, s.stage, s.name, s.label) == ("staging", 3, "hsts-1d", "3")
    assert s.app == {
        "strict-transport-security": "max-age=86400",
        "content-security-policy-report-only": "default-src 'self'",
    }
    assert s.edge == {"x-content-type-options": "nosniff"}
    assert s.headers()["x-content-type-options"] == "nosniff"


def test_off_stage() -> None:
    """`stage = "off"` is stage None, labelled off."""
    s = settings.loads('environment = "p"\nstage = "off"\n', "p.toml")
    assert s.stage is None and s.label == "off" and s.name == "off" and not s.app


def test_missing_file_means_off(tmp_path: Path) -> None:
    """A stage file that does not exist yet reads as None (stage off)."""
    assert settings.load(tmp_path / "production.toml") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stage = 1\n", "f.toml: environment: missing or not a string"),
        ('environment = "s"\nstage = -1\n', 'f.toml: stage: -1 is not a stage number or "off"'),
        ('environment = "s"\nstage = true\n', 'f.toml: stage: True is not a stage number or "off"'),
        ('environment = "s"\nstage = "3"\n', "f.toml: stage: '3' is not a stage number or \"off\""),
        ('environment = "s"\nstage = 1\nname = ""\n', "f.toml: name: missing or not a string"),
        (
            'environment = "s"\nstage = 1\nname = "x"\ncolour = 1\n',
            "f.toml: colour: unknown key; this file is written by rollout, not by hand",
        ),
        (
            'environment = "s"\nstage = 1\nname = "x"\napp = 3\n',
            "f.toml: app: must be a table of header names to values",
        ),
        (
            'environment = "s"\nstage = 1\nname = "x"\n[app]\n"X-Frame" = "DENY"\n',
            "f.toml: app.X-Frame: not a lower-case header name",
        ),
        (
            'environment = "s"\nstage = 1\nname = "x"\n[app]\n"x-a" = 1\n',
            "f.toml: app.x-a: value must be a string",
        ),
        (
            'environment = "s"\nstage = 1\nname = "x"\n[app]\n"x-a" = "a\\r\\nSet-Cookie: x"\n',
            "f.toml: app.x-a: 'a\\r\\nSet-Cookie: x' has control, non-ASCII or surrounding "
            "space characters",
        ),
        (
            'environment = "s"\nstage = 1\nname = "x"\n[app]\n"x-a" = "caf\\u00e9"\n',
            "f.toml: app.x-a: 'café' has control, non-ASCII or surrounding space characters",
        ),
        (
            'environment = "s"\nstage = 1\nname = "x"\n[app]\n"x-a" = "1"\n[edge]\n"x-a" = "1"\n',
            "f.toml: edge.x-a: also in [app]; each header has exactly one owner",
        ),
    ],
)
def test_refusals_name_file_and_key(text: str, message: str) -> None:
    """Each hand-edited mistake is refused with one line naming the file and key."""
    with pytest.raises(SettingsError) as exc:
        settings.loads(text, "f.toml")
    assert str(exc.value) == message


def test_invalid_toml_is_refused() -> None:
    """A file that is not TOML is refused, naming the file."""
    with pytest.raises(SettingsError, match=r"^f\.toml: not valid TOML: "):
        settings.loads("stage = = 3", "f.toml")


def test_dumps_round_trips() -> None:
    """What dumps produces, serialised with tomli_w, reads back identically."""
    import tomli_w

    s = settings.loads(GOOD, "x")
    assert settings.loads(tomli_w.dumps(settings.dumps(s)), "x") == s


def test_reader_imports_nothing_heavy() -> None:
    """Importing the reader, as every middleware does, loads no pydantic, aiohttp, httpx, click."""
    code = (
        "import sys, rollout.settings\n"
        "heavy = {'pydantic', 'aiohttp', 'httpx', 'click', 'tomli_w'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_non_utf8_bytes_are_refused() -> None:
    """A stage file with bytes that are not UTF-8 is refused naming the file, not a crash."""
    data = b'environment = "s"\nstage = 0\nname = "x"\n[app]\n"x-frame-options" = "DENY\xff"\n'
    with pytest.raises(SettingsError) as exc:
        settings.loads(data, "f.toml")
    assert str(exc.value) == "f.toml: not UTF-8 (byte 71): invalid start byte"


@pytest.mark.parametrize(
    ("key", "toml"),
    [("app.x-frame-options", '"x-frame-options" = "DENY\\n"'), ("app.x-a", '"x-a" = "1\\n"')],
)
def test_trailing_newline_in_a_value_is_refused(key: str, toml: str) -> None:
    """A value ending in a newline never reaches a middleware (a `$` would let it through)."""
    text = f'environment = "s"\nstage = 0\nname = "x"\n[app]\n{toml}\n'
    with pytest.raises(SettingsError, match=rf"^f\.toml: {re.escape(key)}: "):
        settings.loads(text, "f.toml")


def test_header_name_with_trailing_newline_is_refused() -> None:
    """A header name ending in a newline is not a lower-case token."""
    text = 'environment = "s"\nstage = 0\nname = "x"\n[app]\n"x-a\\n" = "1"\n'
    with pytest.raises(SettingsError, match="not a lower-case header name"):
        settings.loads(text, "f.toml")
