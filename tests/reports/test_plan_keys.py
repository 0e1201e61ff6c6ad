"""The plan keys of CSP reports: what they make the ladder send, and every refusal."""

from __future__ import annotations

import pytest

from rollout import ladder
from rollout.errors import PlanError
from rollout.plan import parse_plan

BASE = """\
[policy]
content-security-policy = "default-src 'self'"
csp-report-uri = "/csp-report"
[environments.staging]
urls = ["https://a.example.test/"]
"""

NEXT_ALONE = (
    "[policy]\ncontent-security-policy-next = \"default-src 'self'\"\n"
    + BASE.split('csp-report-uri = "/csp-report"\n')[1]
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE.replace("[policy]\n", "[policy]\ncontent-security-policy-next = \"a b;\"\n"),
         "policy.content-security-policy-next: trailing ';' at character 4: remove it"),
        (NEXT_ALONE,
         "policy.content-security-policy-next: there is no content-security-policy for it to "
         "follow; write it there instead"),
        (BASE + "csp-violations = -1\n",
         "environments.staging.csp-violations: -1 is not a whole number from 0 to 1000000000"),
        (BASE + 'csp-violations = "0"\n',
         "environments.staging.csp-violations: '0' is not a whole number"),
        (BASE + "csp-min-page-views = 10\n",
         "environments.staging.csp-min-page-views: only applies with csp-violations; set that too"),
        (BASE + 'csp-soak = "1h"\n',
         "environments.staging.csp-soak: only applies with csp-violations; set that too"),
        (BASE + "csp-violations = 0\ncsp-min-page-views = 0\n",
         "environments.staging.csp-min-page-views: 0 is not a whole number from 1 to 1000000000"),
        (BASE + 'csp-violations = 0\ncsp-soak = "max-age"\n',
         "environments.staging.csp-soak: 'max-age' is not a duration like 30s, 15m, 24h, 7d, 1y"),
        (BASE.replace('csp-report-uri = "/csp-report"\n', "") + "csp-violations = 0\n",
         'environments.staging.csp-violations: reports need somewhere to go: set '
         'policy.csp-report-uri (e.g. "/csp-report")'),
        (BASE.replace("[environments", "[ladder]\ncsp-enforce-from = 30\n[environments")
         + "csp-violations = 0\n",
         "environments.staging.csp-violations: stage 0 already enforces CSP "
         "(ladder.csp-enforce-from = 30), so no report-only stage comes first to gather "
         "reports; raise csp-enforce-from"),
        (BASE + 'reports-store = "postgresql://u:secret@db/x"\n',
         "environments.staging.reports-store: holds a password; keep it out of the plan "
         "(use ~/.pgpass or PGPASSWORD)"),
        (BASE + 'reports-store = "mysql://db/x"\n',
         "environments.staging.reports-store: 'mysql://db/x' is not a postgresql:// URL or an "
         "SQLite file path"),
        (BASE.replace('"/csp-report"', '"/csp\\\\report"'),
         "policy.csp-report-uri: '/csp\\\\report' is not an https:// URL or a path "
         "starting with /"),
    ],
    ids=["next-grammar", "next-alone", "negative", "string", "views-alone", "soak-alone",
         "zero-views", "soak-max-age", "no-report-uri", "no-report-only-stage",
         "password", "mysql", "backslash"],
)  # fmt: skip
def test_refusals(text: str, message: str) -> None:
    """Each bad report key is refused with the file, the key and the reason in one line."""
    with pytest.raises(PlanError) as caught:
        parse_plan(text)
    assert str(caught.value) == f"plan.toml: {message}"


def test_report_keys_are_read() -> None:
    """The gate keys and a relative SQLite store path (made absolute from the plan's folder)."""
    plan = parse_plan(
        BASE + 'csp-violations = 2\ncsp-min-page-views = 50\ncsp-soak = "1d"\n'
        'reports-store = "data/reports.sqlite3"\n',
        "/srv/stages/plan.toml",
    )
    env = plan.environments["staging"]
    assert (env.csp_violations, env.csp_min_page_views, env.csp_soak) == (2, 50, 86400)
    assert env.reports_store == "/srv/stages/data/reports.sqlite3"


def test_the_next_policy_is_sent_beside_the_enforcing_one_only() -> None:
    """content-security-policy-next goes out report-only at enforcing stages only, with the
    report URI; report-only stages send the current policy alone."""
    plan = parse_plan(
        BASE.replace(
            "[policy]\n", "[policy]\ncontent-security-policy-next = \"default-src 'none'\"\n"
        )
    )
    early = ladder.settings_for(plan, "staging", 3).app
    late = ladder.settings_for(plan, "staging", 4).app
    assert early["content-security-policy-report-only"].startswith("default-src 'self'")
    assert "content-security-policy" not in early
    assert late["content-security-policy"].startswith("default-src 'self'")
    assert late["content-security-policy-report-only"] == (
        "default-src 'none'; report-uri /csp-report; report-to rollout-csp"
    )
