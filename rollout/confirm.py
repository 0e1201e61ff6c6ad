"""What a revert proves live: the app dropped what the target stage does not send, and
every edge-owned header survived, sent exactly once with the value it had before.

The edge (proxy or CDN) is never rolled back by a revert, so its headers are captured
from the live responses before the stage file changes, and compared after, on the same
URLs: each page, and the same 404 probe per origin.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from rollout import checks, headers
from rollout.checks import Check, Probe
from rollout.probe import ProbeOptions, Prober, Result, run
from rollout.verify import EnvironmentLike, not_found_path, origin_url, probe_options


@dataclass(frozen=True)
class Capture:
    """The live responses to each probe URL, as the edge sent them before the revert."""

    urls: tuple[tuple[Probe, str], ...]
    results: Mapping[str, Result]


def probe_urls(env: EnvironmentLike) -> tuple[tuple[Probe, str], ...]:
    """Each page, and one unguessable 404 path per origin (the same one before and after)."""
    token = secrets.token_hex(16)
    origins = dict.fromkeys(origin_url(u) for u in env.urls)
    pages: list[tuple[Probe, str]] = [("page", u) for u in env.urls]
    return (*pages, *(("404", f"{o}/{not_found_path(token)}") for o in origins))


async def _fetch(
    env: EnvironmentLike, urls: Collection[str], options: ProbeOptions
) -> dict[str, Result]:
    async with Prober(probe_options(env, options)) as prober:
        results = await asyncio.gather(*(prober.fetch(u) for u in urls))
    return dict(zip(urls, results, strict=True))


def capture(env: EnvironmentLike, options: ProbeOptions) -> Capture:
    """Fetch every probe URL once, now."""
    urls = probe_urls(env)
    return Capture(urls, run(_fetch(env, [u for _, u in urls], options), options))


def again(env: EnvironmentLike, before: Capture, options: ProbeOptions) -> Capture:
    """Fetch the same URLs as `before` once more."""
    return Capture(before.urls, run(_fetch(env, [u for _, u in before.urls], options), options))


def edge_survived(before: Capture, after: Capture, names: Collection[str]) -> list[Check]:
    """Each edge-owned header, on each URL: exactly once, semantically equal to before."""
    found: list[Check] = []
    for _, url in before.urls:
        was, now = before.results[url], after.results[url]
        if was.fault is not None:
            found.append(checks.fault("edge", was))
        if was.fault is not None or now.fault is not None:
            continue  # `faults` reports the one after
        for name in sorted(names):
            found.append(_survived(url, name, was.get_all(name), now.get_all(name)))
    return found


def _survived(url: str, name: str, was: list[str], now: list[str]) -> Check:
    if len(was) != 1:
        how = "missing" if not was else f"sent {len(was)} times"
        return checks.check(
            checks.EDGE_UNSEEN,
            "edge",
            url,
            ok=False,
            header=name,
            actual=was,
            message=f"before the revert it was {how}",
        )
    expected = was[0]
    if len(now) != 1:
        how = "is missing" if not now else f"is sent {len(now)} times"
        message = f"{how} after the revert"
        ok = False
    else:
        differs = headers.compare(name, expected, now[0])
        ok = differs is None
        # compare() words it against "the stage"; here the reference is what the edge sent.
        said = (differs or "").replace("the stage wants", "before the revert it was")
        message = "survived the revert" if ok else f"changed by the revert: {said}"
    return checks.check(
        checks.EDGE_LOST,
        "edge",
        url,
        ok=ok,
        header=name,
        expected=expected,
        actual=now,
        message=message,
    )


def app_dropped(after: Capture, names: Collection[str]) -> list[Check]:
    """Headers the target stage no longer sends (and the edge does not own) are gone."""
    found: list[Check] = []
    for probe, url in after.urls:
        result = after.results[url]
        if result.fault is not None:
            continue  # `faults` reports it
        for name in sorted(names):
            sent = result.get_all(name)
            found.append(
                checks.check(
                    checks.STALE_HEADER,
                    probe,
                    url,
                    ok=not sent,
                    header=name,
                    actual=sent,
                    message="no longer sent" if not sent else "still sent after the revert",
                )
            )
    return found


def faults(after: Capture) -> list[Check]:
    """A failed check for each probe URL that got no usable answer after the revert."""
    return [
        checks.fault(probe, after.results[url])
        for probe, url in after.urls
        if after.results[url].fault is not None
    ]
