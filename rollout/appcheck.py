"""An app's answers judged in process against a stage: the pytest plugin's library.

A test client stands in for the network: each response becomes a `rollout.probe.Result`
and goes through the same checks as `rollout verify` (present exactly once, semantically
equal, CSP mode), so a test and a live verify never disagree about a value. Requests go
over https (`https://testserver/...`, Django's `secure=True`), where HSTS is sent.

Clients are recognised by class without importing their framework: a test that hands in a
Django client has already imported Django, and one that hands in an httpx client httpx.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rollout import checks
from rollout.checks import Check, Probe
from rollout.errors import RolloutError
from rollout.names import CSP_FAMILY, OFF
from rollout.probe import Result
from rollout.settings import StageSettings
from rollout.verify import not_found_path

__all__ = ["HeaderCheck"]

Response = tuple[int, tuple[tuple[str, str], ...]]  # status, header lines


@dataclass(frozen=True)
class HeaderCheck:
    """What the app must send at its current stage, and the check that it does."""

    settings: StageSettings
    source: str  # the stage file, as messages name it
    # Headers the app owns at some stage of the plan but not at this one: it must not send
    # them (after a revert to off, say). Empty without a plan, which alone knows them.
    absent: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def configured(
        cls, *, stage: Path | None = None, plan: Path | None = None, env: str | None = None
    ) -> HeaderCheck:
        """The check for a stage file, or for a plan's environment (its stage file beside
        it, stage off while there is none); a configuration error fails the test."""
        try:
            return cls._load(stage, plan, env)
        except RolloutError as exc:
            pytest.fail(f"rollout_headers: {exc}", pytrace=False)

    def using(
        self,
        *,
        stage: Path | str | None = None,
        plan: Path | str | None = None,
        env: str | None = None,
    ) -> HeaderCheck:
        """The same check for another stage file or environment (paths from the test)."""
        return HeaderCheck.configured(
            stage=None if stage is None else Path(stage),
            plan=None if plan is None else Path(plan),
            env=env,
        )

    @classmethod
    def _load(cls, stage: Path | None, plan_path: Path | None, env: str | None) -> HeaderCheck:
        from rollout import settings as stage_files

        if plan_path is None:
            if env is not None:
                raise RolloutError("rollout_env needs rollout_plan (the plan it belongs to)")
            if stage is None:
                raise RolloutError(
                    "nothing configured: set rollout_stage (a stage file), or rollout_plan "
                    "and rollout_env, in pytest's configuration or as --rollout-stage, "
                    "--rollout-plan and --rollout-env"
                )
            loaded = stage_files.load(stage)
            if loaded is None:
                raise RolloutError(
                    f"{stage}: no such stage file (rollout writes it at the first advance; "
                    "configure rollout_plan and rollout_env to check stage off)"
                )
            return cls(loaded, str(stage))
        if env is None:
            raise RolloutError("rollout_plan needs rollout_env (which environment's stage)")
        from rollout import ladder, store
        from rollout.plan import load_plan

        plan = load_plan(plan_path)
        plan.environment(env)  # an unknown name is refused here, with the plan's names
        if stage is not None:
            current = stage_files.load(stage)
            source = str(stage)
        else:
            current = store.read_settings(plan, env)
            source = str(store.settings_path(plan, env))
        if current is None:
            current = ladder.settings_for(plan, env, None)
        owned = {
            name for s in ladder.build(plan) for name in ladder.settings_for(plan, env, s.index).app
        }
        return cls(current, source, frozenset(owned - set(current.app) - CSP_FAMILY))

    @property
    def expected(self) -> Mapping[str, str]:
        """The app-owned headers the app must send, lower-case name -> value."""
        return self.settings.app

    def check(self, client: Any, page: str = "/") -> list[Check]:
        """Request page and a 404 through client; fail the test unless both carry the
        stage's app-owned headers. Returns every check made."""
        kind = _kind(client)
        if kind.startswith("async"):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(self.acheck(client, page))
            pytest.fail(
                "rollout_headers.check: an async client inside a running event loop; "
                "use `await rollout_headers.acheck(client)`",
                pytrace=False,
            )
        responses = [_get_sync(kind, client, path) for path in self._paths(page)]
        return self._judge(page, responses)

    async def acheck(self, client: Any, page: str = "/") -> list[Check]:
        """The same as `check`, for async tests: an httpx AsyncClient or ASGITransport, or
        a Django AsyncClient (sync clients work too)."""
        kind = _kind(client)
        if not kind.startswith("async"):
            return self.check(client, page)
        responses = [await _get_async(kind, client, path) for path in self._paths(page)]
        return self._judge(page, responses)

    def _paths(self, page: str) -> list[str]:
        if not page.startswith("/"):
            pytest.fail(f"rollout_headers: {page!r} is not a path starting with /", pytrace=False)
        return [page, f"/{not_found_path(secrets.token_hex(16))}"]

    def _judge(self, page: str, responses: list[Response]) -> list[Check]:
        if not self.expected and not self.absent:
            pytest.fail(
                f"rollout_headers: {self.source} is at stage off: the app owns no header yet, "
                "so there is nothing to check; configure rollout_plan and rollout_env to "
                "check that it sends none of the plan's",
                pytrace=False,
            )
        made: list[Check] = []
        probes: tuple[Probe, Probe] = ("page", "404")
        for probe, path, (status, lines) in zip(probes, self._paths(page), responses, strict=True):
            result = Result(f"https://testserver{path}", status, "1.1", lines)
            for name, value in self.expected.items():
                made.append(checks.expected_header(probe, result, name, value))
            made += checks.csp_mode(probe, result, self.expected)
            for name in sorted(self.absent):
                sent = result.get_all(name)
                made.append(
                    checks.check(
                        checks.STALE_HEADER,
                        probe,
                        result.url,
                        ok=not sent,
                        header=name,
                        actual=sent,
                        message=f"{name} is sent, but this stage leaves it out"
                        if sent
                        else "not sent, as the stage says",
                    )
                )
            if probe == "404" and status != 404:
                made.append(
                    checks.check(
                        checks.NOT_FOUND_STATUS,
                        probe,
                        result.url,
                        ok=False,
                        expected="404",
                        actual=[str(status)],
                        message=f"answers {status}",
                    )
                )
        failed = [c for c in made if c.failed]
        if failed:
            pytest.fail(self._message(failed, len(made), responses), pytrace=False)
        return made

    def _message(self, failed: list[Check], total: int, responses: list[Response]) -> str:
        s = self.settings
        stage = OFF if s.stage is None else f"stage {s.stage} ({s.name})"
        lines = [f"the app does not serve {stage} of {self.source}:"]
        for c in failed:
            path = (c.url or "").removeprefix("https://testserver")
            got = " | ".join(c.actual) if c.actual else "nothing"
            what = f"{c.header}: " if c.header else ""
            if c.expected is not None:
                text = f"expected {c.expected}, got {got}: {c.message}"
            else:
                text = c.message + (f" (sent: {got})" if c.actual else "")
            lines.append(f"  ✗ {c.probe} {path}  {what}{text} [{c.id}]")
        statuses = ", ".join(str(status) for status, _ in responses)
        lines.append(f"{len(failed)} of {total} checks failed (answers: {statuses})")
        return "\n".join(lines)


