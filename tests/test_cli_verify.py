"""`rollout verify` end to end: lines like curl -sI | grep, JSON, exit codes, history."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.servers import RawServer, Reply, redirect, tls_material

pytestmark = pytest.mark.integration

HOST = "staging.example.test"
STAGE3 = [
    ("Strict-Transport-Security", "max-age=86400"),
    ("Content-Security-Policy-Report-Only", "default-src 'self'; object-src 'none'"),
    ("Permissions-Policy", "geolocation=(), camera=()"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
]


@pytest.fixture
def servers() -> Iterator[tuple[RawServer, RawServer]]:
    """staging.example.test over https (stage-3 headers) and http (redirecting)."""
    with (
        RawServer(
            tls=tls_material().server,
            routes={"/": Reply(headers=STAGE3)},
            fallback=Reply(404, STAGE3),
        ) as https,
        RawServer(fallback=redirect(f"https://{HOST}/")) as http,
    ):
        yield https, http


@pytest.fixture
def off(servers: tuple[RawServer, RawServer]) -> None:
    """The site at stage off: no HSTS and no CSP yet (from another layer: header.E004)."""
    https, _ = servers
    https.routes["/"], https.fallback = Reply(headers=STAGE3[2:]), Reply(404, STAGE3[2:])


@pytest.fixture
def plan(write_plan: Callable[..., Path], servers: tuple[RawServer, RawServer]) -> Path:
    """A plan whose staging environment reaches the loopback servers through connect-to."""
    https, http = servers
    return write_plan(f"""\
[policy]
content-security-policy = "default-src 'self'; object-src 'none'"
permissions-policy = "geolocation=(), camera=()"
referrer-policy = "no-referrer"
x-frame-options = "DENY"
x-content-type-options = "nosniff"

[environments.staging]
urls = ["https://{HOST}/"]
connect-to = ["{HOST}:443:127.0.0.1:{https.port}", "{HOST}:80:127.0.0.1:{http.port}"]
cacert = "{tls_material().ca_path}"
""")


def test_verify_prints_a_line_per_check_and_exits_0(
    plan: Path, rollout: Callable[..., Result]
) -> None:
    """A right stage prints ✓ lines like curl -sI | grep and a summary, exit 0."""
    result = rollout("verify", "staging", "--stage", "3", "--plan", str(plan))
    assert result.code == 0, result.out + result.err
    assert f"✓ https://{HOST}/  strict-transport-security: max-age=86400" in result.out.splitlines()
    assert "\x1b[" not in result.out
    assert "staging stage 3: verified" in result.err


def test_verify_failure_names_id_and_curl_command(
    plan: Path, servers: tuple[RawServer, RawServer], rollout: Callable[..., Result]
) -> None:
    """A wrong value prints ✗ with expected, got, the id, and the curl command; exit 1."""
    https, _ = servers
    https.routes["/"] = Reply(headers=[("Strict-Transport-Security", "max-age=300"), *STAGE3[1:]])
    result = rollout("verify", "staging", "--stage", "3", "--plan", str(plan))
    assert result.code == 1
    lines = result.out.splitlines()
    bad = next(i for i, line in enumerate(lines) if line.startswith("✗"))
    assert lines[bad].startswith(
        f"✗ https://{HOST}/  strict-transport-security: expected max-age=86400, got max-age=300"
    )
    assert lines[bad].endswith("[hsts.E002]")
    curl = lines[bad + 1].strip()
    assert curl == (
        f"curl -sS -o /dev/null -D - --max-time 10 --connect-to {HOST}:443:127.0.0.1:{https.port} "
        f"--cacert {tls_material().ca_path} https://{HOST}/"
    )
    assert "FAILED" in result.err


def test_verify_json_is_the_design_object(plan: Path, rollout: Callable[..., Result]) -> None:
    """--json prints DESIGN.md's object with every check, passed ones too."""
    result = rollout("verify", "staging", "--stage", "3", "--json", "--plan", str(plan))
    assert result.code == 0
    doc = json.loads(result.out)
    assert doc["environment"] == "staging" and doc["stage"] == 3 and doc["ok"] is True
    assert {c["probe"] for c in doc["checks"]} == {"page", "404", "http"}
    assert all(c["header"] is None or c["header"] == c["header"].lower() for c in doc["checks"])


def test_verify_current_stage_records_history(
    plan: Path, off: None, rollout: Callable[..., Result]
) -> None:
    """Without a settings file the environment is off; verifying it appends a history record."""
    result = rollout("verify", "staging", "--json", "--plan", str(plan))
    assert result.code == 0, result.out
    assert json.loads(result.out)["stage"] == "off"
    history = (plan.parent / "staging.history.jsonl").read_text().splitlines()
    record = json.loads(history[-1])
    assert record["action"] == "verify" and record["verified"] is True and record["to"] == "off"


