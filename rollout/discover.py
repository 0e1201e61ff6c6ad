"""`rollout init`'s survey: probe a live site and judge which layer sends each header.

Four probes, made the way verify makes them (aiohttp, curl-like routing, nothing followed
across origins): the page, a 404 on an unguessable path of its origin, the origin's
`http://` URL, and, when the user names it, the app's own address behind the proxy.

Who sends a header cannot be seen in a response, only inferred from where it appears.
The rules, first match wins (`owner_of`):

1. The app's own answer (`--app-url`) settles it: there, the app sent it; absent there,
   something on the way added it. Over plain http the app sends no HSTS (a browser would
   ignore it), so HSTS falls through to the rules below.
2. On the http:// redirect: the edge. A proxy that terminates TLS answers plain http
   itself; the app never sees that request.
3. On the 404 but not on the page: the edge. An app middleware stamps every response; a
   proxy rule can be lost where a location has rules of its own (nginx forgets the
   server's `add_header` lines in a location with its own).
4. On the page but not on the 404: the edge, likely. nginx's `add_header` without
   `always` skips 4xx and 5xx answers; app middlewares stamp errors too.
5. On both alike: either layer could be sending it. Assumed the app's, the owner rollout
   starts from, and said to be a guess.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urljoin

from rollout.names import CSP, CSP_RO, HSTS, NOSNIFF, PERMISSIONS, REFERRER, XFO
from rollout.probe import ProbeOptions, Prober, Result, origin_of
from rollout.verify import not_found_path, origin_url

__all__ = ["SECURITY_HEADERS", "Observation", "Survey", "observe", "proxies", "survey"]

# What init looks for, in the order it reports them.
SECURITY_HEADERS = (HSTS, CSP, CSP_RO, PERMISSIONS, REFERRER, XFO, NOSNIFF)

Owner = Literal["app", "edge"]
# seen: the app's own answer showed it; likely: a rule above; assumed: rule 5.
Confidence = Literal["seen", "likely", "assumed"]

# Response headers that name a proxy or CDN in front of the app, and what they say.
_PROXY_MARKS = (
    ("cf-ray", "Cloudflare"),
    ("x-amz-cf-id", "Amazon CloudFront"),
    ("x-served-by", "Fastly or another Varnish-based CDN"),
    ("via", "a proxy (Via)"),
)
_PROXY_SERVERS = ("nginx", "apache", "cloudflare", "cloudfront", "varnish", "envoy", "caddy")


@dataclass(frozen=True)
class Survey:
    """What the site answered to each probe."""

    url: str  # the page as given
    page: Result  # its final answer after same-origin redirects
    chain: tuple[Result, ...]  # every hop, the final answer last
    not_found: Result
    http: Result
    app_page: Result | None = None
    app_not_found: Result | None = None
    moved_from: str | None = None  # the URL given, when it redirected to another origin

    @property
    def final_url(self) -> str:
        """The URL that answered the page (after same-origin redirects)."""
        return self.page.url

    @property
    def redirected_to(self) -> str | None:
        """Where the page redirects to on another origin, if it does."""
        return self.page.location

    def redirects_to_https(self) -> bool:
        """Whether http:// on the page's host answers with a redirect to https:// there."""
        target = self.http.location
        if not self.http.ok or target is None:
            return False
        return origin_of(target)[:2] == ("https", origin_of(self.page.url)[1])


@dataclass(frozen=True)
class Observation:
    """One security header the site sends: its values, its likely owner and why."""

    header: str
    values: tuple[str, ...]  # as sent on the page, else on the 404
    owner: Owner
    confidence: Confidence
    why: str
    notes: tuple[str, ...] = ()


async def survey(url: str, options: ProbeOptions, *, app_url: str | None = None) -> Survey:
    """Probe the page, a 404, the http:// origin and the app's own address; never raises
    for network trouble (a faulted Result says what went wrong).

    A page that redirects to another https origin (example.test to www.example.test) is
    surveyed where it lands, once: that is the page browsers show.
    """
    first = await _survey(url, options, app_url)
    target = first.redirected_to
    if target is None or not target.lower().startswith("https://"):
        return first
    moved = await _survey(target, options, app_url)
    return replace(moved, moved_from=url)


