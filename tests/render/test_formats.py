"""The renderers: headers, json, nginx, apache and django text for a stage."""

from __future__ import annotations

import json
import re

import pytest

from rollout.errors import InputError
from rollout.render import render
from rollout.render.apache import quote as apache_quote
from rollout.render.nginx import quote as nginx_quote
from rollout.settings import StageSettings

CSP_RO = "default-src 'self'; object-src 'none'; report-uri https://csp.example.test/r"
STAGE = StageSettings(
    environment="production",
    stage=1,
    name="hsts-5m",
    app={
        "content-security-policy-report-only": CSP_RO,
        "permissions-policy": "geolocation=(), camera=()",
        "referrer-policy": "strict-origin-when-cross-origin",
        "x-frame-options": "DENY",
    },
    edge={"strict-transport-security": "max-age=300", "x-content-type-options": "nosniff"},
)
ALL_APP = StageSettings(
    environment="staging",
    stage=7,
    name="preload",
    app={
        "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
        "content-security-policy": "default-src 'self'; upgrade-insecure-requests",
        "permissions-policy": "geolocation=()",
        "referrer-policy": "no-referrer",
        "x-frame-options": "deny",
        "x-content-type-options": "nosniff",
    },
)
OFF = StageSettings("production", None, "off", {}, {"x-content-type-options": "nosniff"})


def django_settings(text: str) -> dict[str, object]:
    """The settings a rendered Django fragment defines when appended to settings.py."""
    namespace: dict[str, object] = {}
    exec(compile(text, "settings.py", "exec"), namespace)
    return {k: v for k, v in namespace.items() if k.isupper()}


def test_headers_marks_each_owner() -> None:
    """Each header is a `Name: value` line marked with the layer that owns it."""
    lines = render(STAGE, "headers").splitlines()
    assert lines[0] == "# production, stage 1 (hsts-5m)"
    assert "Strict-Transport-Security: max-age=300" in lines[-2]
    assert lines[-2].endswith("   # edge")
    assert "X-Frame-Options: DENY" in lines[4] and lines[4].endswith("# app")
    short = StageSettings("p", 1, "hsts-5m", {}, {"strict-transport-security": "max-age=300"})
    assert render(short, "headers").splitlines()[1] == (
        "Strict-Transport-Security: max-age=300   # edge"
    )


def test_json_is_the_stage_file_content() -> None:
    """The json format holds the stage, its name and both header tables."""
    doc = json.loads(render(OFF, "json"))
    assert doc == {
        "environment": "production",
        "stage": "off",
        "name": "off",
        "updated": "",
        "app": {},
        "edge": {"x-content-type-options": "nosniff"},
    }


def test_nginx_adds_every_edge_header_always_and_hides_the_app_copy() -> None:
    """Each edge-owned header gets `add_header ... always;` and a `proxy_hide_header`."""
    text = render(STAGE, "nginx")
    directives = [line for line in text.splitlines() if not line.startswith("#")]
    assert directives == [
        "proxy_hide_header Strict-Transport-Security;",
        'add_header Strict-Transport-Security "max-age=300" always;',
        "proxy_hide_header X-Content-Type-Options;",
        'add_header X-Content-Type-Options "nosniff" always;',
    ]
    assert "location" in text and "drops every header" in text  # the inheritance trap


def test_nginx_never_renders_app_owned_headers() -> None:
    """App-owned headers stay with the app."""
    assert "Content-Security-Policy" not in render(STAGE, "nginx")


def test_nginx_quoting() -> None:
    """Quotes and backslashes are escaped; `$` goes through a variable with its geo hint."""
    assert nginx_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert nginx_quote("x$y") == '"x${rollout_dollar}y"'
    odd = StageSettings("p", 1, "n", {}, {"x-odd": "https://a.test/$x"})
    assert 'geo $rollout_dollar { default "$"; }' in render(odd, "nginx")


def apache_unquote(text: str) -> str:
    """What Apache's config parser then mod_headers make of a rendered value (2.4 rules)."""
    assert text[0] == text[-1] == '"'
    conf = re.sub(r'\\([\\"])', r"\1", text[1:-1])  # ap_getword_conf inside quotes
    out, i = [], 0
    while i < len(conf):  # mod_headers: %% and backslash escapes
        pair = conf[i : i + 2]
        if pair in ("%%", "\\\\"):
            out.append(pair[0])
            i += 2
        else:
            assert conf[i] != "%" and pair not in ("\\n", "\\t", "\\r"), conf
            out.append(conf[i])
            i += 1
    return "".join(out)