def test_insecure_marks_every_line(plan: Path, rollout: Callable[..., Result]) -> None:
    """--insecure makes every output line say certificates were not checked."""
    result = rollout("verify", "staging", "--stage", "3", "--insecure", "--plan", str(plan))
    assert result.code == 0
    assert all("insecure" in line for line in result.out.splitlines())
    assert "insecure" in result.err


def test_no_color_and_bad_input(plan: Path, rollout: Callable[..., Result]) -> None:
    """A bad --stage or unknown environment exits 2 with one line, no traceback."""
    bad = rollout("verify", "staging", "--stage", "x", "--plan", str(plan))
    assert bad.code == 2 and "--stage" in bad.err and "Traceback" not in bad.err
    far = rollout("verify", "staging", "--stage", "42", "--plan", str(plan))
    assert far.code == 2 and "no stage 42" in far.err
    unknown = rollout("verify", "nope", "--plan", str(plan))
    assert unknown.code == 2 and len(unknown.err.strip().splitlines()) == 1


def test_colour_only_on_a_tty_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """Colour needs a terminal and no NO_COLOR; coloured lines carry ANSI codes."""
    from rollout.checks import HEADER_WRONG, check
    from rollout.cli import verify as cli_verify
    from rollout.verify import Report

    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli_verify.use_color()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cli_verify.use_color()
    bad = check(
        HEADER_WRONG,
        "page",
        "https://x.example.test/",
        ok=False,
        header="x-frame-options",
        expected="DENY",
        actual=["SAMEORIGIN"],
        message="differs",
    )
    lines, _ = cli_verify.render(Report("staging", 1, [bad]), color=True)
    assert lines[0].startswith("\x1b[31m✗ https://x.example.test/  x-frame-options: expected DENY")
    assert lines[1] == "    curl -sS -o /dev/null -D - --max-time 10 https://x.example.test/"


def test_insecure_verify_is_recorded_but_not_counted(
    plan: Path, off: None, rollout: Callable[..., Result]
) -> None:
    """A passing verify with --insecure is logged, but not as the stage's verification."""
    result = rollout("verify", "staging", "--insecure", "--plan", str(plan))
    assert result.code == 0, result.out
    history = (plan.parent / "staging.history.jsonl").read_text().splitlines()
    record = json.loads(history[-1])
    assert record["action"] == "verify" and record["verified"] is False
    assert "not counted as verified" in record["reason"]


def test_curl_command_brackets_ipv6_addresses() -> None:
    """The suggested curl line writes IPv6 addresses in brackets, as curl parses them."""
    from rollout.addresses import ConnectTo, Resolve
    from rollout.cli.verify import curl_command
    from rollout.probe import ProbeOptions

    options = ProbeOptions(
        connect_to=[ConnectTo("a.example.test", 443, "::1", 8443)],
        resolve=[Resolve("a.example.test", 443, "::1"), Resolve("b.example.test", 443, "::1")],
    )
    assert curl_command("https://a.example.test/x", options) == (
        "curl -sS -o /dev/null -D - --max-time 10 --connect-to 'a.example.test:443:[::1]:8443' "
        "--resolve 'a.example.test:443:[::1]' https://a.example.test/x"
    )


def test_unwritable_history_still_prints_the_report(
    plan: Path, off: None, rollout: Callable[..., Result]
) -> None:
    """If the history cannot be appended, the report still prints, then one line, exit 2."""
    (plan.parent / "staging.history.jsonl").mkdir()
    result = rollout("verify", "staging", "--json", "--plan", str(plan))
    assert result.code == 2
    assert json.loads(result.out)["ok"] is True
    (line,) = result.err.splitlines()
    assert line.startswith("rollout: ") and "staging.history.jsonl" in line
    assert "Traceback" not in result.err


def test_unmapped_http_port_gets_a_hint(
    write_plan: Callable[..., Path],
    servers: tuple[RawServer, RawServer],
    rollout: Callable[..., Result],
) -> None:
    """connect-to for HOST:443 alone: the http probe says the HOST:80 entry is missing."""
    https, _ = servers
    plan = write_plan(f"""\
[policy]
x-frame-options = "DENY"

[environments.staging]
urls = ["https://{HOST}/"]
connect-to = ["{HOST}:443:127.0.0.1:{https.port}"]
cacert = "{tls_material().ca_path}"
""")
    result = rollout("verify", "staging", "--stage", "off", "--json", "--plan", str(plan))
    http = [c for c in json.loads(result.out)["checks"] if c["probe"] == "http"]
    assert len(http) == 1 and not http[0]["ok"]
    assert http[0]["message"].endswith(
        f"; the plan maps {HOST}:443 but not {HOST}:80 (add a {HOST}:80:ADDR:PORT entry)"
    )
