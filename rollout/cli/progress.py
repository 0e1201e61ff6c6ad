"""A one-line progress indicator on a terminal's stderr, for runs longer than about a second.

Probing and settling can take seconds with nothing to print; a quiet terminal looks hung.
The line appears only when stderr is a terminal, the run is not `--json`, and a second
has passed; it is redrawn in place (`\\r`, erase line) and erased before any other output
and at the end, so pipes, logs and JSON never see it.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from types import TracebackType
from typing import TextIO

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ERASE = "\r\x1b[2K"


def wanted(json: bool, stream: TextIO | None = None) -> bool:
    """Progress only on a terminal that can erase a line, and never with --json."""
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False
    return tty and not json and os.environ.get("TERM") != "dumb"


class Progress:
    """`with Progress("verify staging", enabled=...) as p: ...; p.update("next step")`."""

    def __init__(
        self,
        label: str = "",
        *,
        enabled: bool,
        stream: TextIO | None = None,
        delay: float = 1.0,
        interval: float = 0.1,
    ) -> None:
        self._label = label
        self._enabled = enabled
        self._stream = stream or sys.stderr
        self._delay, self._interval = delay, interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._since = time.monotonic()
        self._drawn = False

    def __enter__(self) -> Progress:
        if self._enabled:
            self._thread = threading.Thread(target=self._run, name="rollout-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.clear()

    def update(self, label: str) -> None:
        """Show label from now on, with its own elapsed time."""
        with self._lock:
            self._label, self._since = label, time.monotonic()
        if self._drawn:
            self._draw()

    def clear(self) -> None:
        """Erase the line, so that other output starts on a clean one."""
        with self._lock:
            if self._drawn:
                self._write(ERASE)
                self._drawn = False

    def _run(self) -> None:
        if self._stop.wait(self._delay):
            return
        frame = 0
        while not self._stop.is_set():
            self._draw(frame)
            frame += 1
            self._stop.wait(self._interval)

    def _draw(self, frame: int = 0) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            seconds = time.monotonic() - self._since
            text = f"{FRAMES[frame % len(FRAMES)]} {self._label} ({seconds:.0f}s)"
            # One screen line at most: a wrapped line cannot be erased with \r.
            width = self._columns() - 1
            if len(text) > width:
                text = text[: max(width - 1, 0)] + "…"
            self._write(ERASE + text)
            self._drawn = True

    def _columns(self) -> int:
        try:  # the terminal stderr is on, which may not be stdout's
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        # A terminal that reports no size (some ptys, serial lines): $COLUMNS, else 80.
        return columns or shutil.get_terminal_size().columns

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away: progress is not the job
            self._stop.set()
