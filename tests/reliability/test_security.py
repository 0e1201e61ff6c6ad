"""The tool's own security, tested where the other suites leave a gap.

What already proves the rest (docs/reliability.md maps each promise to its tests):
certificates checked by default (tests/reliability/test_probe_faults.py, tests/test_probe.py),
no CR/LF/NUL through the plan (tests/test_bad_input.py, tests/fuzz), the history and lock
never followed through a symlink (tests/test_history.py, tests/test_lockfile.py), temp names
planted in advance never written (tests/test_file_safety.py). Here: no injection through a
stage file into any renderer, none through the library writer, `apply` without a shell, a
stage file or history symlink never written through by the CLI, and the flags every file
rollout creates is opened with.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rollout import ladder, lockfile, store
from rollout.errors import InputError
from rollout.plan import load_plan
from rollout.render import FORMATS
from rollout.settings import StageSettings
from tests import transitions_support as ts
from tests.conftest import Result

AT0 = 'environment = "staging"\nstage = 0\nname = "hsts-30s"\n'
HSTS = '"strict-transport-security" = "max-age=30"\n'
INJECTIONS = ["\\r\\nX-Evil: 1", "\\nX-Evil: 1", "\\u0000", "\\u007f", "\\u2028X-Evil: 1"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("bad", INJECTIONS, ids=["crlf", "lf", "nul", "del", "u2028"])
def test_no_renderer_passes_on_a_value_that_could_split_headers(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], fmt: str, bad: str
) -> None:
    """A stage file whose value smuggles a line break or control character is refused by
    `render` in every format, in one line, and `--output` leaves the old file as it was."""
    plan = write_plan()
    stage = plan.parent / "staging.toml"
    stage.write_text(AT0 + "[app]\n" + HSTS + f'"x-frame-options" = "DENY{bad}"\n')
    out = plan.parent / "rendered.conf"
    out.write_text("# the live snippet\n")
    result = rollout(
        "render", "staging", "--format", fmt, "--output", str(out), "--plan", str(plan)
    )
    assert result.code == 2, result
    assert result.err.startswith(f"rollout: {stage}: app.x-frame-options: "), result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "X-Evil" not in result.out
    assert out.read_text() == "# the live snippet\n"


@pytest.mark.parametrize("owner", ["app", "edge"])
@pytest.mark.parametrize("bad", ["\r", "\n", "\r\n", "\x00", "\x7f", "\x1b[31m", "\u2028"])
def test_library_writer_never_writes_a_header_splitting_value(
    write_plan: Callable[..., Path], owner: str, bad: str
) -> None:
    """store.write_settings, called directly, refuses a value with any control character
    or line separator, for either owner, and leaves no file behind."""
    plan = load_plan(write_plan())
    env = "staging" if owner == "app" else "production"  # production's edge owns nosniff
    good = ladder.settings_for(plan, env, 0)
    table = dict(getattr(good, owner))
    table["x-content-type-options"] = f"nosniff{bad}X-Evil: 1"
    hostile = StageSettings(
        env,
        0,
        good.name,
        app=table if owner == "app" else good.app,
        edge=table if owner == "edge" else good.edge,
    )
    with pytest.raises(InputError):
        store.write_settings(plan, hostile)
    assert not store.settings_path(plan, env).exists()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ts.Site]:
    """The staging environment on loopback (uvicorn + our middleware behind a TLS edge)."""
    running = ts.start_site(tmp_path_factory.mktemp("security") / "stages")
    try:
        yield running
    finally:
        running.stop()


RECORD_ARGV = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
HOSTILE = ["$(touch pwned1)", "; touch pwned2", "`touch pwned3`", "| touch pwned4", "&&", "*"]


@pytest.mark.integration
@pytest.mark.parametrize("form", ["list", "string"])
def test_apply_runs_without_a_shell(site: ts.Site, form: str) -> None:
    """apply's arguments reach the command exactly as written: $(...), ;, backticks, pipes
    and globs are text, never run, whether apply is a list or a command string."""
    site.reset()
    record = site.folder / "argv.json"
    argv = [sys.executable, "-c", RECORD_ARGV, str(record), *HOSTILE]
    if form == "list":
        apply = json.dumps(argv)
    else:
        apply = json.dumps(" ".join("'" + a.replace("'", "'\"'\"'") + "'" for a in argv))
    text = site.plan_path.read_text()
    site.plan_path.write_text(text.replace('soak = "0s"\n', f'soak = "0s"\napply = {apply}\n'))
    try:
        ran = ts.run(site.plan_path, "advance", "staging", "--settle", "10")
        assert ran.code == 0, str(ran)
        assert json.loads(record.read_text()) == HOSTILE
        for folder in (site.folder, ts.ROOT, Path.cwd()):
            assert not any(folder.glob("pwned*")), folder
    finally:
        site.plan_path.write_text(text)
        record.unlink(missing_ok=True)


@pytest.mark.integration
def test_cli_never_writes_through_planted_symlinks(site: ts.Site, tmp_path: Path) -> None:
    """A stage file and a history planted as symlinks to files outside the stages folder:
    advance replaces the stage file's link (never its target), refuses to append through
    the history's link in one line, and both victims stay as they were."""
    site.reset()
    stage_victim, history_victim = tmp_path / "stage-victim", tmp_path / "history-victim"
    stage_victim.write_text("precious\n")
    history_victim.write_text("precious\n")
    site.stage_file().symlink_to(stage_victim)  # a missing-looking file: not TOML, refused
    ran = ts.run(site.plan_path, "advance", "staging", "--settle", "10")
    assert ran.code == 2 and "Traceback" not in ran.err, str(ran)
    assert ran.err.count("\n") == 1, str(ran)
    site.stage_file().unlink()
    site.history_file().symlink_to(history_victim)
    ran = ts.run(site.plan_path, "advance", "staging", "--settle", "10")
    assert ran.code == 2 and ran.err.count("\n") == 1, str(ran)
    assert ran.err.startswith(f"rollout: {site.history_file()}: cannot "), str(ran)
    assert stage_victim.read_text() == "precious\n"
    assert history_victim.read_text() == "precious\n"
    site.history_file().unlink()
    # A stage file that is a symlink to a real stage file is read, then replaced by a
    # regular file: the link's target is never written.
    plan = site.plan
    real = tmp_path / "real-staging.toml"
    store.write_settings(plan, ladder.settings_for(plan, "staging", 0))
    os.replace(site.stage_file(), real)
    site.stage_file().symlink_to(real)
    before = real.read_bytes()
    store.write_settings(plan, ladder.settings_for(plan, "staging", 1))
    assert not site.stage_file().is_symlink()
    assert real.read_bytes() == before


