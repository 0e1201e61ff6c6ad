"""rollout.explain: which checks fold behind a root cause, and which never do."""

from __future__ import annotations

from rollout import checks
from rollout.checks import Check
from rollout.explain import by_response

URL = "https://x.example.test/"


def status(finding: checks.Finding, probe: checks.Probe, code: int, want: str) -> Check:
    return checks.check(
        finding,
        probe,
        URL,
        ok=False,
        expected=want,
        actual=[str(code)],
        message=f"answers {code}",
        status=code,
    )


def missing(name: str, probe: checks.Probe = "page") -> Check:
    return checks.check(
        checks.HEADER_MISSING, probe, URL, ok=False, header=name, expected="v", message="missing"
    )


def test_a_5xx_page_leads_and_leaves_its_header_checks_unjudged() -> None:
    """The 502 comes first in its group and the failed header checks after it are unjudged."""
    group = [missing("x-frame-options"), status(checks.PAGE_SERVER_ERROR, "page", 502, "2xx")]
    (response,) = by_response(group)
    assert response.checks[0].id == "page.E001"
    assert response.unjudged == (group[0],)
    assert response.shown == (group[1],)
    assert response.why == "the page answered 502"


def test_a_4xx_page_or_a_200_on_the_404_probe_folds_nothing() -> None:
    """Headers on a 4xx page or on a 200 where a 404 was wanted are real findings: kept."""
    page = [status(checks.PAGE_CLIENT_ERROR, "page", 403, "2xx"), missing("x-frame-options")]
    probe = [status(checks.NOT_FOUND_STATUS, "404", 200, "404"), missing("referrer-policy", "404")]
    for group in (page, probe):
        (response,) = by_response(group)
        assert response.cause is None and response.unjudged == ()
        assert response.shown == tuple(group)


def test_a_503_on_the_404_probe_is_a_root_cause() -> None:
    """The 404 probe answering 5xx explains its missing headers too."""
    group = [status(checks.NOT_FOUND_STATUS, "404", 503, "404"), missing("referrer-policy", "404")]
    (response,) = by_response(group)
    assert response.why == "the 404 probe answered 503"
    assert response.unjudged == (group[1],)


def test_fix_fills_in_the_environment() -> None:
    """A finding's fix names the environment where its text says ENV."""
    assert missing("x").fix_for("staging") == (
        "send it from its owner: the middleware (app) or the proxy (edge)"
    )
    check = checks.check(checks.HEADER_WRONG, "page", URL, ok=False, message="differs")
    assert check.fix_for("staging") == (
        "send exactly the stage's value; `rollout render staging` prints it"
    )
