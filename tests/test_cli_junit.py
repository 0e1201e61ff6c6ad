"""`rollout verify --junit FILE`: JUnit XML that GitLab and Jenkins read, one case per check."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import xmlschema

from tests.conftest import Result
from tests.servers import RawServer, Reply, redirect, tls_material

pytestmark = pytest.mark.integration

HOST = "staging.example.test"
SCHEMA = Path(__file__).resolve().parent / "data" / "junit.xsd"
STAGE3 = [
    ("Strict-Transport-Security", "max-age=86400"),
    (
        "Content-Security-Policy-Report-Only",
        "default-src 'self'; report-uri /r; report-to rollout-csp",
    ),
    ("Reporting-Endpoints", 'rollout-csp="/r"'),
    ("Permissions-Policy", "geolocation=()"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
]


@pytest.fixture
def http() -> Iterator[RawServer]:
    """http://staging.example.test/ redirecting to https."""
    with RawServer(fallback=redirect(f"https://{HOST}/")) as server:
        yield server


@pytest.fixture
def https() -> Iterator[RawServer]:
    """staging.example.test over https, sending stage 3's headers."""
    with RawServer(
        tls=tls_material().server, routes={"/": Reply(headers=STAGE3)}, fallback=Reply(404, STAGE3)
    ) as server:
        yield server


@pytest.fixture
def plan(write_plan: Callable[..., Path], https: RawServer, http: RawServer) -> Path:
    """A plan whose staging environment reaches the servers through connect-to."""
    return write_plan(f"""\
[policy]
content-security-policy = "default-src 'self'"
permissions-policy = "geolocation=()"
referrer-policy = "no-referrer"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
csp-report-uri = "/r"

[environments.staging]
urls = ["https://{HOST}/"]
connect-to = ["{HOST}:443:127.0.0.1:{https.port}", "{HOST}:80:127.0.0.1:{http.port}"]
cacert = "{tls_material().ca_path}"
""")


def cases(path: Path) -> list[ET.Element]:
    return ET.parse(path).getroot().findall("./testsuite/testcase")


def test_a_failing_verify_writes_valid_junit(
    plan: Path, https: RawServer, rollout: Callable[..., Result]
) -> None:
    """A failing verify writes JUnit XML valid against the schema, one test case per check
    of --json, each failed check a <failure> typed with its finding id; exit stays 1."""
    https.routes["/"] = Reply(headers=[("Strict-Transport-Security", "max-age=300"), *STAGE3[1:]])
    report = plan.parent / "verify.xml"
    result = rollout(
        "verify", "staging", "--stage", "3", "--json", "--junit", str(report), "--plan", str(plan)
    )
    assert result.code == 1
    xmlschema.XMLSchema(SCHEMA).validate(report)
    checks = json.loads(result.out)["checks"]
    found = cases(report)
    assert len(found) == len(checks)
    failed = [c for c in checks if not c["ok"] and c["severity"] == "error"]
    failures = [case.find("failure") for case in found if case.find("failure") is not None]
    assert sorted(f.get("type", "") for f in failures if f is not None) == sorted(
        c["id"] for c in failed
    )
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == str(len(failed))
    assert suite.get("tests") == str(len(checks))
    hsts = next(
        case
        for case in found
        if case.get("name") == f"page https://{HOST}/ strict-transport-security"
    )
    text = hsts.findtext("failure") or ""
    assert "expected: max-age=86400\nactual: max-age=300\n" in text
    assert "fix: send exactly the stage's value; `rollout render staging` prints it" in text
    assert f"reproduce: curl -sS -o /dev/null -D - --max-time 10 --connect-to {HOST}:443:" in text


def test_a_warning_passes_visibly(
    plan: Path, https: RawServer, rollout: Callable[..., Result]
) -> None:
    """A warning is a passing test case named "warning: ..." that says why in <system-out>."""
    https.routes["/"] = Reply(headers=[*STAGE3, ("X-XSS-Protection", "1; mode=block")])
    report = plan.parent / "verify.xml"
    result = rollout(
        "verify", "staging", "--stage", "3", "--junit", str(report), "--plan", str(plan)
    )
    assert result.code == 0, result.out
    xmlschema.XMLSchema(SCHEMA).validate(report)
    (warning,) = [c for c in cases(report) if (c.get("name") or "").startswith("warning: ")]
    assert warning.find("failure") is None
    assert warning.get("name") == f"warning: page https://{HOST}/ x-xss-protection xss.W001"
    assert "[xss.W001, warning]" in (warning.findtext("system-out") or "")
    root = ET.parse(report).getroot()
    assert root.get("failures") == "0" and root.get("errors") == "0"


def test_names_are_unique_and_stable_across_runs(
    plan: Path, rollout: Callable[..., Result]
) -> None:
    """Test case names never repeat (GitLab keeps only the first) and are the same on every
    run (no random 404 path), so CI can follow a check from pipeline to pipeline."""
    names = []
    for run in range(2):
        report = plan.parent / f"run{run}.xml"
        result = rollout(
            "verify", "staging", "--stage", "3", "--junit", str(report), "--plan", str(plan)
        )
        assert result.code == 0, result.out
        names.append([c.get("name") for c in cases(report)])
    assert names[0] == names[1]
    assert len(set(names[0])) == len(names[0])
    assert f"404 https://{HOST}/rollout-404-probe-* notfound.E001" in names[0]


def test_bad_input_keeps_the_old_file(plan: Path, rollout: Callable[..., Result]) -> None:
    """A refusal (exit 2) leaves an existing --junit FILE exactly as it was."""
    report = plan.parent / "verify.xml"
    report.write_text("old report\n")
    result = rollout(
        "verify", "staging", "--stage", "42", "--junit", str(report), "--plan", str(plan)
    )
    assert result.code == 2
    assert report.read_text() == "old report\n"


def test_unwritable_junit_is_refused_before_probing(
    plan: Path, https: RawServer, rollout: Callable[..., Result]
) -> None:
    """--junit into a missing folder: one line naming --junit, exit 2, before any probe is
    sent or any history written."""
    report = plan.parent / "nope" / "verify.xml"
    result = rollout("verify", "staging", "--junit", str(report), "--plan", str(plan))
    assert result.code == 2
    assert result.err.splitlines() == [
        f"rollout: --junit: {report}: the folder {report.parent} does not exist"
    ]
    assert not report.parent.exists()
    assert https.requests == []
    assert not (plan.parent / "staging.history.jsonl").exists()


def test_control_characters_stay_valid_xml() -> None:
    """A header value holding control characters (a hostile server) still makes valid XML."""
    from rollout.checks import HEADER_WRONG, check
    from rollout.junit import to_junit
    from rollout.verify import Report

    bad = check(
        HEADER_WRONG,
        "page",
        "https://x.example.test/",
        ok=False,
        header="x-frame-options",
        expected="DENY",
        actual=["DENY\x01\x1b[2J\ufffe"],
        message="differs",
    )
    text = to_junit(Report("staging", 1, [bad]))
    xmlschema.XMLSchema(SCHEMA).validate(text)
    failure = ET.fromstring(text).find("./testsuite/testcase/failure")
    assert failure is not None and "actual: DENY\\x01\\x1b[2J\\ufffe\n" in (failure.text or "")
