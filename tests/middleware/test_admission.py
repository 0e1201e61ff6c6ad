"""What the middlewares refuse in a stage file: torn, ungrammatical, or no stage of any plan."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st
from middleware_support import APP, headers_of, records, write_stage_file
from middleware_support import page_app as _app

from rollout import ladder, settings, store
from rollout.durations import format_duration
from rollout.errors import SettingsError
from rollout.middleware.admission import INCOMPLETE, admit
from rollout.middleware.asgi import SecurityHeaders
from rollout.plan import parse_plan
from tests.conftest import PLAN

LADDERS = {
    "default+preload": "[ladder]\npreload = true\n",
    "short": "[ladder]\nhsts = [60, 5400, 31536000]\ncsp-enforce-from = 60\n",
    "no-subdomains": "[ladder]\ninclude-subdomains-from = false\n",
}


def written_files(ladder_keys: str) -> list[bytes]:
    """Every stage file rollout would write for both environments of the test plan."""
    plan = parse_plan(PLAN + ladder_keys, "stages/plan.toml")
    out = []
    for env in ("staging", "production"):
        for stage in [None, *range(len(ladder.build(plan)))]:
            s = ladder.settings_for(plan, env, stage, updated="2026-01-01T00:00:00Z")
            out.append(tomli_w.dumps(settings.dumps(s)).encode())
    return out


@pytest.mark.parametrize("ladder_keys", LADDERS.values(), ids=LADDERS.keys())
def test_every_stage_rollout_writes_is_admitted(ladder_keys: str) -> None:
    """No false positive: each stage of these ladders, app- or edge-owned, is served."""
    for data in written_files(ladder_keys):
        assert admit(data, "s.toml") == settings.loads(data)


def test_store_writes_what_the_middleware_admits(write_plan: object, stages: Path) -> None:
    """The file `rollout.store` writes (the real writer) passes, at every stage."""
    plan = parse_plan(PLAN, str(stages / "plan.toml"))
    for stage in [None, *range(len(ladder.build(plan)))]:
        written = store.write_settings(plan, ladder.settings_for(plan, "production", stage))
        data = store.settings_path(plan, "production").read_bytes()
        assert admit(data, "p.toml") == written


@pytest.mark.parametrize("ladder_keys", LADDERS.values(), ids=LADDERS.keys())
def test_no_cut_of_a_written_file_serves_fewer_app_headers(ladder_keys: str) -> None:
    """A file cut at any byte (a rewrite in place, read midway) is refused, or it is whole
    up to its edge-owned headers: its app-owned headers are never a shrunken set."""
    for data in written_files(ladder_keys):
        full = settings.loads(data)
        for cut in range(len(data)):
            try:
                got = admit(data[:cut], "s.toml")
            except SettingsError:
                continue
            assert got.app == full.app and got.stage == full.stage, data[:cut]


AT0 = 'environment = "staging"\nstage = 0\nname = "hsts-30s"\n\n[app]\n'
AT0_HSTS = AT0 + '"strict-transport-security" = "max-age=30"\n'
# (file text, what the one-line reason says)
REFUSED = {
    # The issue as found: a file cut after its [app] line.
    "cut-after-app": (AT0, INCOMPLETE),
    "cut-mid-line": (AT0_HSTS[:-8], INCOMPLETE),
    "no-line-end": (AT0_HSTS + "\n[edge]", INCOMPLETE),
    "edge-not-last": (
        'environment = "staging"\nstage = 0\nname = "hsts-30s"\n\n[edge]\n\n[app]\n'
        '"strict-transport-security" = "max-age=30"\n',
        INCOMPLETE,
    ),
    "empty": ("", "empty (being rewritten in place, or cut short)"),
    # The issue as found: preload at stage 0, and an invalid X-Frame-Options.
    "preload-at-0": (
        AT0 + '"strict-transport-security" = "max-age=31536000; includeSubDomains; preload"\n'
        "\n[edge]\n",
        "app.strict-transport-security: max-age is 31536000, but stage 0 (hsts-30s) sends "
        "max-age=30",
    ),
    "invalid-xfo": (
        AT0_HSTS + '"x-frame-options" = "ALLOWALL"\n\n[edge]\n',
        "app.x-frame-options: ",
    ),
    "preload-at-a-hsts-stage": (
        'environment = "s"\nstage = 6\nname = "hsts-1y"\n[app]\n'
        '"strict-transport-security" = "max-age=31536000; includeSubDomains; preload"\n[edge]\n',
        "has preload, which only the preload stage sends",
    ),
    "preload-stage-without-preload": (
        'environment = "s"\nstage = 7\nname = "preload"\n[app]\n'
        '"strict-transport-security" = "max-age=31536000; includeSubDomains"\n[edge]\n',
        "but stage 7 (preload) sends max-age of at least 31536000, includeSubDomains and preload",
    ),
    "preload-named-stage-0": (
        'environment = "s"\nstage = 0\nname = "preload"\n[app]\n[edge]\n',
        "stage: 0, but the preload stage comes after the top of a ramp",
    ),
    "off-named-stage": (
        'environment = "s"\nstage = "off"\nname = "hsts-30s"\n[app]\n[edge]\n',
        "name: 'hsts-30s', but the stage is off",
    ),
    "numbered-off": (
        'environment = "s"\nstage = 2\nname = "off"\n[app]\n[edge]\n',
        'name: "off", but the stage is 2',
    ),
    "unknown-name": (
        'environment = "s"\nstage = 2\nname = "hsts-3600s"\n[app]\n[edge]\n',
        "name: 'hsts-3600s' is no stage name a ladder gives",
    ),
    "hsts-name-past-any-ramp": (
        'environment = "s"\nstage = 64\nname = "hsts-30s"\n'
        '[app]\n"strict-transport-security" = "max-age=30"\n[edge]\n',
        "stage: 64, but a ramp has at most 64 max-ages",
    ),
    "no-hsts-at-a-stage": (
        AT0 + '"x-frame-options" = "DENY"\n[edge]\n"x-content-type-options" = "nosniff"\n',
        "app.strict-transport-security: missing; stage 0 (hsts-30s) sends HSTS",
    ),
    "app-header-at-off": (
        'environment = "s"\nstage = "off"\nname = "off"\n[app]\n"x-frame-options" = "DENY"\n'
        "[edge]\n",
        "app.x-frame-options: stage off sends no app-owned headers (only max-age=0)",
    ),
    "csp-by-two-owners": (
        AT0_HSTS + '"content-security-policy-report-only" = "default-src \'self\'"\n'
        '[edge]\n"content-security-policy" = "default-src \'self\'"\n',
        "edge.content-security-policy: also app.content-security-policy-report-only",
    ),
    "csp-trailing-semicolon": (
        AT0_HSTS + '"content-security-policy-report-only" = "default-src \'self\';"\n[edge]\n',
        "app.content-security-policy-report-only: ",
    ),
    "feature-policy-syntax": (
        AT0_HSTS + '"permissions-policy" = "geolocation \'none\'"\n[edge]\n',
        "app.permissions-policy: ",
    ),
    "bad-referrer": (
        AT0_HSTS + '"referrer-policy" = "sometimes"\n[edge]\n',
        "app.referrer-policy: ",
    ),
    "bad-edge-value": (
        AT0_HSTS + '[edge]\n"x-content-type-options" = "yes"\n',
        "edge.x-content-type-options: ",
    ),
    "bad-hsts-grammar": (
        AT0 + '"strict-transport-security" = "max-age=30; max-age=30"\n[edge]\n',
        "app.strict-transport-security: ",
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_refused(case: tuple[str, str]) -> None:
    """Each file is refused with one line naming the file and, where there is one, the key."""
    text, reason = case
    with pytest.raises(SettingsError) as caught:
        admit(text.encode(), "stages/staging.toml")
    message = str(caught.value)
    assert message.startswith("stages/staging.toml: ") and "\n" not in message
    assert reason in message


ACCEPTED = {
    "cleared-hsts-at-off": 'environment = "s"\nstage = "off"\nname = "off"\n[app]\n'
    '"strict-transport-security" = "max-age=0"\n[edge]\n',
    "cleared-hsts-at-a-stage": AT0 + '"strict-transport-security" = "max-age=0"\n[edge]\n',
    "edge-owned-hsts-any-value": AT0 + '[edge]\n"strict-transport-security" = "max-age=300"\n',
    "quoted-max-age-and-case": AT0 + '"strict-transport-security" = "Max-Age=\\"30\\""\n[edge]\n',
    "hand-spaced-table": AT0_HSTS + "[ edge ]  # the proxy's\n",
    # An enforcing stage with the plan's next policy sent report-only beside it.
    "enforcing-with-next-policy": AT0_HSTS + '"content-security-policy" = "default-src \'self\'"\n'
    '"content-security-policy-report-only" = "default-src \'none\'"\n[edge]\n',
}


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted(text: str) -> None:
    """What a stage may legitimately hold is served: a cleared HSTS, the edge's lagging one,
    the next CSP beside the enforcing one."""
    admit(text.encode(), "s.toml")


# --- through the middleware ----------------------------------------------------------


def test_file_cut_after_app_keeps_the_last_good_headers(
    stage_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's cut file: every response keeps the last good headers; one error line."""
    middleware = SecurityHeaders(_app, stage_file, check_interval=0)
    data = stage_file.read_bytes()
    with caplog.at_level(logging.INFO, logger="rollout.middleware"):
        stage_file.write_bytes(data[: data.index(b"[app]\n") + 6])
        for _ in range(3):
            assert headers_of(middleware)[b"x-frame-options"] == b"DENY"
    assert records(caplog, logging.ERROR) == [
        f"{stage_file}: {INCOMPLETE}; keeping the last good settings"
    ]


