"""A real browser: headless Chromium loads the demo site over TLS, its reports reach the
app's endpoint, the gate holds; after the plan allows what was reported, the next soak is
clean and the gate opens.

Chromium (Debian's `chromium` and `chromium-driver`) is driven with selenium. Where the
site's certificate is concerned it trusts only that certificate's key
(`--ignore-certificate-errors-spki-list`); `--host-resolver-rules` sends the site's name
and port 443 to the loopback edge, so the pages have the origin the plan names. Chromium
batches Reporting API reports for about a minute: `--short-reporting-delay` makes it send
them within a second, which is what lets this test wait on them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rollout.demo.servers import LocalEnvironment, start
from rollout.plan import load_plan
from rollout.store import read_settings
from tests.conftest import Result
from tests.reports.support import need

pytestmark = pytest.mark.integration

ENV = "staging"
HOST = "shop.demo.test"
CDN = "https://cdn.demo.test"
INLINE = 'document.title="rollout"'
HEAD = f'<script src="{CDN}/widget.js"></script><script>{INLINE}</script>'
CSP = "default-src 'self'; script-src 'self' 'report-sample'; object-src 'none'"
# Route-set policies (the middleware never replaces a header a route set): one with
# report-uri only, which Chromium sends in the legacy format, and one with report-to only,
# whose report shows that Chromium's Reporting API queue has been sent out.
LEGACY = "img-src 'none'; report-uri /csp-report"
SENTINEL = "img-src 'none'; report-to rollout-csp"
WAIT = 30.0  # seconds: a report normally arrives within one


def chromium_paths() -> tuple[str, str]:
    """Chromium and its driver; skip (fail under CI=true) where they are absent."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
    )
    need("Chromium", browser, "apt-get install -y chromium")
    need("chromedriver", driver, "apt-get install -y chromium-driver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        need("selenium", False, "pip install 'rollout[test]'")
    assert browser is not None and driver is not None
    return browser, driver


async def site(scope: Any, receive: Any, send: Any) -> None:
    """The pages: / and /account load a CDN script and an inline one; /legacy and
    /sentinel carry their own report-only policy and an image it blocks."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    if path in ("/", "/account"):
        body = f"<!doctype html><title>page</title>{HEAD}<p>{path}</p>"
    elif path in ("/legacy", "/sentinel"):
        policy = LEGACY if path == "/legacy" else SENTINEL
        headers.append((b"content-security-policy-report-only", policy.encode()))
        body = '<!doctype html><title>marker</title><img src="/pixel.png">'
    else:
        body, headers = "not found", [(b"content-type", b"text/plain")]
    status = 200 if headers[0][1].startswith(b"text/html") else 404
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})


def spki_pin(local: LocalEnvironment) -> str:
    """base64 SHA-256 of the edge certificate's public key, as Chromium's flag wants it."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    context = ssl.create_default_context(cafile=str(local.ca_path))
    with (
        socket.create_connection(("127.0.0.1", local.https_port)) as raw,
        context.wrap_socket(raw, server_hostname=local.host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    key = x509.load_der_x509_certificate(der).public_key()
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalEnvironment]:
    """The demo's servers with the test site behind the TLS edge."""
    folder = tmp_path / "stages"
    env = start(folder, folder / f"{ENV}.toml", {}, host=HOST, subdomain=f"api.{HOST}", site=site)
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture
def browser(local: LocalEnvironment) -> Iterator[Any]:
    """Headless Chromium with an empty profile, reaching the site by its name."""
    path, driver_path = chromium_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = path
    profile = tempfile.mkdtemp(prefix="rollout-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--ignore-certificate-errors-spki-list={spki_pin(local)}",
        f"--host-resolver-rules=MAP {HOST}:443 127.0.0.1:{local.https_port}, "
        "MAP cdn.demo.test 127.0.0.1",
        "--short-reporting-delay",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(local: LocalEnvironment, key: str, at_least: int) -> None:
    """Poll the endpoint's answers until `key` reached `at_least` (or WAIT passed)."""
    deadline = time.monotonic() + WAIT
    while local.report_stats().get(key, 0) < at_least:
        assert time.monotonic() < deadline, f"{key}: {local.report_stats()}"
        time.sleep(0.1)
    assert local.flush_reports()


def test_chromium_reports_hold_the_gate_until_the_plan_allows_them(
    local: LocalEnvironment, browser: Any, rollout: Callable[..., Result]
) -> None:
    """Chromium's reports of a report-only policy (Reporting API and legacy) land in the
    store and hold the gate; with the CDN and the advised hash in the plan, the next soak
    is clean, the gate opens, and the enforcing policy blocks nothing on the page."""
    folder = local.folder
    connect = ", ".join(json.dumps(c) for c in local.connect_to())

    def plan(csp: str) -> None:
        (folder / "plan.toml").write_text(
            f'[policy]\ncontent-security-policy = "{csp}"\ncsp-report-uri = "/csp-report"\n'
            "[ladder]\nhsts = [30, 300, 604800]\ncsp-enforce-from = 604800\n"
            f'[environments.{ENV}]\nurls = ["https://{HOST}/"]\nsubdomains = ["api.{HOST}"]\n'
            f'connect-to = [{connect}]\ncacert = "ca.pem"\nsoak = "0s"\ncsp-violations = 0\n'
        )

    def run(*args: str) -> Result:
        return rollout("--plan", str(folder / "plan.toml"), *args)

    plan(CSP)
    for _ in range(2):
        assert run("advance", ENV, "--settle", "5").code == 0

    browser.get(f"https://{HOST}/account")
    assert browser.title == "rollout"  # report-only: the inline script ran
    wait_for(local, "application/reports+json", 2)
    browser.get(f"https://{HOST}/legacy")
    wait_for(local, "application/csp-report", 1)

    found = json.loads(run("reports", ENV, "--json").out)
    got = {(v["directive"], v["blocked"], v["document"]) for v in found["violations"]}
    assert got == {
        ("script-src-elem", CDN, "/account"),
        ("script-src-elem", "inline", "/account"),
    }  # the /legacy page's own policy is another policy: kept apart
    assert found["page_views"] == 1
    inline = next(v for v in found["violations"] if v["blocked"] == "inline")
    assert inline["sample"] == INLINE
    digest = base64.b64encode(hashlib.sha256(INLINE.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in inline["advice"]

    held = run("advance", ENV, "--settle", "5")
    assert held.code == 1
    assert "gate csp-reports: 2 distinct violations" in held.out

    # The fix, as the advice says: the CDN and the inline script's hash.
    plan(CSP.replace("'report-sample'", f"'report-sample' {CDN} 'sha256-{digest}'"))
    assert run("advance", ENV, "--settle", "5").code == 0  # sent report-only: a new soak
    before = local.report_stats().get("application/reports+json", 0)
    browser.get(f"https://{HOST}/account")
    browser.get(f"https://{HOST}/sentinel")
    wait_for(local, "application/reports+json", before + 1)  # the sentinel's report only
    clean = json.loads(run("reports", ENV, "--json").out)
    assert (clean["violations"], clean["page_views"], clean["ok"]) == ([], 1, True)

    opened = run("advance", ENV, "--settle", "5")
    assert opened.code == 0, opened.out
    assert "✓ csp-reports  0 distinct violations" in opened.out
    settings = read_settings(load_plan(folder / "plan.toml"), ENV)
    assert settings is not None and settings.stage == 2
    assert CDN in settings.app["content-security-policy"]

    browser.get(f"https://{HOST}/account")  # enforcing now: the inline script still runs
    assert browser.title == "rollout"