def test_files_rollout_creates_are_exclusive_and_unpredictable(
    write_plan: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage file's temp file is created with O_CREAT|O_EXCL|O_NOFOLLOW under a name
    with 64 random bits, new on every write; the lock file (a fixed name, so that every
    command finds it) is opened with O_NOFOLLOW|O_NONBLOCK and never truncated."""
    plan = load_plan(write_plan())
    opened: list[tuple[str, int]] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], flags: int, *args: int, **kw: int) -> int:
        opened.append((str(path), flags))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", spy)
    for stage in (0, 1, 2):
        store.write_settings(plan, ladder.settings_for(plan, "staging", stage))
    temps = [(p, f) for p, f in opened if p.endswith(".tmp")]
    names = [Path(p).name for p, _ in temps]
    assert len(names) == 3 and len(set(names)) == 3, names
    assert all(re.fullmatch(r"\.staging\.toml\.[0-9a-f]{16}\.tmp", n) for n in names), names
    need = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    assert all(f & need == need for _, f in temps), temps
    locks = [f for p, f in opened if p.endswith("staging.lock")]
    guard = os.O_NOFOLLOW | os.O_NONBLOCK
    assert locks and all(f & guard == guard for f in locks), locks
    assert not any(f & os.O_TRUNC for f in locks)
    assert lockfile.holder(plan.folder / "staging.lock") is None
