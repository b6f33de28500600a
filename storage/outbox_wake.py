"""Waking the forwarder when a sendable outbox entry is committed, instead of letting it find
the entry at its next poll (issue 13: keypress → receipt p99 < 1 s; polling once a second
cost up to a second on its own).

Nothing on the write path changes: ORM session events notice a transaction that inserts an
outbox entry, or updates one's ``ready_at`` (a refresh, the release of a held entry), and
after its commit fire the database's :class:`Signal`. In the same process that wakes the
forwarder at once; on PostgreSQL it also sends ``NOTIFY hotline_outbox`` (after the commit, on
a connection of its own, coalesced: at most one in flight), which wakes forwarders in other
processes through :func:`listen`. A lost wake-up costs nothing but latency: the forwarder
still polls every ``forwarder_poll_interval``.

The forwarder's own bookkeeping (claims, outcomes, leases) never sets ``ready_at`` and so
never wakes anybody: no ping-pong between its lanes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from hotline.clock import as_utc, utcnow
from storage.db import Database
from storage.models import OutboxEntry

log = logging.getLogger("hotline.outbox")

#: Database.info key of the database's Signal (copied into every session's info)
SIGNAL = "outbox_signal"
#: session.info key: this transaction wrote a sendable entry
_WROTE = "outbox_wrote"
#: the PostgreSQL channel
CHANNEL = "hotline_outbox"


class Signal:
    """Something may be sendable: a generation of waiters woken together.

    A waiter takes a :meth:`ticket` *before* looking at the outbox and waits on it after
    finding nothing: a commit in between has already set that ticket, so it is never missed.
    """

    def __init__(self, db: Database | None = None) -> None:
        self._event = asyncio.Event()
        self._db = db if db is not None and not db.is_sqlite else None
        self._notifying: asyncio.Task[None] | None = None
        self._again = False
        #: sent as the NOTIFY payload: this process ignores its own (already woken)
        self.token = secrets.token_hex(8)

    def ticket(self) -> asyncio.Event:
        return self._event

    def wake(self) -> None:
        """Wake this process's waiters (an entry was committed here or NOTIFY arrived)."""
        current, self._event = self._event, asyncio.Event()
        current.set()

    def committed(self) -> None:
        """A transaction of this process committed a sendable entry."""
        self.wake()
        if self._db is None:
            return
        if self._notifying is not None and not self._notifying.done():
            self._again = True  # one more NOTIFY after the one in flight covers it
            return
        try:
            self._notifying = asyncio.get_running_loop().create_task(self._notify())
        except RuntimeError:  # no loop (a synchronous caller): the poll finds it
            pass

    async def _notify(self) -> None:
        assert self._db is not None
        again = True
        while again:
            self._again = False
            try:
                async with self._db.engine.connect() as conn:
                    await conn.execute(
                        text(f"SELECT pg_notify('{CHANNEL}', :token)"), {"token": self.token}
                    )
                    await conn.commit()
            except Exception as exc:  # the poll still finds the entry: only latency is lost
                log.debug("outbox NOTIFY failed", extra={"error": str(exc)[:200]})
                return
            again = self._again


def install(db: Database) -> Signal:
    """The database's signal (created once); call before sessions are opened."""
    found = db.info.get(SIGNAL)
    if found is None:
        found = db.info[SIGNAL] = Signal(db)
    return found  # type: ignore[no-any-return]


def signal_of(db: Database) -> Signal:
    return install(db)


# ---------------------------------------------------------------------- the session events
def _ready(when: Any) -> bool:
    """An entry ready at ``when`` is sendable now. A held entry (a survey still running,
    ready_at in the future) wakes nobody: its release does."""
    if isinstance(when, dt.datetime):
        return as_utc(when) <= utcnow() + dt.timedelta(seconds=1)
    return True  # an SQL expression: assume so (a wake costs one look)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    if SIGNAL in session.info and any(
        isinstance(o, OutboxEntry) and _ready(o.ready_at) for o in session.new
    ):
        session.info[_WROTE] = True


def _sets_ready_at(statement: Any) -> bool:
    # the columns an UPDATE sets (keys are column objects or names, values bound parameters)
    values = getattr(statement, "_values", None) or {}
    return any(
        getattr(k, "key", k) == "ready_at" and _ready(getattr(v, "value", v))
        for k, v in values.items()
    )


@event.listens_for(Session, "do_orm_execute")
def _do_orm_execute(state: ORMExecuteState) -> None:
    session = state.session
    if SIGNAL not in session.info or not state.is_update:
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ is OutboxEntry and _sets_ready_at(state.statement):
        session.info[_WROTE] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_WROTE, False):
        signal = session.info.get(SIGNAL)
        if isinstance(signal, Signal):
            signal.committed()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_WROTE, None)


# ---------------------------------------------------------------------- other processes
async def listen(db: Database, signal: Signal, stopping: asyncio.Event, retry: float) -> None:
    """PostgreSQL: wake ``signal`` on every ``NOTIFY hotline_outbox`` until ``stopping``,
    holding one connection; re-listens after ``retry`` seconds when it is lost. SQLite has
    one process writing and forwarding: nothing to listen to."""
    if db.is_sqlite:
        await stopping.wait()
        return
    while not stopping.is_set():
        lost = asyncio.Event()
        try:
            async with db.engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None

                def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                    if payload != signal.token:
                        signal.wake()

                def on_close(*_args: Any, lost: asyncio.Event = lost) -> None:
                    lost.set()

                raw.add_termination_listener(on_close)
                await raw.add_listener(CHANNEL, on_notify)
                # entries committed before LISTEN took effect: look once
                signal.wake()
                try:
                    await _first(stopping, lost)
                finally:
                    with contextlib.suppress(Exception):
                        await raw.remove_listener(CHANNEL, on_notify)
                    if lost.is_set():
                        conn.invalidate()
        except Exception as exc:
            log.warning(
                "cannot LISTEN for new outbox entries; polling only meanwhile",
                extra={"error": str(exc)[:200]},
            )
        if not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=retry)


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
