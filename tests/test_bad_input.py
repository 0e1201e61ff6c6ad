"""Bad plans, flags and settings files: exit 2, one line naming file and key, nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Result


P = '[policy]\nx-frame-options = "DENY"\nx-content-type-options = "nosniff"\n'
E = '[environments.staging]\nurls = ["https://staging.example.test/"]\n'


def env(body: str, name: str = "staging") -> str:
    return P + f"[environments.{name}]\n" + body + "\n"


def pol(body: str) -> str:
    return "[policy]\n" + body + "\n" + E


def lad(body: str) -> str:
    return P + "[ladder]\n" + body + "\n" + E


BAD_PLANS = [
    pytest.param(
        "colour = 1\n" + P + E,
        "colour: unknown key; expected policy, ladder, environments",
        id="unknown-top-key",
    ),
    pytest.param(
        pol('referer-policy = "no-referrer"'),
        "policy.referer-policy: unknown key; did you mean 'referrer-policy'?",
        id="policy-typo",
    ),
    pytest.param(
        pol('strict-transport-security = "max-age=30"'),
        "policy.strict-transport-security: HSTS values come from [ladder] hsts; remove it here",
        id="policy-hsts",
    ),
    pytest.param(
        pol("content-security-policy-report-only = \"default-src 'self'\""),
        (
            "policy.content-security-policy-report-only: the ladder decides when CSP is "
            "report-only; write the policy as content-security-policy"
        ),
        id="policy-csp-report-only",
    ),
    pytest.param(
        pol("content-security-policy = \"default-src 'self';\""),
        "policy.content-security-policy: trailing ';' at character 19: remove it",
        id="csp-trailing-semicolon",
    ),
    pytest.param(
        pol("content-security-policy = \"default-src 'self';; img-src *\""),
        (
            "policy.content-security-policy: empty directive before the ';' at character 20: "
            "remove that ';'"
        ),
        id="csp-empty-directive",
    ),
    pytest.param(
        pol("permissions-policy = \"geolocation 'none'\""),
        (
            "policy.permissions-policy: this is the old Feature-Policy syntax, which "
            "browsers ignore in Permissions-Policy: write geolocation=()"
        ),
        id="permissions-feature-policy",
    ),
    pytest.param(
        pol('x-content-type-options = "nosniff\\r\\nSet-Cookie: a=b"'),
        (
            "policy.x-content-type-options: the value has a carriage return (CR) '\\r' at "
            "character 8: header values are a single line; remove it"
        ),
        id="value-crlf",
    ),
    pytest.param(
        pol('x-frame-options = "DENY\\u0000"'),
        "policy.x-frame-options: the value has a NUL byte '\\x00' at character 5: remove it",
        id="value-nul",
    ),
    pytest.param(
        pol('referrer-policy = "no-référrer"'),
        (
            "policy.referrer-policy: the value has a non-ASCII character 'é' (U+00E9) at "
            "character 5: write it as visible ASCII, e.g. percent-encode it in URLs"
        ),
        id="value-non-ascii",
    ),
    pytest.param(
        pol('x-frame-options = "ALLOW-FROM https://a.example.test"'),
        (
            "policy.x-frame-options: ALLOW-FROM is obsolete and browsers ignore it: use DENY "
            "or SAMEORIGIN, and CSP frame-ancestors to allow other origins"
        ),
        id="xfo-allow-from",
    ),
    pytest.param(
        pol('referrer-policy = "never"'),
        (
            "policy.referrer-policy: Referrer-Policy: never is not a referrer policy: use "
            "one of no-referrer, no-referrer-when-downgrade, same-origin, origin, "
            "strict-origin, origin-when-cross-origin, strict-origin-when-cross-origin, "
            "unsafe-url"
        ),
        id="referrer-unknown",
    ),
    pytest.param(
        pol("x-frame-options = 1"),
        "policy.x-frame-options: 1 is not a string",
        id="policy-value-int",
    ),
    pytest.param(
        pol('csp-report-uri = "ftp://csp.example.test/r"'),
        (
            "policy.csp-report-uri: 'ftp://csp.example.test/r' is not an https:// URL or a "
            "path starting with /"
        ),
        id="report-uri-scheme",
    ),
    pytest.param(
        E,
        "policy: the [policy] table is missing; it holds the final header values",
        id="policy-missing",
    ),
    pytest.param(
        'policy = "strict"\n' + E, "policy: 'strict' is not a table", id="policy-not-table"
    ),
    pytest.param(
        lad("hsts-ramp = [30]"),
        "ladder.hsts-ramp: unknown key; did you mean 'hsts'?",
        id="ladder-unknown-key",
    ),
    pytest.param(
        lad("hsts = []"),
        "ladder.hsts: the ramp is empty; list max-age values in seconds, ascending",
        id="ladder-empty",
    ),
    pytest.param(
        lad("hsts = [30, 30]"),
        "ladder.hsts[1]: 30 does not ascend (it follows 30)",
        id="ladder-repeat",
    ),
    pytest.param(
        lad("hsts = [300, 30]"),
        "ladder.hsts[1]: 30 does not ascend (it follows 300)",
        id="ladder-descending",
    ),
    pytest.param(
        lad("hsts = [-1, 30]"),
        "ladder.hsts[0]: -1 is not a positive number of seconds",
        id="ladder-negative",
    ),
    pytest.param(
        lad("hsts = [0, 30]"),
        "ladder.hsts[0]: 0 is not a positive number of seconds",
        id="ladder-zero",
    ),
    pytest.param(
        lad("hsts = [true, 30]"),
        "ladder.hsts[0]: true is not a whole number of seconds",
        id="ladder-bool",
    ),
    pytest.param(
        lad("hsts = [30.5]"),
        "ladder.hsts[0]: 30.5 is not a whole number of seconds",
        id="ladder-float",
    ),
    pytest.param(
        lad('hsts = ["30"]'),
        "ladder.hsts[0]: '30' is not a whole number of seconds",
        id="ladder-string",
    ),
    pytest.param(lad("hsts = 30"), "ladder.hsts: 30 is not a list", id="ladder-not-list"),
    pytest.param(
        lad("hsts = [30, 300]\ncsp-enforce-from = 604800"),
        (
            "ladder.csp-enforce-from: 604800 is above every stage's max-age (the ramp ends "
            "at 300); lower it or extend hsts"
        ),
        id="csp-enforce-unreached",
    ),
    pytest.param(
        lad("hsts = [30, 300]\ncsp-enforce-from = 300\ninclude-subdomains-from = 2592000"),
        (
            "ladder.include-subdomains-from: 2592000 is above every stage's max-age (the "
            "ramp ends at 300); lower it or extend hsts"
        ),
        id="include-subdomains-unreached",
    ),
    pytest.param(
        lad("csp-enforce-from = -5"),
        "ladder.csp-enforce-from: -5 is negative; use seconds >= 0",
        id="csp-enforce-negative",
    ),
    pytest.param(
        lad(
            "hsts = [30, 300]\ncsp-enforce-from = 30\ninclude-subdomains-from = 30\npreload = true"
        ),
        "ladder.preload: preload needs a last max-age of at least 31536000 (the ramp ends at 300)",
        id="preload-short-ramp",
    ),
    pytest.param(
        lad('preload = "yes"'), "ladder.preload: 'yes' is not true or false", id="preload-not-bool"
    ),
    pytest.param(P, "environments: the plan names no environment; add one", id="no-environments"),
    pytest.param(
        env('url = "https://staging.example.test/"'),
        "environments.staging.url: unknown key; did you mean 'urls'?",
        id="env-unknown-key",
    ),
    pytest.param(
        P + '[environments."prod env"]\n',
        (
            "environments.\"prod env\": 'prod env' is not a usable name: use letters, "
            "digits, '-' and '_' (it names stages/<env>.toml)"
        ),
        id="env-name-space",
    ),
    pytest.param(
        P + '[environments."..x"]\n',
        (
            "environments.\"..x\": '..x' is not a usable name: use letters, digits, '-' and "
            "'_' (it names stages/<env>.toml)"
        ),
        id="env-name-dots",
    ),
    pytest.param(
        P + "[environments.plan]\n",
        (
            "environments.plan: 'plan' is not a usable name: its settings file would "
            "overwrite plan.toml"
        ),
        id="env-name-plan",
    ),
    pytest.param(
        env('name = "x"'),
        (
            "environments.staging.name: unknown key; expected urls, edge, subdomains, "
            "connect-to, resolve, cacert, apply, soak, after, csp-violations, "
            "csp-min-page-views, csp-soak, reports-store"
        ),
        id="env-name-key",
    ),
    pytest.param(
        env('after = "qa"'),
        "environments.staging.after: no environment 'qa' (the plan has staging)",
        id="after-unknown",
    ),
    pytest.param(
        env('after = "staging"'),
        "environments.staging.after: an environment cannot come after itself",
        id="after-self",
    ),
    pytest.param(
        P + '[environments.a]\nafter = "b"\n[environments.b]\nafter = "a"\n',
        "environments.a.after: after forms a cycle: a -> b -> a",
        id="after-cycle",
    ),
    pytest.param(
        env('urls = ["http://staging.example.test/"]'),
        (
            "environments.staging.urls[0]: 'http://staging.example.test/' is an http:// URL; "
            "list https:// pages (the http probe is derived)"
        ),
        id="url-http",
    ),
    pytest.param(
        env('urls = ["/login"]'),
        "environments.staging.urls[0]: '/login' is not an absolute https:// URL",
        id="url-relative",
    ),
    pytest.param(
        env('urls = ["https://a.example.test/", "https://A.example.test:443/"]'),
        "environments.staging.urls[1]: 'https://A.example.test:443/' is listed twice",
        id="url-duplicate",
    ),
    pytest.param(
        env('urls = ["https://u:p@a.example.test/"]'),
        (
            "environments.staging.urls[0]: 'https://u:p@a.example.test/': leave out "
            "credentials and #fragments"
        ),
        id="url-credentials",
    ),
    pytest.param(
        env('urls = ["https://a.example.test:99999/"]'),
        (
            "environments.staging.urls[0]: 'https://a.example.test:99999/' is not a valid "
            "URL: port out of range 0-65535"
        ),
        id="url-bad-port",
    ),
    pytest.param(
        env('urls = "https://a.example.test/"'),
        "environments.staging.urls: 'https://a.example.test/' is not a list",
        id="urls-not-list",
    ),
    pytest.param(
        env("urls = [443]"), "environments.staging.urls[0]: 443 is not a string", id="urls-item-int"
    ),
    pytest.param(
        env('edge = ["x-powered-by"]'),
        (
            "environments.staging.edge: 'x-powered-by' is not a header the plan sends "
            "(content-security-policy, content-security-policy-report-only, "
            "strict-transport-security, x-content-type-options, x-frame-options)"
        ),
        id="edge-unknown-header",
    ),
    pytest.param(
        env('edge = ["permissions-policy"]'),
        (
            "environments.staging.edge: 'permissions-policy' is not a header the plan sends "
            "(content-security-policy, content-security-policy-report-only, "
            "strict-transport-security, x-content-type-options, x-frame-options)"
        ),
        id="edge-not-in-policy",
    ),
    pytest.param(
        env("edge = [1]"),
        "environments.staging.edge[0]: 1 is not a header name",
        id="edge-item-int",
    ),
    pytest.param(
        env('subdomains = ["https://api.example.test"]'),
        (
            "environments.staging.subdomains[0]: 'https://api.example.test' is not a host "
            "name; write it like 'api.example.test'"
        ),
        id="subdomain-url",
    ),
    pytest.param(
        env('subdomains = ["10.0.0.1"]'),
        "environments.staging.subdomains[0]: '10.0.0.1' is an IP address, not a host name",
        id="subdomain-ip",
    ),
    pytest.param(
        env('subdomains = ["api_x.example.test"]'),
        (
            "environments.staging.subdomains[0]: 'api_x.example.test' is not a host name "
            "(letters, digits, '-' and dots)"
        ),
        id="subdomain-underscore",
    ),
    pytest.param(
        env('connect-to = ["a.example.test:443:127.0.0.1"]'),
        (
            "environments.staging.connect-to[0]: 'a.example.test:443:127.0.0.1' is not "
            "HOST:PORT:ADDR:PORT (as curl --connect-to)"
        ),
        id="connect-to-short",
    ),
    pytest.param(
        env('connect-to = ["a.example.test:0:127.0.0.1:8443"]'),
        "environments.staging.connect-to[0]: port '0' is not a port from 1 to 65535",
        id="connect-to-port-zero",
    ),
    pytest.param(
        env('connect-to = ["a.example.test:443:127.0.0.1:70000"]'),
        "environments.staging.connect-to[0]: port '70000' is not a port from 1 to 65535",
        id="connect-to-port-big",
    ),
    pytest.param(
        env('connect-to = ["a.example.test:443:::1:8443"]'),
        (
            "environments.staging.connect-to[0]: 'a.example.test:443:::1:8443' is not "
            "HOST:PORT:ADDR:PORT (as curl --connect-to)"
        ),
        id="connect-to-ipv6-bare",
    ),
    pytest.param(
        env('resolve = ["a.example.test:443"]'),
        (
            "environments.staging.resolve[0]: 'a.example.test:443' is not HOST:PORT:ADDR (as "
            "curl --resolve)"
        ),
        id="resolve-short",
    ),
    pytest.param(
        env('resolve = ["a.example.test:443:localhost"]'),
        "environments.staging.resolve[0]: 'localhost' is not an IP address",
        id="resolve-hostname",
    ),
    pytest.param(
        env('resolve = ["a.example.test:443:::1"]'),
        "environments.staging.resolve[0]: write the IPv6 address '::1' in brackets: [::1]",
        id="resolve-ipv6-bare",
    ),
    pytest.param(
        env('resolve = "a.example.test:443:127.0.0.1"'),
        "environments.staging.resolve: 'a.example.test:443:127.0.0.1' is not a list",
        id="resolve-not-list",
    ),
    pytest.param(
        env('cacert = "certs/ca.pem"'),
        (
            "environments.staging.cacert: 'certs/ca.pem' is not a file (looked for "
            "{folder}/certs/ca.pem)"
        ),
        id="cacert-missing",
    ),
    pytest.param(
        env('apply = ""'), "environments.staging.apply: the command is empty", id="apply-empty"
    ),
    pytest.param(
        env('apply = "systemctl reload \'my app"'),
        (
            'environments.staging.apply: "systemctl reload \'my app" cannot be split into '
            "arguments: no closing quotation"
        ),
        id="apply-unbalanced",
    ),
    pytest.param(
        env('apply = ["systemctl", 1]'),
        "environments.staging.apply[1]: 1 is not a string",
        id="apply-list-int",
    ),
    pytest.param(
        env('soak = "1 hour"'),
        (
            "environments.staging.soak: '1 hour' is not a duration like 30s, 15m, 24h, 7d, 1y or "
            '"max-age"'
        ),
        id="soak-words",
    ),
    pytest.param(
        env("soak = 3600"),
        'environments.staging.soak: 3600 is not a duration like 30s, 15m, 24h, 7d, 1y or "max-age"',
        id="soak-int",
    ),
    pytest.param(
        env('soak = "3mo"'),
        (
            "environments.staging.soak: '3mo' is not a duration like 30s, 15m, 24h, 7d, 1y "
            'or "max-age"'
        ),
        id="soak-unit",
    ),
    pytest.param(
        P + "[environments.staging\n",
        ":4: not valid TOML: expected ']' at the end of a table declaration (column 22)",
        id="toml-syntax",
    ),
    pytest.param(
        P + 'x-frame-options = "DENY"\n' + E,
        ":4: not valid TOML: cannot overwrite a value (column 25)",
        id="toml-duplicate-key",
    ),
]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def refused(result: Result, line: str) -> None:
    assert result.code == 2
    assert result.err == f"rollout: {line}\n"
    assert "Traceback" not in result.out + result.err


@pytest.mark.parametrize("command", [["status"], ["plan"]])
@pytest.mark.parametrize(("text", "message"), BAD_PLANS)
def test_bad_plan_is_refused(
    write_plan: Callable[..., Path],
    rollout: Callable[..., Result],
    command: list[str],
    text: str,
    message: str,
) -> None:
    """A bad plan exits 2 with one line naming the file, the key and the reason, writing nothing."""
    plan = write_plan(text)
    before = snapshot(plan.parent)
    result = rollout(*command, "--plan", str(plan))
    message = message.format(folder=plan.parent)
    refused(result, f"{plan}{message}" if message.startswith(":") else f"{plan}: {message}")
    assert snapshot(plan.parent) == before


def test_bad_plan_with_json_prints_the_error_object(
    write_plan: Callable[..., Path], rollout: Callable[..., Result]
) -> None:
    """With --json the refusal is also printed as {"ok": false, "error": ...} on stdout."""
    plan = write_plan(env('soak = "1 hour"'))
    result = rollout("status", "--json", "--plan", str(plan))
    line = (
        f"{plan}: environments.staging.soak: '1 hour' is not a duration like "
        '30s, 15m, 24h, 7d, 1y or "max-age"'
    )
    refused(result, line)
    assert json.loads(result.out) == {"ok": False, "error": line}


def test_missing_plan_is_refused(stages: Path, rollout: Callable[..., Result]) -> None:
    """A plan file that does not exist says how to point at one."""
    plan = stages / "nope.toml"
    result = rollout("status", "--plan", str(plan))
    refused(result, f"{plan}: no such plan file; pass --plan PATH or set ROLLOUT_PLAN")
    assert list(stages.iterdir()) == []


def test_plan_that_is_a_folder_is_refused(stages: Path, rollout: Callable[..., Result]) -> None:
    """A plan path naming a folder is refused before anything is read."""
    result = rollout("plan", "--plan", str(stages))
    refused(result, f"Invalid value for '--plan': File '{stages}' is a directory.")


def test_plan_not_utf8_is_refused(
    write_plan: Callable[..., Path], rollout: Callable[..., Result]
) -> None:
    """A plan in another encoding is refused with the offending byte's position."""
    plan = write_plan()
    plan.write_bytes(b'[policy]\nx-frame-options = "D\xe9NY"\n')
    refused(
        rollout("plan", "--plan", str(plan)), f"{plan}:2: not UTF-8 text; save the plan as UTF-8"
    )


