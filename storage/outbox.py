"""The outbox's life after ``storage.ratings`` wrote an entry: claiming entries for delivery,
recording each outcome, re-queuing, the figures for monitoring, and the pull feed's order.

Claiming (:func:`claim`) is one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`` on
PostgreSQL, so several forwarder processes never hold the same entry; a claim is a lease
(``claimed_until``) that its holder renews while it works and that anybody may take over once
it has run out (the holder crashed). SQLite serialises writers, so the same single statement is
atomic there without the locking clause; SQLite runs one forwarder.

Every lease and retry time is read from the database's clock (:func:`db_now`), never the
host's: forwarders on several hosts share one PostgreSQL, and a host whose clock runs ahead
would otherwise take over leases that have not run out (issue 8, defect 10).

Per case, entries go strictly in order: an entry is claimable only when every earlier entry of
the same ``project_no`` is delivered. A dead-lettered entry therefore holds back the later
entries of its case until it is re-queued and delivered (an invalidation must not overtake the
rating it invalidates).
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.clock import as_utc, utcnow
from storage import driver_sql
from storage.audit import record_audit
from storage.db import Database
from storage.models import OutboxEntry, OutboxFeedState, OutboxStatus

_outbox = OutboxEntry.__table__
_feed_state = OutboxFeedState.__table__

#: longest last_error kept; a receiver's error page can be large
MAX_ERROR = 2000


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


# ---------------------------------------------------------------------------- the clock
async def db_now(session: AsyncSession) -> dt.datetime:
    """The database server's time (UTC, aware). On SQLite, an embedded database, that is the
    clock of this host, the one SQLite itself would read."""
    if session.bind.dialect.name == "sqlite":
        # the host's clock, read here rather than by a statement through the database's
        # thread (issue 13: a round trip per transaction); not hotline.clock.utcnow, which
        # tests move to play a host whose clock is wrong
        return dt.datetime.now(dt.UTC)
    value = await session.scalar(select(func.now()))
    return as_utc(value)


# ---------------------------------------------------------------------------- claiming
class ClaimedEntry(NamedTuple):
    """What a claim hands back of each entry (not the times: the forwarder needs none)."""

    id: int
    event: str
    payload: dict[str, Any]
    attempts: int
    project_no: str
    assess_number: int
    status: str
    claimed_by: str | None


@functools.cache
def _claim_sql(sqlite: bool) -> str:
    """``UPDATE … WHERE id IN (the ids of up to ?5 entries that may be sent at ?3, oldest
    first) RETURNING …`` (?1 the worker, ?2 the lease's end, ?4 the limit). SQL text run by
    the driver (storage.driver_sql; issue 13: compiling the statement and processing its rows
    was most of a claim's CPU).

    The candidates are read in id order from the partial index of open entries
    (``ix_outbox_open``), so a claim reads about as many entries as it takes, however long
    the backlog: SQLite's planner otherwise reads every pending entry through
    ``ix_outbox_status_next`` and sorts them (35 ms at 20,000 pending, issue 13), hence
    ``INDEXED BY`` there; PostgreSQL chooses the index itself given the ``status IN`` term,
    and locks what it takes (``SKIP LOCKED``: another forwarder's claim passes by)."""
    pending, inflight, delivered = (
        OutboxStatus.PENDING, OutboxStatus.INFLIGHT, OutboxStatus.DELIVERED
    )
    sql = f"""
        UPDATE outbox SET status = '{inflight}', claimed_by = ?1, claimed_until = ?2
        WHERE id IN (
            SELECT cand.id FROM outbox AS cand{" INDEXED BY ix_outbox_open" if sqlite else ""}
            WHERE cand.status IN ('{pending}', '{inflight}')
              AND ((cand.status = '{pending}' AND cand.ready_at <= ?3
                    AND cand.next_attempt_at <= ?3)
                   -- a lease that ran out: its holder died mid-batch
                   OR (cand.status = '{inflight}' AND cand.claimed_until < ?3))
              -- per case in order: every earlier entry of its case is delivered
              AND NOT EXISTS (
                  SELECT 1 FROM outbox AS prev
                  WHERE prev.project_no = cand.project_no AND prev.id < cand.id
                    AND prev.status != '{delivered}')
            ORDER BY cand.id
            LIMIT ?4{"" if sqlite else " FOR UPDATE OF cand SKIP LOCKED"})
        RETURNING {", ".join(ClaimedEntry._fields)}"""
    return driver_sql.numbered(sql, sqlite)


class Claimed(Protocol):
    """What a claim gives for each entry (a row of the outbox; an OutboxEntry has the same)."""

    @property
    def id(self) -> int: ...
    @property
    def event(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def attempts(self) -> int: ...
    @property
    def project_no(self) -> str: ...


async def claim(
    db: Database, worker: str, limit: int, lease: float, now: dt.datetime | None = None
) -> list[ClaimedEntry]:
    """Reserve up to ``limit`` sendable entries for ``worker`` until now + ``lease`` seconds
    (now: the database's clock unless a test gives it), oldest first."""
    async with db.transaction() as session:
        return await claim_in(session, worker, limit, lease, now)


async def claim_in(
    session: AsyncSession, worker: str, limit: int, lease: float,
    now: dt.datetime | None = None,
) -> list[ClaimedEntry]:
    """:func:`claim` in the caller's transaction (the forwarder reads what the records need
    beside them in the same one)."""
    now = now or await db_now(session)
    dialect = session.bind.dialect
    time = driver_sql.time_binder(dialect)
    found = await driver_sql.rows(session, _claim_sql(dialect.name == "sqlite"), (
        worker, time(now + dt.timedelta(seconds=lease)), time(now), limit,
    ))
    decode = driver_sql.json_value
    entries = [
        ClaimedEntry(i, event, decode(payload), attempts, project, assess, status, by)
        for i, event, payload, attempts, project, assess, status, by in found
    ]
    entries.sort(key=_by_id)
    return entries


_by_id = operator.attrgetter("id")


async def renew(
    db: Database, worker: str, ids: Sequence[int], lease: float
) -> tuple[set[int], dt.datetime]:
    """Extend ``worker``'s lease on ``ids``; returns the ids still held and the new deadline
    (by the database's clock)."""
    async with db.transaction() as session:
        until = await db_now(session) + dt.timedelta(seconds=lease)
        if not ids:
            return set(), until
        stmt = (
            update(OutboxEntry)
            .where(
                OutboxEntry.id.in_(list(ids)),
                OutboxEntry.status == OutboxStatus.INFLIGHT,
                OutboxEntry.claimed_by == worker,
            )
            .values(claimed_until=until)
            .returning(OutboxEntry.id)
            .execution_options(synchronize_session=False)
        )
        held = set((await session.scalars(stmt)).all())
    return held, until


# ---------------------------------------------------------------------------- outcomes
async def _finish(db: Database, entry_id: int, worker: str, **values: Any) -> bool:
    """Record an outcome, only if ``worker`` still holds the entry (one row per transaction:
    short locks, no lock-order deadlocks with the feed sequencer)."""
    stmt = (
        update(OutboxEntry)
        .where(
            OutboxEntry.id == entry_id,
            OutboxEntry.status == OutboxStatus.INFLIGHT,
            OutboxEntry.claimed_by == worker,
        )
        .values(claimed_by=None, claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    async with db.transaction() as session:
        result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_delivered(db: Database, entry_id: int, worker: str) -> bool:
    """The receiver acknowledged the entry."""
    kept = await finish_many(db, worker, [Finished(entry_id, OutboxStatus.DELIVERED)])
    return bool(kept)


async def mark_retry(
    db: Database,
    entry_id: int,
    worker: str,
    error: str,
    next_attempt_at: dt.datetime | None = None,
    *,
    delay: float = 0.0,
) -> bool:
    """A transient failure: back to pending, not before ``next_attempt_at`` (or ``delay``
    seconds from now by the database's clock)."""
    if next_attempt_at is None:
        kept = await finish_many(
            db, worker, [Finished(entry_id, OutboxStatus.PENDING, error, delay)]
        )
        return bool(kept)
    return await _finish(
        db,
        entry_id,
        worker,
        status=OutboxStatus.PENDING,
        next_attempt_at=next_attempt_at,
        attempts=OutboxEntry.attempts + 1,
        last_error=_clip(error),
    )


class Finished(NamedTuple):
    """One entry's outcome for :func:`finish_many` (a tuple: one per record sent)."""

    entry_id: int
    status: str  # delivered, dead, or pending (a retry)
    error: str | None = None
    retry_in: float = 0.0  # seconds, for a retry


@functools.cache
def _held_sql(sqlite: bool) -> str:
    """Which of the ids ?1 ``worker`` (?2) still holds, locked in id order on PostgreSQL."""
    return driver_sql.numbered(f"""
        SELECT id FROM outbox
        WHERE {driver_sql.in_list("id", 1, sqlite)}
          AND status = '{OutboxStatus.INFLIGHT}' AND claimed_by = ?2
        ORDER BY id{"" if sqlite else " FOR UPDATE"}""", sqlite)


@functools.cache
def _delivered_sql(sqlite: bool) -> str:
    """Entries ?2 delivered at ?1, those ``worker`` (?3) still holds; RETURNING their ids."""
    return driver_sql.numbered(f"""
        UPDATE outbox SET status = '{OutboxStatus.DELIVERED}', claimed_by = NULL,
            claimed_until = NULL, attempts = attempts + 1, delivered_at = ?1
        WHERE {driver_sql.in_list("id", 2, sqlite)}
          AND status = '{OutboxStatus.INFLIGHT}' AND claimed_by = ?3
        RETURNING id""", sqlite)


async def finish_many(db: Database, worker: str, results: Sequence[Finished]) -> set[int]:
    """Record a batch's outcomes in one transaction (one round of statements, not one
    transaction per record), each only if ``worker`` still holds the entry. Rows are updated
    in id order, the order every writer of the outbox locks them in, so two forwarders (or
    the feed sequencer, which skips locked rows) never deadlock. Returns the ids recorded."""
    if not results:
        return set()
    ordered = sorted(results, key=lambda r: r.entry_id)
    held = (
        _outbox.c.id == bindparam("b_id"),
        _outbox.c.status == OutboxStatus.INFLIGHT,
        _outbox.c.claimed_by == worker,
    )
    kept: set[int] = set()
    async with db.transaction() as session:
        now = await db_now(session)
        # which of them this worker still holds; the conditional updates below re-check it
        ids = [r.entry_id for r in ordered]
        if db.is_sqlite and all(r.status == OutboxStatus.DELIVERED for r in ordered):
            # one writer at a time and no row locks to take in order: the one UPDATE …
            # RETURNING below says which were still held (issue 13: a statement less)
            mine = set(ids)
        else:
            # locked until commit (PostgreSQL): nobody takes one over between this look and
            # the updates
            mine = {row[0] for row in await driver_sql.rows(
                session, _held_sql(db.is_sqlite), (driver_sql.values(ids, db.is_sqlite), worker)
            )}
        done = [r for r in ordered if r.entry_id in mine]
        for status in (OutboxStatus.DELIVERED, OutboxStatus.DEAD, OutboxStatus.PENDING):
            rows = [r for r in done if r.status == status]
            if not rows:
                continue
            if status == OutboxStatus.DELIVERED:
                # the common outcome, the same values for every row: one statement, not one
                # per row (issue 13: thousands of records a second)
                updated = await driver_sql.rows(session, _delivered_sql(db.is_sqlite), (
                    driver_sql.time_binder(session.bind.dialect)(now),
                    driver_sql.values([r.entry_id for r in rows], db.is_sqlite),
                    worker,
                ))
                kept.update(row[0] for row in updated)
                continue
            values: dict[str, Any] = {
                "status": status,
                "claimed_by": None,
                "claimed_until": None,
                "attempts": _outbox.c.attempts + 1,
                "last_error": bindparam("b_error"),
            }
            if status == OutboxStatus.PENDING:
                values["next_attempt_at"] = bindparam(
                    "b_next", type_=OutboxEntry.__table__.c.next_attempt_at.type
                )
            params: list[dict[str, Any]] = []
            for r in rows:
                param: dict[str, Any] = {"b_id": r.entry_id, "b_error": _clip(r.error or "")}
                if status == OutboxStatus.PENDING:
                    param["b_next"] = now + dt.timedelta(seconds=max(0.0, r.retry_in))
                params.append(param)
            await session.execute(
                update(_outbox).where(*held).values(**values),
                params,
                execution_options={"synchronize_session": False},
            )
            kept.update(r.entry_id for r in rows)
    return kept


async def mark_dead(db: Database, entry_id: int, worker: str, error: str) -> bool:
    """The receiver refused the record as invalid: keep it aside with the reason."""
    return await _finish(
        db,
        entry_id,
        worker,
        status=OutboxStatus.DEAD,
        attempts=OutboxEntry.attempts + 1,
        last_error=_clip(error),
    )


async def release(db: Database, worker: str, ids: Sequence[int]) -> int:
    """Give back entries that were claimed but never sent (a clean stop)."""
    if not ids:
        return 0
    stmt = (
        update(OutboxEntry)
        .where(
            OutboxEntry.id.in_(list(ids)),
            OutboxEntry.status == OutboxStatus.INFLIGHT,
            OutboxEntry.claimed_by == worker,
        )
        .values(status=OutboxStatus.PENDING, claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    async with db.transaction() as session:
        result = await session.execute(stmt)
    return int(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- operators
@dataclass(frozen=True)
class RetryResult:
    requeued: list[int]
    not_found: list[int]
    skipped: dict[int, str]  # id -> status that cannot be re-queued (delivered, in flight)


async def retry(db: Database, ids: Sequence[int], *, actor: str, role: str) -> RetryResult:
    """Re-queue dead (or backing-off pending) entries for an immediate attempt; ``actor``
    (with ``role``) is audited in the same transaction."""
    wanted = sorted(set(ids))
    async with db.transaction() as session:
        found = dict(
            (
                await session.execute(
                    select(OutboxEntry.id, OutboxEntry.status).where(OutboxEntry.id.in_(wanted))
                )
            )
            .all()
        )
        ok = [i for i in wanted if found.get(i) in (OutboxStatus.DEAD, OutboxStatus.PENDING)]
        if ok:
            await session.execute(
                update(OutboxEntry)
                .where(
                    OutboxEntry.id.in_(ok),
                    OutboxEntry.status.in_([OutboxStatus.DEAD, OutboxStatus.PENDING]),
                )
                .values(status=OutboxStatus.PENDING, next_attempt_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            await record_audit(session, actor=actor, role=role, action="outbox.retry",
                               subject_type="outbox", details={"ids": ok})
    return RetryResult(
        requeued=ok,
        not_found=[i for i in wanted if i not in found],
        skipped={i: found[i] for i in wanted if i in found and i not in ok},
    )


async def retry_all_dead(db: Database, *, actor: str, role: str) -> int:
    """Re-queue every dead entry; audited like ``retry``."""
    async with db.transaction() as session:
        result = await session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.status == OutboxStatus.DEAD)
            .values(status=OutboxStatus.PENDING, next_attempt_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        count = int(result.rowcount)  # type: ignore[attr-defined]
        if count:
            await record_audit(session, actor=actor, role=role, action="outbox.retry_all_dead",
                               subject_type="outbox", details={"count": count})
    return count


async def dead_entries(db: Database, limit: int = 100) -> list[OutboxEntry]:
    async with db.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(OutboxEntry)
                    .where(OutboxEntry.status == OutboxStatus.DEAD)
                    .order_by(OutboxEntry.id)
                    .limit(limit)
                )
            ).all()
        )


@dataclass(frozen=True)
class OutboxCounts:
    """What ``hotline outbox status`` prints and monitoring scrapes."""

    pending: int  # includes held
    held: int  # pending, but the rating is still being completed (ready_at in the future)
    inflight: int
    delivered: int
    dead: int
    oldest_pending_age_seconds: float | None  # None: nothing pending

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "held": self.held,
            "inflight": self.inflight,
            "delivered": self.delivered,
            "dead": self.dead,
            "oldest_pending_age_seconds": self.oldest_pending_age_seconds,
        }


async def counts(db: Database, now: dt.datetime | None = None) -> OutboxCounts:
    now = now or utcnow()
    async with db.sessions() as session:
        by_status = dict(
            (
                await session.execute(
                    select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)
                )
            )
            .all()
        )
        held = await session.scalar(
            select(func.count()).where(
                OutboxEntry.status == OutboxStatus.PENDING, OutboxEntry.ready_at > now
            )
        )
        oldest = await session.scalar(
            select(func.min(OutboxEntry.created_at)).where(
                OutboxEntry.status == OutboxStatus.PENDING
            )
        )
    if oldest is not None and not isinstance(oldest, dt.datetime):  # SQLite: text from MIN()
        oldest = dt.datetime.fromisoformat(str(oldest))
    return OutboxCounts(
        pending=by_status.get(OutboxStatus.PENDING, 0),
        held=int(held or 0),
        inflight=by_status.get(OutboxStatus.INFLIGHT, 0),
        delivered=by_status.get(OutboxStatus.DELIVERED, 0),
        dead=by_status.get(OutboxStatus.DEAD, 0),
        oldest_pending_age_seconds=(
            None if oldest is None else max(0.0, (now - as_utc(oldest)).total_seconds())
        ),
    )


# ---------------------------------------------------------------------------- the pull feed
async def sequence_feed(db: Database, limit: int = 1000, now: dt.datetime | None = None) -> int:
    """Number up to ``limit`` committed, ready, not yet numbered entries (in id order, bar
    rows locked at that moment) after every number given so far. Returns how many were
    numbered.

    Why this is gap-free for readers: only one sequencer runs at a time (the first statement
    takes the row lock on ``outbox_feed_state``; on SQLite it takes the database's write lock),
    and each later statement sees everything committed before that lock was granted. Numbers
    therefore become visible in increasing order: once a reader has seen number n, no entry
    will ever appear with a number below n. Entries committing late simply get later numbers;
    held entries get theirs when they become ready. The counter lives in its own row rather
    than MAX(feed_seq) because a renumbered entry gives its old number up, and numbers must
    never be reused.
    """
    now = now or utcnow()
    async with db.transaction() as session:
        last = await session.scalar(
            update(_feed_state)
            .where(_feed_state.c.id == 1)
            .values(last_seq=_feed_state.c.last_seq)
            .returning(_feed_state.c.last_seq)
        )
        if last is None:
            raise RuntimeError("outbox_feed_state is empty: run `hotline db upgrade`")
        todo = (
            select(_outbox.c.id)
            .where(_outbox.c.feed_seq.is_(None), _outbox.c.ready_at <= now)
            .order_by(_outbox.c.id)
            .limit(limit)
        )
        if not db.is_sqlite:
            # never wait for a row another transaction holds (a claim, a refresh): waiting
            # while holding other rows could deadlock; a skipped entry is numbered next time,
            # later in the feed, which is no gap
            todo = todo.with_for_update(skip_locked=True)
        ids = list((await session.scalars(todo)).all())
        if not ids:
            return 0
        await session.execute(
            update(_outbox)
            .where(
                _outbox.c.id == bindparam("b_id"),
                # re-checked against the latest row version: a concurrent refresh may have
                # put the entry on hold again; its number then simply stays unused
                _outbox.c.feed_seq.is_(None),
                _outbox.c.ready_at <= now,
            )
            .values(feed_seq=bindparam("b_seq")),
            [{"b_id": entry_id, "b_seq": last + n} for n, entry_id in enumerate(ids, 1)],
        )
        await session.execute(
            update(_feed_state).where(_feed_state.c.id == 1).values(last_seq=last + len(ids))
        )
    return len(ids)


async def feed_page(db: Database, after: int, limit: int) -> list[tuple[int, OutboxEntry]]:
    """Up to ``limit`` numbered entries after cursor ``after``, in feed order."""
    feed = _outbox.alias("feed")
    async with db.sessions() as session:
        rows = (
            (
                await session.execute(
                    select(feed.c.feed_seq, OutboxEntry)
                    .join(feed, feed.c.id == OutboxEntry.id)
                    .where(feed.c.feed_seq > after)
                    .order_by(feed.c.feed_seq)
                    .limit(limit)
                )
            )
            .all()
        )
    return [(int(seq), entry) for seq, entry in rows]
