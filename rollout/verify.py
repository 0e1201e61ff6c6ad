"""Probe an environment's live servers and judge them against a stage: a Report of checks.

Probes, per DESIGN.md: every page URL (same-origin redirects followed up to 5 hops), a 404
probe on an unguessable path per origin, an http:// probe per origin, and subdomain probes
from the first includeSubDomains stage on. Every check made is kept, passed ones too, so a
report says what was looked at; a check that could not be made fails.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from rollout import checks
from rollout.addresses import ConnectTo, Resolve
from rollout.checks import Check, Probe
from rollout.errors import HeaderValueError
from rollout.headers import hsts as hsts_grammar
from rollout.names import HSTS, OFF
from rollout.probe import (
    Fault,
    ProbeOptions,
    Prober,
    Result,
    origin_of,
    run,
)
from rollout.settings import StageSettings

__all__ = ["Check", "ProbeOptions", "Report", "verify", "verify_async"]


class EnvironmentLike(Protocol):
    """What verify needs of a plan environment (rollout.plan.Environment has it all)."""

    @property
    def name(self) -> str: ...
    @property
    def urls(self) -> Sequence[str]: ...
    @property
    def subdomains(self) -> Sequence[str]: ...
    @property
    def connect_to(self) -> Sequence[ConnectTo]: ...
    @property
    def resolve(self) -> Sequence[Resolve]: ...
    @property
    def cacert(self) -> Path | None: ...


@dataclass(frozen=True)
class Report:
    """The outcome of one verify: every check made, and whether all errors passed."""

    environment: str
    stage: int | None
    checks: list[Check] = field(default_factory=list)
    insecure: bool = False  # certificates were not checked (--insecure)
    options: ProbeOptions = field(default_factory=ProbeOptions)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not any(c.failed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.severity == "warning"]

    def to_json(self) -> dict[str, object]:
        """DESIGN.md's object: environment, stage (number or "off"), ok, every check."""
        return {
            "environment": self.environment,
            "stage": OFF if self.stage is None else self.stage,
            "ok": self.ok,
            # Not in DESIGN.md's object: without certificate checks a pass proves less,
            # and a script reading only the JSON must be able to tell.
            "insecure": self.insecure,
            "checks": [c.to_json(self.environment) for c in self.checks],
        }


def verify(
    env: EnvironmentLike,
    expected: StageSettings,
    *,
    options: ProbeOptions | None = None,
    subdomains: bool = False,
    partial: bool = False,
) -> Report:
    """Probe env's servers and judge them against expected; never raises for network faults.

    `partial`: expected holds only part of the stage (revert's app-owned headers), so a
    ladder header it leaves out is not reported as another layer's (header.E004).
    """
    return run(
        verify_async(env, expected, options=options, subdomains=subdomains, partial=partial),
        options,
    )


async def verify_async(
    env: EnvironmentLike,
    expected: StageSettings,
    *,
    options: ProbeOptions | None = None,
    subdomains: bool = False,
    partial: bool = False,
) -> Report:
    """The async form of `verify`, for callers that already run an event loop."""
    opts = probe_options(env, options or ProbeOptions())
    report = Report(env.name, expected.stage, insecure=opts.insecure, options=opts)
    if not env.urls:
        report.checks.append(
            checks.check(
                checks.NOTHING_TO_CHECK,
                "page",
                None,
                ok=False,
                message=f"environment {env.name} lists no urls to probe",
            )
        )
        return report
    want = _Want(_expected_headers(expected), stray=not partial)
    origins = list(dict.fromkeys(origin_url(u) for u in env.urls))
    token = secrets.token_hex(16)
    async with Prober(opts) as prober:
        jobs: list[asyncio.Future[list[Check]]] = []
        for url in env.urls:
            jobs.append(asyncio.ensure_future(_page(prober, url, want)))
        for base in origins:
            jobs.append(
                asyncio.ensure_future(_not_found(prober, f"{base}/{not_found_path(token)}", want))
            )
            jobs.append(asyncio.ensure_future(_http(prober, base, "http")))
        if subdomains or _include_subdomains(expected):
            if not env.subdomains:
                report.checks.append(
                    checks.check(
                        checks.NO_SUBDOMAINS,
                        "subdomain",
                        None,
                        ok=False,
                        message="includeSubDomains is on and no subdomain is listed to check",
                    )
                )
            for sub in env.subdomains:
                jobs.append(asyncio.ensure_future(_subdomain(prober, sub)))
        for batch in await asyncio.gather(*jobs):
            report.checks.extend(batch)
    return report


def probe_options(env: EnvironmentLike, options: ProbeOptions) -> ProbeOptions:
    """options with the environment's connect-to, resolve and cacert added."""
    return replace(
        options,
        connect_to=(*options.connect_to, *env.connect_to),
        resolve=(*options.resolve, *env.resolve),
        cacert=options.cacert or env.cacert,
    )


def _expected_headers(expected: StageSettings) -> dict[str, str]:
    # At stage off the app sends nothing (its table is empty) unless a revert cleared
    # HSTS, which it then sends as max-age=0.
    return {name.lower(): value for name, value in expected.headers().items()}