AGAIN = "delete the file to start again from stage off"
UNDO = f"undo the edit, or {AGAIN}"
UNDO_LADDER = f"undo the edit to this file or to the plan's [ladder], or {AGAIN}"
AT0 = 'environment = "staging"\nstage = 0\nname = "hsts-30s"\n'
AT0_APP = AT0 + '[app]\n"strict-transport-security" = "max-age=30"\n'
PROD0 = 'environment = "production"\nstage = 0\nname = "hsts-30s"\n'

BAD_SETTINGS = [
    pytest.param("staging", "stage = [", "not valid TOML: ", id="not-toml"),
    pytest.param(
        "staging",
        AT0 + 'colour = "red"\n',
        "colour: unknown key; this file is written by rollout, not by hand",
        id="unknown-key",
    ),
    pytest.param(
        "staging",
        PROD0,
        "environment: 'production' does not match the file name ('staging')",
        id="other-environment",
    ),
    pytest.param(
        "staging",
        'environment = "staging"\nstage = 3\nname = "hsts-2h"\n',
        "name: stage 'hsts-2h' is no longer in the plan's ladder (hsts-30s, hsts-5m, hsts-1h, "
        f"hsts-1d, hsts-1w, hsts-30d, hsts-1y); restore the plan's [ladder], or {AGAIN}",
        id="stage-gone-from-ladder",
    ),
    pytest.param(
        "staging",
        'environment = "staging"\nstage = "up"\nname = "hsts-30s"\n',
        "stage: 'up' is not a stage number or \"off\"",
        id="stage-word",
    ),
    pytest.param(
        "staging",
        'environment = "staging"\nstage = "off"\nname = "hsts-1d"\n',
        "name: 'hsts-1d', but the stage is off",
        id="off-with-a-name",
    ),
    pytest.param(
        "staging",
        AT0_APP + '"x-frame-options" = "DENY\\nX-Evil: 1"\n',
        "app.x-frame-options: 'DENY\\nX-Evil: 1' has control, non-ASCII or surrounding space "
        "characters",
        id="header-with-newline",
    ),
    pytest.param(
        "staging",
        AT0 + '[app]\n"x" = "1"\n[edge]\n"x" = "1"\n',
        "edge.x: also in [app]; each header has exactly one owner",
        id="two-owners",
    ),
    pytest.param(
        "staging",
        AT0 + '[app]\n"strict-transport-security" = "max-age=banana"\n',
        "app.strict-transport-security: max-age=banana is not a whole number of seconds: use "
        f"digits only, like max-age=86400; {UNDO}",
        id="hsts-not-hsts",
    ),
    pytest.param(
        "staging",
        AT0_APP + '"x-frame-options" = "ALLOWALL"\n',
        f"app.x-frame-options: X-Frame-Options 'ALLOWALL' is not DENY or SAMEORIGIN; {UNDO}",
        id="value-against-its-grammar",
    ),
    pytest.param(
        "staging",
        AT0 + '[app]\n"strict-transport-security" = "max-age=31536000"\n',
        "app.strict-transport-security: 'max-age=31536000' is not stage 0 (hsts-30s)'s value: "
        f"max-age is 31536000, the stage wants 30; {UNDO_LADDER}",
        id="hsts-skips-the-ladder",
    ),
    pytest.param(
        "staging",
        AT0 + '[app]\n"strict-transport-security" = "max-age=30; includeSubDomains"\n',
        "app.strict-transport-security: 'max-age=30; includeSubDomains' is not stage 0 "
        "(hsts-30s)'s value: includeSubDomains is present, the stage does not want it; "
        + UNDO_LADDER,
        id="hsts-subdomains-early",
    ),
    pytest.param(
        "staging",
        AT0 + '[app]\n"x-frame-options" = "DENY"\n',
        "app.strict-transport-security: missing; stage 0 (hsts-30s) sends 'max-age=30'; "
        + UNDO_LADDER,
        id="hsts-missing",
    ),
    pytest.param(
        "staging",
        AT0_APP + '"content-security-policy" = "default-src \'self\'"\n',
        "app.content-security-policy: stage 0 (hsts-30s) sends CSP report-only, as "
        f"content-security-policy-report-only; {UNDO_LADDER}",
        id="csp-enforced-early",
    ),
    pytest.param(
        "staging",
        AT0_APP
        + '"content-security-policy-report-only" = "default-src \'self\'"\n'
        + '"content-security-policy" = "default-src \'self\'"\n',
        "app.content-security-policy-report-only: also content-security-policy; CSP is sent "
        "in one mode",
        id="csp-both-modes",
    ),
    pytest.param(
        "staging",
        AT0_APP + '[edge]\n"x-frame-options" = "DENY"\n',
        "edge.x-frame-options: the plan gives this header to the app (see "
        f"environments.staging.edge); undo the edit to this file or to the plan, or {AGAIN}",
        id="edge-header-the-app-owns",
    ),
    pytest.param(
        "staging",
        'environment = "staging"\nstage = "off"\n[app]\n"x-frame-options" = "DENY"\n',
        f"app.x-frame-options: stage off sends no app-owned headers; {UNDO}",
        id="off-with-app-headers",
    ),
    pytest.param(
        "production",
        PROD0 + '[app]\n"strict-transport-security" = "max-age=30"\n',
        "app.strict-transport-security: the plan gives this header to the edge (see "
        f"environments.production.edge); undo the edit to this file or to the plan, or {AGAIN}",
        id="app-header-the-edge-owns",
    ),
    pytest.param(
        "production",
        PROD0 + '[edge]\n"strict-transport-security" = "max-age=5"\n',
        f"edge.strict-transport-security: 'max-age=5' is no stage's value; {UNDO_LADDER}",
        id="edge-hsts-off-the-ladder",
    ),
    pytest.param(
        "production",
        PROD0 + '[edge]\n"strict-transport-security" = "max-age=30; max-age=30"\n',
        "edge.strict-transport-security: directive max-age appears more than once, so browsers "
        f"ignore the whole header: keep one; {UNDO}",
        id="edge-hsts-invalid",
    ),
    pytest.param(
        "production",
        PROD0 + '[edge]\n"x-content-type-options" = "nosniff"\n',
        "edge.strict-transport-security: missing; stage 0 (hsts-30s) sends 'max-age=30'; "
        + UNDO_LADDER,
        id="edge-hsts-missing",
    ),
]