def test_rewrite_in_place_never_serves_fewer_headers(stage_file: Path) -> None:
    """A writer rewriting the file in place a few bytes at a time, while requests run:
    every response carries all five app-owned headers, the old values or the new."""
    middleware = SecurityHeaders(_app, stage_file, check_interval=0)
    new = {**APP, "x-frame-options": "SAMEORIGIN"}
    texts = [stage_file.read_bytes()]
    write_stage_file(stage_file, app=new)
    texts.append(stage_file.read_bytes())
    write_stage_file(stage_file)
    done = threading.Event()

    def writer() -> None:
        for i in range(40):
            with stage_file.open("wb", buffering=0) as f:  # truncates, then writes
                text = texts[i % 2]
                for start in range(0, len(text), 16):
                    f.write(text[start : start + 16])
                    time.sleep(0.0005)  # let requests in between the pieces
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = set()
    while not done.is_set():
        got = headers_of(middleware)
        assert len(got) == len(APP), got
        seen.add(got[b"x-frame-options"])
    thread.join()
    assert seen == {b"DENY", b"SAMEORIGIN"}


def test_another_environments_file_is_refused(
    stage_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file of another environment (a wrong copy or symlink) keeps the last good one."""
    middleware = SecurityHeaders(_app, stage_file, check_interval=0)
    text = stage_file.read_text().replace('environment = "staging"', 'environment = "prod"')
    stage_file.write_text(text)
    with caplog.at_level(logging.ERROR, logger="rollout.middleware"):
        assert headers_of(middleware)[b"strict-transport-security"] == b"max-age=300"
    [error] = records(caplog, logging.ERROR)
    assert "environment: 'prod', but this process serves 'staging'" in error


def test_symlinks(stage_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A symlink to a good file is followed; one to nothing, or a loop, keeps the last good
    headers (it is no deletion) with one error each."""
    middleware = SecurityHeaders(_app, stage_file, check_interval=0)
    other = write_stage_file(tmp_path / "other.toml", app={**APP, "x-frame-options": "SAMEORIGIN"})
    link = tmp_path / "link.tmp"
    with caplog.at_level(logging.WARNING, logger="rollout.middleware"):
        for target in (other, tmp_path / "missing.toml", link):
            link.unlink(missing_ok=True)
            link.symlink_to(target)
            if target != link:
                link.replace(stage_file)
            else:  # a loop: the stage file points at link, link at itself
                stage_file.unlink()
                stage_file.symlink_to(link)
            for _ in range(2):
                assert headers_of(middleware)[b"x-frame-options"] == b"SAMEORIGIN"
    errors = records(caplog, logging.ERROR)
    assert records(caplog, logging.WARNING) == []  # never "deleted"
    assert errors == [
        f"{stage_file}: is a symlink to a missing file; keeping the last good settings",
        f"{stage_file}: cannot stat: Too many levels of symbolic links; keeping the last good "
        "settings",
    ]


def test_the_same_error_is_logged_once_across_versions(
    stage_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten torn versions in a row (each a new file) are one error line, not ten."""
    middleware = SecurityHeaders(_app, stage_file, check_interval=0)
    data = stage_file.read_bytes()
    with caplog.at_level(logging.ERROR, logger="rollout.middleware"):
        for cut in range(10, 20):
            stage_file.write_bytes(data[:cut])
            assert headers_of(middleware)[b"x-frame-options"] == b"DENY"
    assert len(records(caplog, logging.ERROR)) == 1


def test_a_version_read_while_fresh_is_read_once_more(
    stage_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where timestamps did not move (one tick, a coarse filesystem), a file read within a
    second of its change is read once more after that second, so a same-size rewrite in
    place is never missed."""
    import rollout.middleware.watch as watch

    monkeypatch.setattr(watch, "_key", lambda st: (1, 1, 1, 1))  # every version looks alike
    now = [stage_file.stat().st_mtime_ns]
    monkeypatch.setattr(watch.time, "time_ns", lambda: now[0])
    middleware = SecurityHeaders(_app, stage_file, check_interval=0)
    text = stage_file.read_text()
    swapped = text.replace("default-src 'self'", "default-src 'none'")
    assert len(swapped) == len(text)  # the same size too
    with stage_file.open("r+") as f:
        f.write(swapped)
    csp = b"content-security-policy-report-only"
    assert headers_of(middleware)[csp] == b"default-src 'self'; report-uri /csp"
    now[0] += watch.RACY_NS
    assert headers_of(middleware)[csp] == b"default-src 'none'; report-uri /csp"


@given(st.integers(min_value=1, max_value=10**10))
def test_every_max_age_a_plan_allows_names_its_stage(age: int) -> None:
    """Whatever max-age a ramp holds (1 s to the plan's 10**10 s cap), the stage rollout
    names after it, sending it, is admitted; one second more is not."""
    name = f"hsts-{format_duration(age)}"
    for sent, ok in ((age, True), (age + 1, False)):
        text = (
            f'environment = "s"\nstage = 3\nname = "{name}"\n[app]\n'
            f'"strict-transport-security" = "max-age={sent}"\n[edge]\n'
        )
        if ok:
            admit(text.encode(), "s.toml")
        else:
            with pytest.raises(SettingsError, match="but stage 3"):
                admit(text.encode(), "s.toml")
