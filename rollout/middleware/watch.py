"""The stage-file watcher both middlewares share: stat at most once a second, swap atomically.

A request only pays for a monotonic-clock comparison; once the interval has passed, one
request (the one that takes the lock) stats the file and, when its identity
`(mtime_ns, ctime_ns, size, inode)` changed, reads it, checks it (`admission`: whole,
grammatical, one stage) and replaces the snapshot with a single attribute assignment.
Readers never see a half-built snapshot, so no lock guards reads.

Nothing a stage file holds can make a request fail: any error while reading or checking
a new version keeps the last good snapshot (stage off when none loaded yet, e.g. a bad
file at start-up) and is logged once, naming the file and the reason.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rollout.errors import SettingsError
from rollout.names import CSP, CSP_RO, FIELD_VALUE, HEADER_NAME, HSTS
from rollout.settings import NotRegularFile, StageSettings, read_regular

logger = logging.getLogger("rollout.middleware")

_HSTS_BYTES = HSTS.encode()

Header = tuple[bytes, bytes]
FileKey = tuple[int, int, int, int] | None  # (mtime_ns, ctime_ns, size, inode); None: absent


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One settings version, precomputed for the request path."""

    settings: StageSettings | None  # None: no file yet, stage off
    https: tuple[Header, ...]  # every app-owned header, ASGI form (lower-case bytes)
    http: tuple[Header, ...]  # the same without HSTS, for plain-http responses
    https_names: frozenset[bytes]  # their names, to spot one the route set itself
    http_names: frozenset[bytes]
    https_str: tuple[tuple[str, str], ...]  # the same pairs as Title-Case str, for Django
    http_str: tuple[tuple[str, str], ...]
    csp_enforcing: bool | None  # which CSP header the app sends; None: neither

    @classmethod
    def build(cls, settings: StageSettings | None) -> Snapshot:
        """Precompute a settings version's header lists once."""
        pairs = tuple(settings.app.items()) if settings is not None else ()
        for name, value in pairs:
            # Checked again whatever loads let through: a value that reaches a response
            # must be one visible-ASCII line, never a header injection.
            if not (HEADER_NAME.fullmatch(name) and FIELD_VALUE.fullmatch(value)):
                raise SettingsError(f"app.{name}: {value!r} is not a one-line header value")
        # Title-Case for frameworks that keep the name as given (Django); ASGI wants lower.
        titled = tuple(("-".join(w.capitalize() for w in n.split("-")), v) for n, v in pairs)
        # Header values are visible ASCII (settings.loads checks), so latin-1 is exact.
        https = tuple((n.encode("latin-1"), v.encode("latin-1")) for n, v in pairs)
        http = tuple(h for h in https if h[0] != _HSTS_BYTES)
        return cls(
            settings=settings,
            https=https,
            http=http,
            https_names=frozenset(n for n, _ in https),
            http_names=frozenset(n for n, _ in http),
            https_str=titled,
            http_str=tuple(p for p in titled if p[0].lower() != HSTS),
            csp_enforcing=_csp_mode(dict(pairs)),
        )


def _csp_mode(app: dict[str, str]) -> bool | None:
    if CSP in app:
        return True
    if CSP_RO in app:
        return False
    return None


OFF = Snapshot.build(None)
_UNSTATABLE: FileKey = (-1, -1, -1, -1)
# A file changed this recently may still be changing within the same timestamp tick (an
# in-place rewrite of the same length): read it once more when it is this old.
RACY_NS = 1_000_000_000
# The same error is logged again only if it comes back after this long.
REPEAT_AFTER = 300.0
_REMEMBERED = 64