@pytest.mark.parametrize(("env_name", "content", "message"), BAD_SETTINGS)
def test_bad_settings_file_is_refused(
    write_plan: Callable[..., Path],
    rollout: Callable[..., Result],
    env_name: str,
    content: str,
    message: str,
) -> None:
    """A corrupt or hand-edited stages/<env>.toml exits 2 with one line naming file and key."""
    plan = write_plan()
    settings = plan.parent / f"{env_name}.toml"
    settings.write_text(content)
    before = snapshot(plan.parent)
    result = rollout("status", env_name, "--plan", str(plan))
    assert result.code == 2
    if message.endswith(": "):  # the TOML parser's own words follow
        assert result.err.startswith(f"rollout: {settings}: {message}")
        assert result.err.count("\n") == 1
    else:
        assert result.err == f"rollout: {settings}: {message}\n"
    assert "Traceback" not in result.out + result.err
    assert snapshot(plan.parent) == before


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["verify", "staging"], id="verify"),
        pytest.param(["render", "staging", "--format", "headers"], id="render"),
        pytest.param(["status"], id="status-all"),
    ],
)
def test_hand_edited_stage_is_never_verified(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], command: list[str]
) -> None:
    """A stage file claiming a later stage's HSTS is refused before verify probes or records."""
    plan = write_plan()
    settings = plan.parent / "staging.toml"
    settings.write_text(AT0 + '[app]\n"strict-transport-security" = "max-age=31536000"\n')
    before = snapshot(plan.parent)
    result = rollout(*command, "--plan", str(plan))
    refused(
        result,
        f"{settings}: app.strict-transport-security: 'max-age=31536000' is not stage 0 "
        f"(hsts-30s)'s value: max-age is 31536000, the stage wants 30; {UNDO_LADDER}",
    )
    assert snapshot(plan.parent) == before


