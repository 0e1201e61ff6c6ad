"""The docs keep up with the code: every command, option and link is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rollout.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").rglob("*.md"))


def all_docs() -> str:
    return "\n".join(p.read_text() for p in DOCS)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_a_section(name: str) -> None:
    """Each command has a heading `rollout NAME ...` somewhere in docs/."""
    heading = "^##? `rollout " + re.escape(name) + r"\b"
    assert re.search(heading, all_docs(), re.MULTILINE), name


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_is_documented(name: str) -> None:
    """Every long option a command takes is mentioned in docs/."""
    command = cli.get_command(None, name)  # type: ignore[arg-type]
    assert command is not None
    text = all_docs()
    for param in command.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt != "--help":
                assert f"`{opt}" in text or f" {opt}" in text, f"{name} {opt}"


def test_readme_and_docs_links_resolve() -> None:
    """Every relative link in README.md and docs/ points at a file that exists."""
    for page in [ROOT / "README.md", *DOCS]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_readme_opens_with_the_two_commands() -> None:
    """The README's first code block holds exactly the main-job and the test commands."""
    text = (ROOT / "README.md").read_text()
    block = text.split("```")[1].splitlines()[1:]
    assert len(block) == 2
    assert "rollout" in block[0] and "pytest" in block[1]
