"""The docs keep up with the code: every command, option and link is documented."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from rollout.checks import FINDINGS
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


# --- The docs site (mkdocs.yml): every command, option, finding id and page -------------


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    """Every command under the lazy group, nested groups included, as ("rollout x y", cmd)."""
    ctx = click.Context(command, info_name=" ".join(path) or "rollout")
    yield " ".join(("rollout", *path)), command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            yield from walk(sub, (*path, name))


def long_options(command: click.Command) -> list[str]:
    return [
        opt
        for param in command.params
        for opt in getattr(param, "opts", [])
        if opt.startswith("--") and opt != "--help"
    ]


ALL_COMMANDS = list(walk(cli))


@pytest.mark.parametrize(("name", "command"), ALL_COMMANDS, ids=[n for n, _ in ALL_COMMANDS])
def test_every_option_of_every_command_is_in_the_docs(name: str, command: click.Command) -> None:
    """The group's own options and every nested command's are written up in docs/ too."""
    text = all_docs()
    if name != "rollout":
        assert f"`{name}" in text, f"{name} has no section in docs/"
    missing = [o for o in long_options(command) if f"`{o}" not in text and f" {o}" not in text]
    assert missing == [], f"{name}: {missing}"


def generated_reference() -> str:
    """The command reference as the site renders it, generated from the click commands."""
    if importlib.util.find_spec("mkdocs_click") is None:
        reason = "mkdocs-click is not installed (pip install -e '.[docs]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)
    from mkdocs_click._docs import make_command_docs

    return "\n".join(make_command_docs(prog_name="rollout", command=cli, depth=1, style="plain"))


def test_the_generated_reference_lists_every_command_and_option() -> None:
    """mkdocs-click walks the lazy group: every command gets a section with all its options."""
    reference = generated_reference()
    assert "::: mkdocs-click" in (ROOT / "docs" / "reference" / "commands.md").read_text()
    for name, command in ALL_COMMANDS:
        leaf = name.split()[-1]
        assert re.search(rf"^#+ {re.escape(leaf)}$", reference, re.MULTILINE), name
        for opt in long_options(command):
            assert opt in reference, f"{name} {opt}"


def test_every_finding_id_is_documented() -> None:
    """Each id of rollout.checks.FINDINGS has a row in docs/findings.md, which the site lists."""
    findings = (ROOT / "docs" / "findings.md").read_text()
    assert [fid for fid in FINDINGS if f"`{fid}`" not in findings] == []
    assert "findings.md" in nav_pages()


def nav_pages() -> list[str]:
    """Every page the site's navigation lists, in order."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml names a Python function for the slugs; the nav does not need it.
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)

    def pages(node: object) -> Iterator[str]:
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from pages(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from pages(value)

    return list(pages(config["nav"]))


def test_the_site_lists_every_page_and_only_pages_that_exist() -> None:
    """A page added under docs/ must get a place in mkdocs.yml's nav, and the nav none that
    is gone (mkdocs --strict catches the second, only in CI)."""
    listed = nav_pages()
    on_disk = sorted(str(p.relative_to(ROOT / "docs")) for p in DOCS)
    assert sorted(set(on_disk) - set(listed)) == []
    assert sorted(set(listed) - set(on_disk)) == []
    assert len(listed) == len(set(listed))


@pytest.mark.parametrize("path", sorted((ROOT / "examples").rglob("*.*")), ids=str)
def test_every_example_file_is_shown_in_the_docs(path: Path) -> None:
    """The recipes and trap configs are included verbatim by some page, so none goes unread."""
    relative = str(path.relative_to(ROOT))
    assert f'--8<-- "{relative}"' in all_docs(), relative