def test_history_that_cannot_be_appended_is_refused(
    write_plan: Callable[..., Path], rollout: Callable[..., Result]
) -> None:
    """A verify that cannot record its result prints the report and names the file; the
    failed probes keep their exit 1 (the history trouble must not hide them)."""
    plan = write_plan()
    history = plan.parent / "staging.history.jsonl"
    history.mkdir()
    before = snapshot(plan.parent)
    # Port 1 on loopback refuses at once: the checks fail and verify goes on to record that.
    result = rollout(
        "verify",
        "staging",
        "--plan",
        str(plan),
        "--connect-to",
        "staging.example.test:443:127.0.0.1:1",
        "--timeout",
        "5",
    )
    assert result.code == 1
    assert result.err.endswith(f"\nrollout: {history}: cannot append: Is a directory\n")
    assert "Traceback" not in result.out + result.err
    # The lock file is made once and never removed (the kernel lock lives on it).
    assert snapshot(plan.parent) == {**before, "staging.lock": b""}
    assert list(history.iterdir()) == []


def test_corrupt_history_line_is_refused(
    write_plan: Callable[..., Path], rollout: Callable[..., Result]
) -> None:
    """A history line that is not JSON is refused with the file and line number."""
    plan = write_plan()
    history = plan.parent / "staging.history.jsonl"
    history.write_text(
        '{"time": "2026-01-01T00:00:00Z", "action": "verify", "from": 0, "to": 0}\n{oops\n{}\n'
    )
    # (A line cut short by a crash mid-append, '{"time": "2026-...', would be skipped.)
    before = snapshot(plan.parent)
    result = rollout("history", "staging", "--plan", str(plan))
    refused(result, f"{history}:2: not a JSON object; this file is written by rollout only")
    assert snapshot(plan.parent) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--resolve", "a.example.test:443"],
            "--resolve: 'a.example.test:443' is not HOST:PORT:ADDR (as curl --resolve)",
            id="flag-resolve",
        ),
        pytest.param(
            ["--connect-to", "a.example.test:443:127.0.0.1:0"],
            "--connect-to: port '0' is not a port from 1 to 65535",
            id="flag-connect-to",
        ),
        pytest.param(
            ["--cacert", "/nonexistent/ca.pem"],
            "--cacert: '/nonexistent/ca.pem' is not a file",
            id="flag-cacert",
        ),
    ],
)
def test_bad_flag_is_refused(
    write_plan: Callable[..., Path],
    rollout: Callable[..., Result],
    args: list[str],
    message: str,
) -> None:
    """A bad --resolve, --connect-to or --cacert exits 2 naming the flag."""
    plan = write_plan()
    before = snapshot(plan.parent)
    refused(rollout("plan", "staging", "--plan", str(plan), *args), message)
    assert snapshot(plan.parent) == before


@pytest.mark.parametrize("command", ["status", "plan", "history"])
def test_unknown_environment_is_refused(
    write_plan: Callable[..., Path], rollout: Callable[..., Result], command: str
) -> None:
    """Naming an environment the plan lacks lists the ones it has."""
    plan = write_plan()
    result = rollout(command, "qa", "--plan", str(plan))
    refused(result, f"{plan}: environments: no environment 'qa' (the plan has staging, production)")