def _include_subdomains(expected: StageSettings) -> bool:
    value = expected.headers().get(HSTS)
    if value is None:
        return False
    try:
        return hsts_grammar.parse(value).include_subdomains
    except HeaderValueError:
        return False


def origin_url(url: str) -> str:
    """scheme://host[:port] of a URL, the default port left out."""
    scheme, host, port = origin_of(url)
    default = 443 if scheme == "https" else 80
    name = f"[{host}]" if ":" in host else host
    return f"{scheme}://{name}" + ("" if port == default else f":{port}")


def not_found_path(token: str) -> str:
    # Unguessable, so no real route or cache entry can answer it; named so logs explain it.
    return f"rollout-404-probe-{token}"


@dataclass(frozen=True)
class _Want:
    """The headers every response must carry, and whether a ladder header beyond them
    is another layer's (it is not when they are only part of the stage)."""

    headers: Mapping[str, str]
    stray: bool = True


def _judge(probe: Probe, result: Result, want: _Want) -> list[Check]:
    found = [
        checks.expected_header(probe, result, name, value) for name, value in want.headers.items()
    ]
    found += checks.unwanted(probe, result, want.headers, stray=want.stray)
    found += checks.warnings(probe, result, want.headers)
    return found


async def _page(prober: Prober, url: str, want: _Want) -> list[Check]:
    chain = await prober.chain(url)
    found: list[Check] = []
    hsts = {HSTS: want.headers[HSTS]} if HSTS in want.headers else {}
    for hop in chain[:-1]:
        # Each https hop must carry HSTS: a browser may first meet the site through it,
        # and it keeps whatever HSTS the hop sends. Nothing else of the stage is needed on
        # a redirect.
        if hsts and hop.url.lower().startswith("https:"):
            found.append(checks.expected_header("page", hop, HSTS, hsts[HSTS]))
        found += checks.unwanted("page", hop, hsts, names=(HSTS,), stray=want.stray)
        found += checks.warnings("page", hop, hsts)
    last = chain[-1]
    if last.fault is not None:
        return [*found, checks.fault("page", last)]
    found += _judge("page", last, want)
    if last.status is not None and last.status >= 400:
        finding = checks.PAGE_SERVER_ERROR if last.status >= 500 else checks.PAGE_CLIENT_ERROR
        found.append(
            checks.check(
                finding,
                "page",
                last.url,
                ok=False,
                expected="2xx",
                actual=[str(last.status)],
                message=f"answers {last.status}",
                status=last.status,
            )
        )
    target = last.location
    if target is not None:
        found.append(
            checks.check(
                checks.CROSS_ORIGIN,
                "page",
                last.url,
                ok=False,
                expected=f"an answer from {origin_url(url)}",
                actual=[f"{last.status} {target}"],
                message=f"redirects to another origin, {target}; not followed",
                status=last.status,
                location=target,
            )
        )
    return found


async def _not_found(prober: Prober, url: str, want: _Want) -> list[Check]:
    result = await prober.fetch(url)
    if result.fault is not None:
        return [checks.fault("404", result)]
    status = checks.check(
        checks.NOT_FOUND_STATUS,
        "404",
        url,
        ok=result.status == 404,
        expected="404",
        actual=[str(result.status)],
        message=f"answers {result.status}",
        status=result.status,
        location=result.location,
    )
    return [status, *_judge("404", result, want)]


async def _http(prober: Prober, base: str, probe: Probe) -> list[Check]:
    host = origin_of(base)[1]
    name = f"[{host}]" if ":" in host else host
    url = f"http://{name}/"
    result = await prober.fetch(url)
    if result.fault is not None:
        found = checks.fault(probe, result)
        if result.fault is Fault.DNS and _routed(prober.options, host, 443):
            # The plan routes HOST:443 by address but not HOST:80, so plain http falls
            # back to DNS, which a test host or a not-yet-public one does not have.
            hint = f"; the plan maps {host}:443 but not {host}:80 (add a {host}:80:ADDR:PORT entry)"
            found = replace(found, message=found.message + hint)
        return [found]
    finding = checks.HTTP_NO_REDIRECT if probe == "http" else checks.SUBDOMAIN_REDIRECT
    return [checks.redirect(finding, probe, result), *checks.warnings(probe, result)]


def _routed(options: ProbeOptions, host: str, port: int) -> bool:
    """Whether connect-to or resolve sends host:port somewhere by address."""
    return any((c.host, c.port) == (host, port) for c in options.connect_to) or any(
        (r.host, r.port) == (host, port) for r in options.resolve
    )


async def _subdomain(prober: Prober, host: str) -> list[Check]:
    url = f"https://{host}/"
    result = await prober.fetch(url)
    if result.fault is not None:
        found = [replace(checks.fault("subdomain", result), id=checks.SUBDOMAIN_HTTPS.id)]
    else:
        found = [
            checks.check(
                checks.SUBDOMAIN_HTTPS,
                "subdomain",
                url,
                ok=True,
                expected="an answer over https with a valid certificate",
                actual=[str(result.status)],
                message=f"answers {result.status} over https",
                status=result.status,
                location=result.location,
            )
        ]
    return [*found, *await _http(prober, url, "subdomain")]