def _kind(client: Any) -> str:
    """Which client this is, by class, importing no framework that is not loaded yet."""
    # Starlette's TestClient is an httpx2.Client (an httpx.Client before Starlette 1.x).
    for module in ("httpx2", "httpx"):
        httpx = sys.modules.get(module)
        if httpx is None:
            continue
        if isinstance(client, httpx.Client):
            return "httpx"
        if isinstance(client, httpx.AsyncClient):
            return "async-httpx"
        if isinstance(client, httpx.ASGITransport):
            return f"async-asgi-{module}"
    django = sys.modules.get("django.test.client")
    if django is not None:
        if isinstance(client, django.AsyncClient):
            return "async-django"
        if isinstance(client, django.Client):
            return "django"
    pytest.fail(
        f"rollout_headers: cannot request through a {type(client).__qualname__}; pass a "
        "Starlette TestClient, an httpx (or httpx2) Client, AsyncClient or ASGITransport, "
        "or a Django test Client or AsyncClient",
        pytrace=False,
    )


def _https(client: Any, path: str) -> str:
    base = client.base_url
    if not base.host:
        pytest.fail(
            "rollout_headers: the httpx client has no base_url to request pages from",
            pytrace=False,
        )
    return str(base.copy_with(scheme="https", raw_path=path.encode()))


def _lines(items: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(n), str(v)) for n, v in items)


def _get_sync(kind: str, client: Any, path: str) -> Response:
    if kind == "httpx":
        r = client.get(_https(client, path), follow_redirects=False)
        return r.status_code, _lines(r.headers.multi_items())
    # Django: one value per name, as its HttpResponse keeps them.
    r = client.get(path, secure=True)
    return r.status_code, _lines(r.headers.items())


async def _get_async(kind: str, client: Any, path: str) -> Response:
    if kind.startswith("async-asgi-"):
        # The transport's own package, already imported: the transport is one of its classes.
        httpx = sys.modules[kind.removeprefix("async-asgi-")]
        async with httpx.AsyncClient(transport=client, base_url="https://testserver") as c:
            return await _get_async("async-httpx", c, path)
    if kind == "async-httpx":
        r = await client.get(_https(client, path), follow_redirects=False)
        return r.status_code, _lines(r.headers.multi_items())
    r = await client.get(path, secure=True)
    return r.status_code, _lines(r.headers.items())