class SettingsWatcher:
    """Holds the current Snapshot of one stage file and refreshes it when the file changes."""

    def __init__(self, path: str | os.PathLike[str], interval: float = 1.0) -> None:
        given = os.fspath(path)
        try:
            cwd = os.getcwd()
        except OSError:  # the working folder was deleted: nothing to resolve against
            cwd = ""
        # Absolute once, at start-up: a later chdir (a daemon, a test) changes nothing.
        self.path = Path(os.path.normpath(os.path.join(cwd, given)) if cwd else given)
        self.interval = interval
        self._lock = threading.Lock()
        self._key: FileKey = None
        self._bad_key: FileKey = None
        self._recheck_ns: int | None = None  # wall-clock ns after which to read once more
        self._logged: dict[str, float] = {}  # error line -> monotonic time logged
        self.snapshot: Snapshot = OFF
        self.next_check = 0.0
        self.refresh()
        if self.snapshot.settings is None and not os.path.lexists(self.path):
            relative = "" if os.path.isabs(given) else f" ({given!r} from {cwd or '?'})"
            logger.warning(
                "%s%s: does not exist; stage off, no app-owned headers until it appears",
                self.path,
                relative,
            )

    def current(self) -> Snapshot:
        """The snapshot to use for this request, refreshing first if the interval passed."""
        if time.monotonic() >= self.next_check:
            self.refresh()
        return self.snapshot

    def refresh(self) -> None:
        """Stat the file and reload it if it changed; keep the last good snapshot on error."""
        # Under concurrency one caller refreshes; the others go on with the current snapshot.
        if not self._lock.acquire(blocking=False):
            return
        try:
            self.next_check = time.monotonic() + self.interval
            self._reload_if_changed()
        finally:
            self._lock.release()

    def _reload_if_changed(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if os.path.lexists(self.path):  # a symlink to nothing is no deletion
                self._fail(_UNSTATABLE, f"{self.path}: is a symlink to a missing file")
            else:
                self._gone()
            return
        except Exception as exc:  # OSError (a symlink loop...), or ValueError for a NUL
            self._fail(_UNSTATABLE, f"{self.path}: cannot stat: {_reason(exc)}")
            return
        key = _key(st)
        if (key == self._key or key == self._bad_key) and not self._recheck_due():
            return
        if not stat.S_ISREG(st.st_mode):
            # A FIFO would block open() until a writer came: on the event loop (or in
            # Django's thread) that would hold every request. Never open one.
            self._fail(key, f"{self.path}: is not a regular file")
            return
        try:
            # The key comes from fstat on the descriptor read, so it always belongs to
            # the bytes parsed; opened non-blocking in case the file was just swapped.
            data, fs = read_regular(self.path)
            key = _key(fs)
            self._recheck_ns = fs.st_mtime_ns + RACY_NS if _racy(fs) else None
            # The grammars load at the first reload, not at import; should they fail to
            # (a broken install), that is one logged error, never a failed request.
            from rollout.middleware import admission

            settings = admission.admit(data, source=str(self.path))
            self._same_environment(settings)
            snapshot = Snapshot.build(settings)
        except FileNotFoundError:
            self.next_check = 0.0  # replaced between stat and open: look again next request
            return
        except NotRegularFile:
            self._fail(key, f"{self.path}: is not a regular file")
            return
        except OSError as exc:  # unreadable (permissions), an I/O error
            self._fail(key, f"{self.path}: cannot read: {_reason(exc)}")
            return
        except SettingsError as exc:
            message = str(exc)  # admit names the file; Snapshot.build only the key
            if not message.startswith(f"{self.path}:"):
                message = f"{self.path}: {message}"
            self._fail(key, message)
            return
        except Exception as exc:  # whatever else: a request must never pay for it
            self._fail(key, f"{self.path}: cannot load: {_reason(exc)}")
            return
        self._key, self._bad_key = key, None
        if settings == self.snapshot.settings:
            return  # the same settings again (touched, re-read): nothing to say
        self.snapshot = snapshot  # the atomic swap
        logger.info("%s: stage %s (%s) loaded", self.path, settings.label, settings.name)

    def _recheck_due(self) -> bool:
        if self._recheck_ns is None or time.time_ns() < self._recheck_ns:
            return False
        self._recheck_ns = None
        return True

    def _same_environment(self, settings: StageSettings) -> None:
        served = self.snapshot.settings
        if served is not None and served.environment != settings.environment:
            raise SettingsError(
                f"environment: {settings.environment!r}, but this process serves "
                f"{served.environment!r}: another environment's file (a wrong copy or "
                "symlink?); restart the app to switch environments"
            )

    def _gone(self) -> None:
        # rollout replaces the file atomically and never deletes it, so a file that was
        # loaded and vanished is an accident (a deploy without stages/, a cleanup): say
        # so loudly, once. Stage off, as at start-up, so that every process, restarted
        # or not, sends the same thing.
        if self.snapshot.settings is not None:
            logger.warning(
                "%s: deleted; stage off, no app-owned headers until it is back "
                "(rollout never deletes it)",
                self.path,
            )
        self._key, self._bad_key, self.snapshot = None, None, OFF

    def _fail(self, key: FileKey, message: str) -> None:
        # Remembered by version (not parsed again while it stays) and by line: a rewrite
        # in place read midway several times, or a file flapping between two bad
        # versions, is one line per distinct error, not one per version or per second.
        # The same line comes again only after REPEAT_AFTER: a new incident by then.
        self._bad_key = key
        if self.snapshot.settings is None:
            line = f"{message}; no good settings yet: stage off, no app-owned headers"
        else:
            line = f"{message}; keeping the last good settings"
        now = time.monotonic()
        last = self._logged.pop(line, None)
        if last is not None and now - last < REPEAT_AFTER:
            self._logged[line] = last
            return
        if len(self._logged) >= _REMEMBERED:
            self._logged.pop(next(iter(self._logged)))
        self._logged[line] = now
        logger.error("%s", line)


def _key(st: os.stat_result) -> FileKey:
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def _racy(st: os.stat_result) -> bool:
    return abs(time.time_ns() - st.st_mtime_ns) < RACY_NS


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"
