"""Replaying the survey's journal (:mod:`ivr.survey_journal`) into the database once it answers
again: exactly once in effect, because applying a call's steps is idempotent by content (the
rating keyed by project_no + assessNumber, nothing queued when it already says so), and a file
is removed only after every call in it was applied. One replayer per journal directory at a
time (a lock file), oldest file first, each call's late database saves waited for first.

It runs beside the FastAGI server (``service.agi``): the survey's durability depends on nothing
but the database and this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from ivr.survey_journal import fold
from ivr.survey_store import apply_journalled
from service.context import AppContext
from storage.journal import Journal

log = logging.getLogger("hotline.ivr.journal")

#: how often the journal is looked at (a stat when it is empty)
INTERVAL = 1.0
LOCK_FILE = "replay.lock"


@dataclass
class ReplayReport:
    files: int = 0
    calls: int = 0
    busy: bool = False  # another replayer holds the directory


async def replay_once(ctx: AppContext) -> ReplayReport:
    """Apply every journalled call; raises (leaving the rest for next time) when the database
    fails again."""
    journal = ctx.survey_journal
    report = ReplayReport()
    if journal.log.is_empty():
        return report
    with _exclusive(journal.log) as mine:
        if not mine:
            report.busy = True
            return report
        try:
            await asyncio.to_thread(journal.log.seal)
            for path in journal.log.sealed():
                nets = fold(list(Journal.read(path)))
                for net in nets.values():
                    await journal.settle(net.linkedid)
                    await apply_journalled(ctx, net)
                    report.calls += 1
                await asyncio.to_thread(journal.log.remove, path)
                report.files += 1
        finally:
            journal.refresh()
    if report.calls:
        journal.db_ok()
        log.info("journal replayed into the database",
                 extra={"calls": report.calls, "files": report.files})
    return report


@contextlib.contextmanager
def _exclusive(journal: Journal) -> Iterator[bool]:
    journal.directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(journal.directory / LOCK_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


async def run(ctx: AppContext, stopping: asyncio.Event) -> None:
    """Replay whenever the journal has records, until the service stops; one log line when
    replaying starts failing and one when it works again, not one per try."""
    failing = False
    while not stopping.is_set():
        try:
            await replay_once(ctx)
            if failing:
                log.info("journal replay works again")
            failing = False
        except Exception as exc:  # the database is still away: keep everything, try later
            if not failing:
                log.warning("journal replay failed; records kept, retrying",
                            extra={"error": repr(exc), "pending_calls": ctx.survey_journal.pending})
            failing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=INTERVAL)
