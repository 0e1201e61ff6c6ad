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


def test_verify_failure_names_id_fix_and_curl_command(
    plan: Path, servers: tuple[RawServer, RawServer], rollout: Callable[..., Result]
) -> None:
    """A wrong value prints ✗ with expected, got, the id, the fix and the curl command; exit 1."""
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
    assert lines[bad + 1] == (
        "    fix: send exactly the stage's value; `rollout render staging` prints it"
    )
    curl = lines[bad + 2].strip()
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
    checks = [line for line in result.out.splitlines() if line[:2] in ("✓ ", "✗ ", "! ", "- ")]
    assert checks and all(line.endswith("(insecure: certificates not checked)") for line in checks)
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
    assert lines[2] == "    curl -sS -o /dev/null -D - --max-time 10 https://x.example.test/"


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


# --- issue 8 item 16: root cause first -----------------------------------------------------

APP_HEADERS = (
    "strict-transport-security, content-security-policy-report-only, reporting-endpoints, "
    "permissions-policy, referrer-policy"
)


@pytest.fixture
def nginx_without_backend(
    write_plan: Callable[..., Path], rollout: Callable[..., Result]
) -> Iterator[Path]:
    """A real nginx owning X-Frame-Options and nosniff (rendered by rollout) whose backend
    is down, so every proxied request answers 502; yields the plan."""
    from tests.integration.rollout_itest import Nginx, find_nginx, free_port

    binary = find_nginx()
    folder = write_plan().parent
    nginx_tmp = folder / "nginx"
    nginx_tmp.mkdir()
    cert = tls_material().ca.issue_cert(HOST)
    nginx = Nginx(binary, nginx_tmp, cert, app_port=free_port())  # nothing listens there
    plan = write_plan(f"""\
[policy]
content-security-policy = "default-src 'self'; object-src 'none'"
permissions-policy = "geolocation=(), camera=()"
referrer-policy = "no-referrer"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
csp-report-uri = "https://csp.example.test/report"

[environments.staging]
urls = ["https://{HOST}/"]
edge = ["x-frame-options", "x-content-type-options"]
connect-to = ["{HOST}:443:127.0.0.1:{nginx.ports.https}", "{HOST}:80:127.0.0.1:{nginx.ports.http}"]
cacert = "{tls_material().ca_path}"
""")
    snippet = rollout("render", "staging", "--format", "nginx", "--stage", "3", "--plan", str(plan))
    assert snippet.code == 0, snippet.err
    nginx.start(snippet.out)
    try:
        yield plan
    finally:
        nginx.stop()


@pytest.mark.nginx
def test_backend_down_leads_with_the_502(
    nginx_without_backend: Path, rollout: Callable[..., Result]
) -> None:
    """Backend down behind nginx: each URL leads with its 502 (fix and curl under it), the
    app's five header checks fold into one line, and the edge's headers still show."""
    plan = nginx_without_backend
    result = rollout("verify", "staging", "--stage", "3", "--plan", str(plan))
    assert result.code == 1
    lines = result.out.splitlines()
    assert not any("is missing" in line for line in lines)
    page = [line for line in lines if f"https://{HOST}/  " in line]
    assert page[0].startswith(f"✗ https://{HOST}/  ") and page[0].endswith("[page.E001]")
    assert "502" in page[0]
    first = lines.index(page[0])
    assert lines[first + 1].startswith("    fix: ")
    assert lines[first + 2].startswith("    curl -sS ") and lines[first + 2].endswith(
        f"https://{HOST}/"
    )
    assert lines[first + 3] == (
        f"- https://{HOST}/  5 header checks not judged: the page answered 502 ({APP_HEADERS})"
    )
    assert page[2:] == [
        f"✓ https://{HOST}/  x-frame-options: DENY",
        f"✓ https://{HOST}/  x-content-type-options: nosniff",
    ]
    probe_404 = [line for line in lines if "/rollout-404-probe-" in line and line[:2] == "- "]
    assert len(probe_404) == 1 and probe_404[0].endswith(
        f"5 header checks not judged: the 404 probe answered 502 ({APP_HEADERS})"
    )
    assert "10 of them not judged" in result.err


@pytest.mark.nginx
def test_backend_down_json_keeps_every_check(
    nginx_without_backend: Path, rollout: Callable[..., Result]
) -> None:
    """--json still lists each folded header check as failed, as DESIGN.md's `checks` says."""
    result = rollout(
        "verify", "staging", "--stage", "3", "--json", "--plan", str(nginx_without_backend)
    )
    assert result.code == 1
    page = [c for c in json.loads(result.out)["checks"] if c["url"] == f"https://{HOST}/"]
    missing = [c["header"] for c in page if c["header"] and not c["ok"]]
    assert ", ".join(missing) == APP_HEADERS
    assert [c["id"] for c in page if c["header"] is None] == ["page.E001"]


def test_every_failure_and_warning_gets_its_fix(
    plan: Path, servers: tuple[RawServer, RawServer], rollout: Callable[..., Result]
) -> None:
    """Under each failed check and each warning, the finding's fix, with ENV filled in."""
    https, _ = servers
    https.routes["/"] = Reply(headers=[*STAGE3[:4], ("X-XSS-Protection", "1; mode=block")])
    result = rollout("verify", "staging", "--stage", "3", "--plan", str(plan))
    assert result.code == 1
    lines = result.out.splitlines()
    marked = [i for i, line in enumerate(lines) if line[:2] in ("✗ ", "! ")]
    assert len(marked) >= 3
    for i in marked:
        assert lines[i + 1].startswith("    fix: "), lines[i]
    xss = next(i for i in marked if "x-xss-protection" in lines[i])
    assert (
        lines[xss + 1]
        == "    fix: send `X-XSS-Protection: 0` or nothing: the old filter caused leaks"
    )
    # One curl line per URL, under its first failure, not one per failed check.
    assert sum(line.strip().endswith(f" https://{HOST}/") for line in lines if "curl" in line) == 1


def test_output_gets_the_report_even_when_a_check_fails(
    plan: Path, servers: tuple[RawServer, RawServer], rollout: Callable[..., Result]
) -> None:
    """verify --output FILE writes the whole report, a failing one too (exit 1); the
    summary stays on stderr and stdout is empty."""
    https, _ = servers
    https.routes["/"] = Reply(headers=STAGE3[1:])
    for extra in ([], ["--json"]):
        target = plan.parent / "verify.out"
        result = rollout(
            "verify",
            "staging",
            "--stage",
            "3",
            *extra,
            "--output",
            str(target),
            "--plan",
            str(plan),
        )
        assert result.code == 1
        assert result.out == ""
        text = target.read_text()
        if extra:
            assert json.loads(text)["ok"] is False
        else:
            assert text.startswith(f"✗ https://{HOST}/  strict-transport-security: ")
            assert "\x1b[" not in text
            assert "staging stage 3: FAILED" in result.err
