"""The survey's local journal: where a step the database could not take in time goes instead,
so a database outage never turns a caller's vote into a default (issue 8 defects 3 and 11).

* :class:`SurveyJournal` is what the save path (:mod:`ivr.survey_store`) talks to: append a
  record (fsynced, off the event loop), "does the journal hold this call?", database saves still
  running after their deadline (the replay waits for them, so an old save can never land after
  a newer journalled one), and a short breaker: after a failure while no write succeeds, new
  steps go straight to the journal for a few seconds instead of each caller waiting out the
  deadline.
* :func:`fold` is pure: the records of one call, in order, become the one net effect to apply
  (every save carries everything known so far, so the last save wins; a vote beats any "not
  rated"). Applying it is :func:`ivr.survey_store.apply_journalled`; the replay loop is
  :mod:`ivr.journal_replay`.

The caller's number is journalled only in its protected form (encrypted, keyed hash, mask;
DOMAIN.md rule 8), never in clear.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.journal import Journal

log = logging.getLogger("hotline.ivr.journal")

#: after a database failure, new survey steps skip the database for this long (then one tries)
BREAKER_SECONDS = 3.0
#: the journal format
VERSION = 1

OP_BEGIN = "begin"
OP_SAVE = "save"
OP_NOT_RATED = "not_rated"


class SurveyJournal:
    def __init__(self, directory: Path, *, deadline: float) -> None:
        self.log = Journal(directory)
        #: how long a survey step waits for the database before journalling instead
        self.deadline = deadline
        self._index: set[str] = set()
        self._inflight: dict[str, set[asyncio.Future[Any]]] = {}
        self._down_until = 0.0
        self._answered_at = float("-inf")
        #: appends waiting for the next group write, and the task writing groups
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Future[None] | None = None
        self.refresh()

    # ----------------------------------------------------------------- what it holds
    def refresh(self) -> None:
        """Re-read which calls have records waiting (after a replay, or another process's)."""
        self._index = {
            str(record.get("linkedid"))
            for path in self.log.files()
            for record in Journal.read(path)
        }

    def holds(self, linkedid: str) -> bool:
        """A step of this call is in the journal or still on its way to the database: its later
        steps must follow it there, and nothing may mark the call not rated meanwhile."""
        return linkedid in self._index or linkedid in self._inflight

    def held_linkedids(self) -> set[str]:
        """Every call the journal holds, re-read from disk (the default job asks once a pass,
        possibly from another process on this host)."""
        self.refresh()
        return self._index | set(self._inflight)

    @property
    def pending(self) -> int:
        return len(self._index)

    # ----------------------------------------------------------------- writing
    async def append(self, record: dict[str, Any]) -> None:
        """Durable when it returns. Appends made while an earlier group is being written go
        to disk together in the next group: one write and one fsync, on one thread, however
        many callers a burst journals at once (issue 13)."""
        record = {"v": VERSION, **record}
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((record, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_groups())
        await done
        self._index.add(str(record["linkedid"]))

    async def _write_groups(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:  # fsync off the event loop
                await asyncio.to_thread(self.log.append_many, [r for r, _ in group])
            except Exception as exc:
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            except BaseException:  # cancelled (shutdown): nobody may think theirs is durable
                for _, done in group:
                    done.cancel()
                raise
            for _, done in group:
                if not done.done():
                    done.set_result(None)

    # ----------------------------------------------------------------- late saves
    def track(self, linkedid: str, task: asyncio.Future[Any]) -> None:
        """A database save still running after its deadline: the call stays held until it ends,
        and the replay of this call waits for it."""
        self._inflight.setdefault(linkedid, set()).add(task)

        def done(t: asyncio.Future[Any]) -> None:
            tasks = self._inflight.get(linkedid)
            if tasks is not None:
                tasks.discard(t)
                if not tasks:
                    del self._inflight[linkedid]
            if not t.cancelled() and t.exception() is not None:
                log.info("late database save failed; the journal has it",
                         extra={"linkedid": linkedid, "error": repr(t.exception())})

        task.add_done_callback(done)

    async def settle(self, linkedid: str) -> None:
        """Wait until this call's late database saves have ended (each is bounded by the
        engine's own timeouts)."""
        tasks = self._inflight.get(linkedid)
        if tasks:
            await asyncio.wait(set(tasks))

    # ----------------------------------------------------------------- breaker
    def db_down(self) -> bool:
        return time.monotonic() < self._down_until

    def db_answered(self) -> None:
        """A survey write has just succeeded: the database is up."""
        self._answered_at = time.monotonic()

    def db_failed(self) -> None:
        """A step failed, or missed its deadline. Unless some write succeeded within that
        deadline, new steps skip the database for :data:`BREAKER_SECONDS`. A database that
        answers others is congested, not down (issue 13: a burst's steps missing the deadline
        opened the breaker, which journalled every step for 3 s and only moved the burst's load
        to the replay); a database that answers nobody is down, and each caller waiting out the
        deadline would only add its pause."""
        if time.monotonic() - self._answered_at < self.deadline:
            return
        if not self.db_down():
            log.warning("database not answering the survey; steps go to the local journal",
                        extra={"journal": str(self.log.directory)})
        self._down_until = time.monotonic() + BREAKER_SECONDS

    def db_ok(self) -> None:
        self._down_until = 0.0


# ----------------------------------------------------------------------------- folding
@dataclass
class NetEffect:
    """What a call's journalled records come to."""

    linkedid: str
    info: dict[str, Any] = field(default_factory=dict)
    first_at: dt.datetime | None = None
    live: bool = False  # the survey started (a live caller)
    vote: dict[str, Any] | None = None  # the last save: level, reasons, comment, final, rated_at
    vote_at: dt.datetime | None = None
    not_rated_at: dt.datetime | None = None


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def fold(records: list[dict[str, Any]]) -> dict[str, NetEffect]:
    """The net effect per call, in the order the calls first appear."""
    nets: dict[str, NetEffect] = {}
    for record in records:
        if record.get("v") != VERSION or "linkedid" not in record:
            log.error("journal record of an unknown form skipped",
                      extra={"keys": sorted(record)})
            continue
        net = nets.setdefault(record["linkedid"], NetEffect(record["linkedid"]))
        at = parse_time(record["at"])
        net.first_at = net.first_at or at
        for key, value in (record.get("info") or {}).items():
            if value not in (None, "", False):  # a later step adds, never erases
                net.info[key] = value
        op = record.get("op")
        if op == OP_BEGIN:
            if record.get("live"):
                net.live = True
            else:
                net.not_rated_at = net.not_rated_at or at
        elif op == OP_SAVE:
            net.vote = record["vote"]
            net.vote_at = at
        elif op == OP_NOT_RATED:
            net.not_rated_at = net.not_rated_at or at
    return nets