async def _survey(url: str, options: ProbeOptions, app_url: str | None) -> Survey:
    base = origin_url(url)
    host = origin_of(url)[1]
    missing = f"{base}/{not_found_path(secrets.token_hex(16))}"
    http_url = f"http://{f'[{host}]' if ':' in host else host}/"
    async with Prober(options) as prober:
        jobs = [prober.chain(url), prober.fetch(missing), prober.fetch(http_url)]
        if app_url is not None:
            app_missing = urljoin(app_url, f"/{not_found_path(secrets.token_hex(16))}")
            jobs += [prober.chain(app_url), prober.fetch(app_missing)]
        chain, not_found, http, *app = await asyncio.gather(*jobs)
    assert isinstance(chain, list) and isinstance(not_found, Result)
    assert isinstance(http, Result)
    app_page = app_nf = None
    if app:
        assert isinstance(app[0], list) and isinstance(app[1], Result)
        app_page, app_nf = app[0][-1], app[1]
    return Survey(url, chain[-1], tuple(chain), not_found, http, app_page, app_nf)


def observe(s: Survey) -> list[Observation]:
    """Every security header the site sends, with its owner by the module's rules."""
    found = []
    for name in SECURITY_HEADERS:
        page = s.page.get_all(name)
        nf = s.not_found.get_all(name) if s.not_found.ok else []
        redirect = s.http.get_all(name) if s.redirects_to_https() else []
        if not (page or nf or redirect):
            continue
        owner, confidence, why = owner_of(name, s, page=bool(page), nf=bool(nf))
        notes = []
        if len(page) > 1:
            notes.append(
                f"sent {len(page)} times on the page: two layers add it (header.E002); "
                "keep the owner's copy only"
            )
        if page and s.not_found.ok and not nf:
            notes.append(
                "missing on the 404 (header.E001 on the 404 probe): send it on every status"
            )
        if nf and not page:
            notes.append("missing on the page: the page's own rules drop it")
        values = tuple(page or nf or redirect)
        found.append(Observation(name, values, owner, confidence, why, tuple(notes)))
    return found


def owner_of(name: str, s: Survey, *, page: bool, nf: bool) -> tuple[Owner, Confidence, str]:
    """Which layer likely sends `name`, how sure that is, and the evidence in one line."""
    app = [r for r in (s.app_page, s.app_not_found) if r is not None and r.ok]
    app_over_https = any(r.url.lower().startswith("https:") for r in app)
    if app and (name != HSTS or app_over_https):
        if any(r.get_all(name) for r in app):
            return "app", "seen", "the app sends it itself (seen on its own address)"
        return "edge", "seen", "the app's own answer lacks it: a layer on the way adds it"
    if s.redirects_to_https() and s.http.get_all(name):
        return (
            "edge",
            "likely",
            ("on the http:// redirect, which the TLS-terminating proxy answers without the app"),
        )
    if s.not_found.ok and nf and not page:
        return (
            "edge",
            "likely",
            (
                "on the 404 but not on the page: a proxy rule the page's location overrides "
                "(an app middleware would stamp both)"
            ),
        )
    if s.not_found.ok and page and not nf:
        return (
            "edge",
            "likely",
            (
                "on the page but not on the 404: nginx add_header without `always` skips error "
                "answers (an app middleware stamps them too)"
            ),
        )
    if app and name == HSTS:
        return (
            "app",
            "assumed",
            (
                "on the page and the 404 alike; the app's own address is plain http, where no "
                "HSTS is sent, so it cannot tell: assumed the app"
            ),
        )
    return (
        "app",
        "assumed",
        (
            "on the page and the 404 alike: either layer could send it; assumed the app "
            "(pass --app-url to tell)"
        ),
    )


def proxies(s: Survey) -> list[str]:
    """What the responses say about a proxy or CDN in front of the app, one phrase each."""
    seen: list[str] = []
    responses: Sequence[Result] = [r for r in (s.page, s.not_found, s.http) if r.ok]
    for header, who in _PROXY_MARKS:
        if any(r.get_all(header) for r in responses) and who not in seen:
            seen.append(who)
    for r in responses:
        for server in r.get_all("server"):
            if any(p in server.lower() for p in _PROXY_SERVERS):
                phrase = f"Server: {server}"
                if phrase not in seen:
                    seen.append(phrase)
    return seen