@pytest.mark.parametrize("value", ['a"b', "back\\slash", "100%", "x\\ny", "'self' %{HOME}e"])
def test_apache_quoting_round_trips(value: str) -> None:
    """A value with quotes, backslashes or `%` reaches the response unchanged."""
    assert apache_unquote(apache_quote(value)) == value


def test_apache_unsets_the_onsuccess_copy_and_sets_always() -> None:
    """Each edge header is unset from the onsuccess table and set in the always table."""
    directives = [ln for ln in render(STAGE, "apache").splitlines() if not ln.startswith("#")]
    assert directives == [
        "Header onsuccess unset Strict-Transport-Security",
        'Header always set Strict-Transport-Security "max-age=300"',
        "Header onsuccess unset X-Content-Type-Options",
        'Header always set X-Content-Type-Options "nosniff"',
    ]
    assert "onsuccess" in render(STAGE, "apache").split("Header onsuccess")[0]  # the trap


def test_django6_maps_every_app_header_onto_settings() -> None:
    """Django 6 gets HSTS, nosniff, referrer, framing and CSP as its own settings."""
    s = django_settings(render(ALL_APP, "django", django=6))
    assert s["SECURE_HSTS_SECONDS"] == 31536000
    assert s["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert s["SECURE_HSTS_PRELOAD"] is True
    assert s["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert s["SECURE_REFERRER_POLICY"] == "no-referrer"
    assert s["X_FRAME_OPTIONS"] == "DENY"
    assert s["SECURE_SSL_REDIRECT"] is True
    assert s["SECURE_CSP"] == {"default-src": ["'self'"], "upgrade-insecure-requests": True}
    assert s["SECURE_CSP_REPORT_ONLY"] == {}
    assert s["ROLLOUT_SETTINGS"] == "stages/staging.toml"


def test_django6_report_only_stage() -> None:
    """A report-only stage fills SECURE_CSP_REPORT_ONLY and leaves SECURE_CSP empty."""
    s = django_settings(render(STAGE, "django", django=6))
    assert s["SECURE_CSP"] == {}
    assert s["SECURE_CSP_REPORT_ONLY"] == {
        "default-src": ["'self'"],
        "object-src": ["'none'"],
        "report-uri": ["https://csp.example.test/r"],
    }


def test_django5_leaves_csp_to_the_middleware() -> None:
    """Django 5 has no CSP settings: CSP and Permissions-Policy go through ROLLOUT_SETTINGS."""
    text = render(STAGE, "django", django=5)
    s = django_settings(text)
    assert "SECURE_CSP" not in s and "SECURE_CSP_REPORT_ONLY" not in s
    assert "Content-Security-Policy-Report-Only, Permissions-Policy" in text


def test_django_only_gets_app_owned_headers() -> None:
    """Edge-owned HSTS and nosniff are switched off in Django, never duplicated there."""
    s = django_settings(render(STAGE, "django", django=6))
    assert s["SECURE_HSTS_SECONDS"] == 0
    assert s["SECURE_CONTENT_TYPE_NOSNIFF"] is False


def test_django_values_are_python_literals() -> None:
    """Quotes and backslashes in values survive as exact Python strings."""
    odd = StageSettings("s", 1, "n", {"referrer-policy": "no-referrer'\"\\x"})
    assert django_settings(render(odd, "django"))["SECURE_REFERRER_POLICY"] == "no-referrer'\"\\x"


def test_django_stage_off_sends_nothing() -> None:
    """Stage off renders no HSTS and no app headers."""
    s = django_settings(render(OFF, "django"))
    assert s["SECURE_HSTS_SECONDS"] == 0
    assert s["SECURE_REFERRER_POLICY"] is None


def test_unknown_format_or_django_version_is_input_error() -> None:
    """A format or Django version that does not exist is refused as bad input."""
    with pytest.raises(InputError, match="--format"):
        render(STAGE, "caddy")
    with pytest.raises(InputError, match="--django"):
        render(STAGE, "django", django=4)


def test_nginx_names_the_hide_directive_for_other_upstreams() -> None:
    """The snippet tells apps behind fastcgi/uwsgi/scgi/grpc which hide directive they need."""
    text = render(STAGE, "nginx")
    for kind in ("fastcgi", "uwsgi", "scgi", "grpc"):
        assert f"{kind}_pass" in text and f"{kind}_hide_header" in text
