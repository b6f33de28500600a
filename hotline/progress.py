"""Progress of long work in the terminal (issue 12: a CSV import, a report export, a campaign,
``hotline asterisk build``, ``hotline prompts build``).

On a terminal one line is rewritten in place (``\\r``); otherwise (a log file, CI) plain lines
are written, a step only every ``PLAIN_EVERY`` of the way so a log is not flooded. Ground floor:
the feature rooms take a plain callback, the commands pass a :class:`Progress`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

WIDTH = 24
PLAIN_EVERY = 0.25  # on a non-terminal, a step line at each quarter


def bar(done: int, total: int, width: int = WIDTH) -> str:
    """``[#########...............]  9/24  38%`` (pure)."""
    total = max(total, 0)
    share = done / total if total else 1.0
    filled = min(width, round(share * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {share:4.0%}"


class Progress:
    def __init__(self, label: str, total: int | None = None,
                 stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._next_plain = 0.0
        self._dirty = False

    def _write(self, text: str) -> None:
        if self.tty:
            self.stream.write(f"\r\x1b[2K{text}")
            self._dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def step(self, done: int, note: str = "") -> None:
        """``done`` of ``total`` (a step whose total is unknown shows the count)."""
        total = self.total
        shown = bar(done, total) if total is not None else str(done)
        if not self.tty and total:
            share = done / total
            if share < self._next_plain and done != total:
                return
            self._next_plain = share + PLAIN_EVERY
        self._write(f"{self.label} {shown}{'  ' + note if note else ''}")

    def stage(self, text: str) -> None:
        self._write(f"{self.label}: {text}")

    def finish(self, text: str) -> None:
        if self.tty and self._dirty:
            self.stream.write("\r\x1b[2K")
        self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()
        self._dirty = False

    @contextlib.contextmanager
    def ticking(self, text: str, every: float = 1.0) -> Iterator[None]:
        """For work that cannot count its steps (a root file system being built): the elapsed
        time on a terminal, a start line otherwise."""
        start = time.monotonic()
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(every):
                self._write(f"{self.label}: {text} … {time.monotonic() - start:.0f} s")

        self.stage(f"{text} …")
        thread = threading.Thread(target=tick, daemon=True) if self.tty else None
        if thread:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread:
                thread.join()
        self.finish(f"{text}: done in {time.monotonic() - start:.0f} s")
