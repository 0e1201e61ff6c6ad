"""Render safety: --output replaces a file atomically, and no stage renders into a config
that its server would read differently (a `#` name, an Apache `${VAR}`)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import trustme

from rollout import ladder, store
from rollout.errors import SettingsError
from rollout.plan import load_plan
from rollout.render import FORMATS, render
from rollout.render.nginx import render_nginx
from rollout.settings import StageSettings, dumps
from tests.conftest import PLAN, Result
from tests.integration.rollout_itest import (
    HOST,
    NGINX_CONF,
    SUBDOMAIN,
    Nginx,
    apache_modules,
    find_apache,
    find_nginx,
)

ROOT = Path(__file__).resolve().parents[2]
OLD = b'# the live snippet\nadd_header Strict-Transport-Security "max-age=86400" always;\n'
Run = Callable[..., Result]


def hand_edit(plan_path: Path, env: str = "production", stage: int = 2, **edge: str) -> Path:
    """Write env's stage file for stage, then add edge headers to it as a hand edit would."""
    plan = load_plan(plan_path)
    store.write_settings(plan, ladder.settings_for(plan, env, stage))
    path = store.settings_path(plan, env)
    current = store.read_settings(plan, env)
    assert current is not None
    doc: dict[str, Any] = dumps(current)
    doc["edge"].update(edge)
    path.write_text(tomli_w.dumps(doc))
    return path


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    """Files in folder other than keep (a temp file left behind would show here)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --- item 10: --output --------------------------------------------------------------


def test_output_replaces_the_file(write_plan: Callable[..., Path], rollout: Run) -> None:
    """A successful render replaces FILE with exactly what stdout would show; no temp left."""
    plan = write_plan()
    target = plan.parent / "snippets" / "rollout-headers.conf"
    target.parent.mkdir()
    target.write_bytes(OLD)
    printed = rollout("render", "production", "--format", "nginx", "--plan", str(plan))
    result = rollout(
        "render", "production", "--format", "nginx", "--output", str(target), "--plan", str(plan)
    )
    assert result.code == 0, result.err
    assert result.out == ""
    assert result.err == f"rollout: wrote {target}: production, stage off\n"
    assert target.read_text() == printed.out
    assert leftovers(target.parent, {target.name}) == []


def test_output_keeps_mode_and_follows_a_symlink(
    write_plan: Callable[..., Path], rollout: Run
) -> None:
    """The new file keeps the old one's mode; a symlink's target is replaced, as `>` would."""
    plan = write_plan()
    real = plan.parent / "real.conf"
    real.write_bytes(OLD)
    real.chmod(0o640)
    link = plan.parent / "link.conf"
    link.symlink_to(real.name)
    result = rollout(
        "render", "production", "--format", "apache", "--output", str(link), "--plan", str(plan)
    )
    assert result.code == 0, result.err
    assert link.is_symlink() and "Header always set" in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_output_creates_a_missing_file_readable(
    write_plan: Callable[..., Path], rollout: Run
) -> None:
    """A new FILE gets the mode `> FILE` would give it (0666 less the umask), not mkstemp's 0600."""
    plan = write_plan()
    target = plan.parent / "new.conf"
    umask = os.umask(0o022)
    try:
        result = rollout("render", "production", "--output", str(target), "--plan", str(plan))
    finally:
        os.umask(umask)
    assert result.code == 0, result.err
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


BAD_PLAN = PLAN.replace('edge = ["strict-transport-security"', 'edge = ["strict-transport-sec"')


@pytest.mark.parametrize(
    "case",
    ["bad-plan", "hash-name", "apache-dollar-brace", "unknown-env", "bad-stage", "stage-past"],
)
def test_a_refused_render_leaves_the_old_file(
    case: str, write_plan: Callable[..., Path], rollout: Run
) -> None:
    """Every refusal exits 2 with one line naming file and key, and FILE stays byte for byte."""
    plan = write_plan(BAD_PLAN if case == "bad-plan" else PLAN)
    target = plan.parent / "rollout-headers.conf"
    target.write_bytes(OLD)
    env, fmt, extra = "production", "nginx", []
    if case == "hash-name":
        hand_edit(plan, **{"#x": "1"})
    elif case == "apache-dollar-brace":
        hand_edit(plan, **{"x-cdn": "https://cdn.test/${HOME}"})
        fmt = "apache"
    elif case == "unknown-env":
        env = "qa"
    elif case == "bad-stage":
        extra = ["--stage", "top"]
    elif case == "stage-past":
        extra = ["--stage", "42"]
    before = set(os.listdir(plan.parent))
    result = rollout(
        "render", env, "--format", fmt, *extra, "--output", str(target), "--plan", str(plan)
    )
    assert result.code == 2, result.err
    assert result.out == "" and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert target.read_bytes() == OLD
    assert set(os.listdir(plan.parent)) == before
    expected = {
        "bad-plan": f"{plan}: environments.production.edge",
        "hash-name": f"{plan.parent / 'production.toml'}: edge.#x: ",
        "apache-dollar-brace": f"{plan.parent / 'production.toml'}: edge.x-cdn: ",
        "unknown-env": "qa",
        "bad-stage": "--stage",
        "stage-past": "there is no stage 42",
    }[case]
    assert expected in result.err


