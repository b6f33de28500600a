"""A local append-only journal of JSON records, for what must survive when the database does not
answer (issue 8: a caller's vote is never lost to a database outage).

Files in one directory:

* ``current.jsonl``: appended to, one record a line, each append ``fsync``-ed before it returns;
* ``sealed-<ns>-<pid>.jsonl``: a former ``current`` set aside by :meth:`Journal.seal` for
  replay; replayed oldest first and removed only once every record in it has been applied.

Several writers (threads, processes) may append at once: each append holds an exclusive
``flock`` on the file and checks, under the lock, that the path still names the file it opened
(a seal renames it), so no record lands in a file that is already being replayed. A crash in the
middle of an append can leave a torn last line: it is skipped on reading (logged), and the next
append starts on a fresh line.

The journal knows nothing of the database or of what the records mean.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("hotline.storage.journal")

CURRENT = "current.jsonl"
SEALED_PREFIX = "sealed-"


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def current(self) -> Path:
        return self.directory / CURRENT

    # ----------------------------------------------------------------- writing
    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably (blocking: call it from a thread in async code)."""
        self.append_many([record])

    def append_many(self, records: list[dict[str, Any]]) -> None:
        """Append records durably, in order, with one write and one ``fsync`` (a burst's
        appends committed as a group: one fsync each was the journal's whole cost)."""
        line = b"".join(
            (json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
            for r in records
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.current, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not self._still_current(fd):
                    continue  # sealed between our open and our lock: append to the new file
                if os.fstat(fd).st_size and not _ends_with_newline(fd):
                    line = b"\n" + line  # after a torn line: never glue two records together
                os.write(fd, line)
                os.fsync(fd)
                return
            finally:
                os.close(fd)  # also releases the lock

    def _still_current(self, fd: int) -> bool:
        try:
            named = os.stat(self.current)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    # ----------------------------------------------------------------- replaying
    def seal(self) -> None:
        """Set ``current`` aside for replay (no-op when it is absent or empty)."""
        try:
            fd = os.open(self.current, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits for an append in progress to finish
            if not self._still_current(fd) or os.fstat(fd).st_size == 0:
                return
            target = self.directory / f"{SEALED_PREFIX}{time.time_ns():020d}-{os.getpid()}.jsonl"
            os.rename(self.current, target)
            _fsync_dir(self.directory)
        finally:
            os.close(fd)

    def sealed(self) -> list[Path]:
        """The sealed files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"{SEALED_PREFIX}*.jsonl"))

    def files(self) -> list[Path]:
        """Every file holding records not yet replayed, oldest first."""
        files = self.sealed()
        if self.current.exists():
            files.append(self.current)
        return files

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        _fsync_dir(self.directory)

    @staticmethod
    def read(path: Path) -> Iterator[dict[str, Any]]:
        """The records of one file, in order; a torn or unreadable line is skipped."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                log.warning("journal line unreadable (torn by a crash?); skipped",
                            extra={"file": path.name, "line": number})
                continue
            if isinstance(record, dict):
                yield record

    def is_empty(self) -> bool:
        for path in self.files():
            try:
                if path.stat().st_size:
                    return False
            except FileNotFoundError:  # replayed meanwhile
                continue
        return True


def _ends_with_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return os.pread(fd, 1, size - 1) == b"\n"


def _fsync_dir(directory: Path) -> None:
    """Make a rename or unlink durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
