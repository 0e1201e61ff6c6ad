"""A verify report as JUnit XML, the test report GitLab, Jenkins and most CI systems read.

One `<testcase>` per check, passed ones too. A failed check is a `<failure>` whose `type`
is the finding id and whose text says what was expected, what was seen, the fix and the
curl command that shows it; a warning passes (it never fails a report) but says so in its
name and in `<system-out>`. Test case names stay the same from run to run (no random
404 path, no values in them), so CI systems can follow a check across pipelines; GitLab
keeps only the first of two cases with one name, so names are unique.

The shape follows what the readers accept: Jenkins' JUnit plugin (its junit-10.xsd:
testsuite needs name, tests, failures and errors; testcase needs name) and GitLab's unit
test reports (testsuites > testsuite > testcase, with failure and system-out).
`tests/data/junit.xsd` holds the narrower schema rollout promises.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

from rollout.checks import Check
from rollout.explain import by_response
from rollout.names import OFF
from rollout.verify import Report, not_found_path

# XML 1.0 allows TAB, LF, CR and everything from SP up, less surrogates and U+FFFE/U+FFFF;
# a header value a server sent may hold anything else, shown here as \xNN (or \uNNNN).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# The 404 probe's path is random per run; names use a placeholder so they stay stable.
_RANDOM_PATH = re.compile(re.escape(not_found_path("")) + "[0-9a-f]+")


def to_junit(
    report: Report,
    *,
    seconds: float | None = None,
    reproduce: Callable[[str], str] | None = None,
) -> str:
    """The report as a JUnit XML document; `reproduce(url)` gives a command to see it by hand."""
    stage = OFF if report.stage is None else str(report.stage)
    tests, failures = str(len(report.checks)), str(len(report.failures))
    suites = ET.Element(
        "testsuites", name="rollout verify", tests=tests, failures=failures, errors="0"
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"rollout verify {report.environment} stage {stage}",
        tests=tests,
        failures=failures,
        errors="0",
        skipped="0",
    )
    if seconds is not None:
        suites.set("time", f"{seconds:.3f}")
        suite.set("time", f"{seconds:.3f}")
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("environment", report.environment),
        ("stage", stage),
        ("ok", str(report.ok).lower()),
        ("insecure", str(report.insecure).lower()),
    ):
        ET.SubElement(properties, "property", name=name, value=_text(value))
    seen: dict[str, int] = {}
    for response in by_response(report.checks):
        unjudged = {id(c) for c in response.unjudged}
        for check in response.checks:
            name = _name(check)
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name} #{seen[name]}"
            case = ET.SubElement(
                suite, "testcase", classname=f"{report.environment}.{check.probe}", name=name
            )
            lines = _details(check, report.environment)
            if id(check) in unjudged:
                lines.insert(1, f"not judged: {response.why}; fix that first")
            if check.failed and check.url and reproduce is not None:
                lines.append(f"reproduce: {reproduce(check.url)}")
            if check.failed:
                failure = ET.SubElement(
                    case, "failure", type=check.id, message=_text(check.message)
                )
                failure.text = _text("\n".join(lines))
            elif not check.ok:  # a warning: passes, visibly
                ET.SubElement(case, "system-out").text = _text("\n".join(lines))
    ET.indent(suites)
    body = ET.tostring(suites, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def _name(check: Check) -> str:
    url = _RANDOM_PATH.sub(not_found_path("*"), check.url) if check.url else "(environment)"
    # A header check keeps its name whether it passes or fails (its id changes with the
    # way it fails); a check about a status or redirect is named by its finding.
    subject = check.header or check.id
    if check.severity == "warning":
        return _text(f"warning: {check.probe} {url} {subject} {check.id}")
    return _text(f"{check.probe} {url} {subject}")


def _details(check: Check, environment: str) -> list[str]:
    tag = "warning" if check.severity == "warning" else "error"
    lines = [f"{check.message} [{check.id}, {tag}]"]
    if check.expected is not None:
        lines.append(f"expected: {check.expected}")
    if check.actual or check.expected is not None:
        lines.append(f"actual: {' | '.join(check.actual) if check.actual else 'nothing'}")
    lines.append(f"fix: {check.fix_for(environment)}")
    return lines


def _text(value: str) -> str:
    return _NOT_XML.sub(_escape, value)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