def test_a_failed_write_removes_the_temp_file(
    write_plan: Callable[..., Path], rollout: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the rename fails the old FILE stays, the temp file goes, and it is one line, exit 2."""
    plan = write_plan()
    target = plan.parent / "rollout-headers.conf"
    target.write_bytes(OLD)
    before = set(os.listdir(plan.parent))

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    result = rollout("render", "production", "--output", str(target), "--plan", str(plan))
    assert result.code == 2
    assert result.err == f"rollout: --output: {target}: cannot write: No space left on device\n"
    assert target.read_bytes() == OLD
    assert set(os.listdir(plan.parent)) == before


def test_output_into_a_missing_folder_is_exit_2(
    write_plan: Callable[..., Path], rollout: Run
) -> None:
    """--output into a folder that does not exist is one line and exit 2, nothing created."""
    plan = write_plan()
    target = plan.parent / "nope" / "rollout-headers.conf"
    result = rollout("render", "production", "--output", str(target), "--plan", str(plan))
    assert result.code == 2
    assert result.err == (
        f"rollout: --output: {target}: the folder {target.parent} does not exist\n"
    )
    assert not target.parent.exists()


def test_output_onto_a_folder_is_exit_2(write_plan: Callable[..., Path], rollout: Run) -> None:
    """--output naming a folder is refused in one line; the folder is untouched."""
    plan = write_plan()
    result = rollout("render", "production", "--output", str(plan.parent), "--plan", str(plan))
    assert result.code == 2 and result.err.count("\n") == 1
    assert "--output" in result.err and "directory" in result.err


def test_json_names_the_output(write_plan: Callable[..., Path], rollout: Run) -> None:
    """With --json the object says where the text went."""
    plan = write_plan()
    target = plan.parent / "h.txt"
    result = rollout("render", "production", "--output", str(target), "--json", "--plan", str(plan))
    assert result.code == 0, result.err
    assert f'"output": "{target}"' in result.out
    assert target.read_text().startswith("# production, stage off")


def test_no_doc_installs_a_render_through_the_shell() -> None:
    """No doc tells users to `rollout render ... > FILE` or `>> FILE`; they use --output."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        for line in page.read_text().splitlines():
            assert not re.search(r"rollout render\b[^|&;#]*\s>>?\s", line), f"{page}: {line}"


# --- item 7: names and values that config languages would misread --------------------


def test_plan_refuses_a_hash_edge_name(stages: Path, rollout: Run) -> None:
    """A plan naming `#x` at the edge is refused before anything renders."""
    plan = stages / "plan.toml"
    plan.write_text(PLAN.replace('"x-content-type-options"]', '"#x"]'))
    result = rollout("render", "production", "--format", "nginx", "--plan", str(plan))
    assert result.code == 2 and result.out == ""
    assert f"{plan}: environments.production.edge: '#x' is not a header the plan sends" in (
        result.err
    )


def test_stage_file_with_a_non_token_name_is_refused(
    write_plan: Callable[..., Path], rollout: Run
) -> None:
    """A hand-edited name with a character no header name may hold is refused on read."""
    plan = write_plan()
    path = hand_edit(plan, **{"x{y": "1"})
    result = rollout("render", "production", "--format", "nginx", "--plan", str(plan))
    assert result.code == 2 and result.out == ""
    assert f"{path}: edge.x{{y: not a lower-case header name" in result.err


@pytest.mark.parametrize("fmt", FORMATS)
def test_stage_file_with_a_hash_name_is_refused_in_every_format(
    fmt: str, write_plan: Callable[..., Path], rollout: Run
) -> None:
    """`#x` is an RFC 9110 token, but nginx reads it as a comment: no format renders it."""
    plan = write_plan()
    path = hand_edit(plan, **{"#x": "1"})
    result = rollout("render", "production", "--format", fmt, "--plan", str(plan))
    assert result.code == 2 and result.out == ""
    assert result.err.startswith(f"rollout: {path}: edge.#x: '#x' is not a header name")


def test_the_renderers_refuse_it_when_called_directly() -> None:
    """Apps calling the renderer functions get the same refusal."""
    stage = StageSettings("p", 1, "hsts-5m", {}, {"#x": "1"})
    with pytest.raises(SettingsError, match=r"p\.toml: edge\.#x: "):
        render_nginx(stage)
    with pytest.raises(SettingsError, match=r"edge\.#x: "):
        render(stage, "headers")


def test_apache_refuses_dollar_brace_from_the_plan(stages: Path, rollout: Run) -> None:
    """A plan value holding `${` is refused for Apache naming the plan's key; nginx escapes it."""
    plan = stages / "plan.toml"
    text = PLAN.replace("default-src 'self';", "default-src 'self' https://cdn.test/${x};")
    text = text.replace(
        '"x-content-type-options"]', '"x-content-type-options", "content-security-policy"]'
    )
    plan.write_text(text)
    apache = rollout(
        "render", "production", "--format", "apache", "--stage", "0", "--plan", str(plan)
    )
    assert apache.code == 2 and apache.out == ""
    assert apache.err.startswith(f"rollout: {plan}: policy.content-security-policy: ")
    assert "'${'" in apache.err
    nginx = rollout(
        "render", "production", "--format", "nginx", "--stage", "0", "--plan", str(plan)
    )
    assert nginx.code == 0, nginx.err
    assert "https://cdn.test/${rollout_dollar}{x}" in nginx.out


def test_apache_keeps_a_lone_dollar() -> None:
    """A `$` not followed by `{` means nothing to httpd's config reader and stays as it is."""
    text = render(StageSettings("p", 1, "n", {}, {"x-cdn": "a$b $"}), "apache")
    assert 'Header always set X-Cdn "a$b $"' in text


# --- the real servers' parsers ----------------------------------------------------


ODD = {
    "strict-transport-security": "max-age=300",
    "x-quoted": "say \"hi\" \\ then 'self' # not a comment; {braces}",
    "x-dollar": "https://cdn.example.test/$path?a=${x};b={x}",
    "x-trailing-backslash": "ends with \\",
    "x-percent": "100% %{HOME}e",
}


def nginx_t(tmp_path: Path, snippet: str, http_extra: str = "") -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the integration tests' server config with snippet included."""
    binary = find_nginx()
    cert = trustme.CA().issue_cert(HOST, SUBDOMAIN)
    nginx = Nginx(binary, tmp_path, cert, app_port=9)  # writes the certificate and temp dirs
    (tmp_path / "rollout-headers.conf").write_text(snippet)
    conf = NGINX_CONF.format(
        user="",
        tmp=tmp_path,
        http_port=nginx.ports.http,
        https_port=nginx.ports.https,
        app_port=nginx.app_port,
        host=HOST,
        subdomain=SUBDOMAIN,
        location_extra="",
        http_extra=http_extra,
    )
    (tmp_path / "nginx.conf").write_text(conf)
    globals_ = f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log warn;"
    return subprocess.run(
        [
            binary,
            "-t",
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-g",
            globals_,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.integration
@pytest.mark.nginx
def test_nginx_t_accepts_every_rendered_stage(
    write_plan: Callable[..., Path], tmp_path: Path
) -> None:
    """Every stage of the production ladder (edge owns HSTS and nosniff) passes `nginx -t`."""
    plan = load_plan(write_plan())
    for number in [None, *range(len(ladder.build(plan)))]:
        snippet = render(ladder.settings_for(plan, "production", number), "nginx")
        folder = tmp_path / f"stage-{number}"
        folder.mkdir()
        result = nginx_t(folder, snippet)
        assert result.returncode == 0, result.stderr


@pytest.mark.integration
@pytest.mark.nginx
def test_nginx_t_accepts_odd_values(tmp_path: Path) -> None:
    """Quotes, `#`, braces, `${`, `%` and a trailing backslash parse as one value each."""
    snippet = render(StageSettings("p", 1, "hsts-5m", {}, ODD), "nginx")
    geo = next(line for line in snippet.splitlines() if "geo $" in line).lstrip("# ")
    result = nginx_t(tmp_path, snippet, http_extra=geo)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


@pytest.mark.integration
@pytest.mark.nginx
def test_nginx_t_rejects_what_a_hash_name_used_to_render(tmp_path: Path) -> None:
    """What the renderer used to write for `#x` breaks nginx: why it is refused now."""
    good = render(StageSettings("p", 1, "hsts-5m", {}, {"x-a": "1"}), "nginx")
    old = good + 'proxy_hide_header #x;\nadd_header #x "1" always;\n'
    result = nginx_t(tmp_path, old)
    assert result.returncode != 0
    assert "emerg" in result.stderr


def apache_t(tmp_path: Path, snippet: str) -> subprocess.CompletedProcess[str]:
    """`apache2 -t` on a minimal server config that includes snippet in a VirtualHost,
    as the Apache guide does."""
    binary, modules = find_apache()
    (tmp_path / "rollout-headers.conf").write_text(snippet)
    (tmp_path / "httpd.conf").write_text(
        f"ServerRoot {tmp_path}\nServerName {HOST}\nPidFile {tmp_path}/httpd.pid\n"
        f"ErrorLog {tmp_path}/error.log\nListen 127.0.0.1:8\n"
        + apache_modules(modules, ["headers"])
        + f"<VirtualHost *:8>\n  Include {tmp_path}/rollout-headers.conf\n</VirtualHost>\n"
    )
    return subprocess.run(
        [binary, "-t", "-f", str(tmp_path / "httpd.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")},
    )


@pytest.mark.integration
@pytest.mark.apache
def test_apache_t_accepts_every_rendered_stage(
    write_plan: Callable[..., Path], tmp_path: Path
) -> None:
    """Every stage of the production ladder (edge owns HSTS and nosniff) passes `apache2 -t`."""
    plan = load_plan(write_plan())
    for number in [None, *range(len(ladder.build(plan)))]:
        snippet = render(ladder.settings_for(plan, "production", number), "apache")
        folder = tmp_path / f"stage-{number}"
        folder.mkdir()
        result = apache_t(folder, snippet)
        assert result.returncode == 0, result.stderr
        assert "Syntax OK" in result.stderr + result.stdout


@pytest.mark.integration
@pytest.mark.apache
def test_apache_t_accepts_odd_values(tmp_path: Path) -> None:
    """httpd's own config test parses the rendered snippet, odd values and all."""
    odd = {k: v for k, v in ODD.items() if "${" not in v}
    result = apache_t(tmp_path, render(StageSettings("p", 1, "hsts-5m", {}, odd), "apache"))
    assert result.returncode == 0, result.stderr
    assert "Syntax OK" in result.stderr + result.stdout


@pytest.mark.integration
@pytest.mark.apache
def test_apache_t_substitutes_what_dollar_brace_used_to_render(tmp_path: Path) -> None:
    """httpd reads `${NAME}` in the value the renderer used to write as a variable (and
    warns it is undefined): why such a value is refused now, in every way it is quoted."""
    value = "https://cdn.test/${ROLLOUT_NOT_DEFINED}"
    escaped = value.replace("\\", "\\\\").replace("%", "%%")
    old = render(StageSettings("p", 1, "hsts-5m", {}, {"x-a": "1"}), "apache")
    old += f'Header always set X-Cdn "{escaped}"\n'
    result = apache_t(tmp_path, old)
    assert "${ROLLOUT_NOT_DEFINED} is not defined" in result.stderr, result.stderr
    with pytest.raises(SettingsError, match=r"edge\.x-cdn: .*'\$\{'"):
        render(StageSettings("p", 1, "hsts-5m", {}, {"x-cdn": value}), "apache")


@pytest.mark.parametrize("fmt", ["headers", "json", "nginx", "apache", "django"])
@pytest.mark.parametrize("owner", ["app", "edge"])
@pytest.mark.parametrize("bad", ["\r\nX-Evil: 1", "\nX-Evil: 1", "\x00", "caf\u00e9"])
def test_render_called_directly_refuses_a_value_that_could_split_headers(
    fmt: str, owner: str, bad: str
) -> None:
    """`rollout.render.render` on a StageSettings built in code (never read from a file or
    a plan) refuses a value with a line break, NUL or non-ASCII in every format, naming the
    key, instead of writing a second header into the configuration."""
    table = {"x-frame-options": f"DENY{bad}"}
    settings = StageSettings(
        "p", 1, "hsts-5m", table if owner == "app" else {}, table if owner == "edge" else {}
    )
    with pytest.raises(SettingsError, match=rf"^p\.toml: {owner}\.x-frame-options: the value has"):
        render(settings, fmt)
