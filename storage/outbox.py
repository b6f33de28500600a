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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.clock import as_utc, utcnow
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
#: what a claim hands back of each entry (not the times: the forwarder needs none of them)
_CLAIMED = ("id", "event", "payload", "attempts", "project_no", "assess_number", "status",
            "claimed_by")


@functools.cache
def _claim_statement(lock: bool) -> Any:
    """``UPDATE … WHERE id IN (the ids of up to :limit entries that may be sent at :now,
    oldest first) RETURNING …``; built once (issue 13: building it was a third of a claim),
    with the values as parameters."""
    cand = _outbox.alias("cand")
    prev = _outbox.alias("prev")
    now = bindparam("now", type_=_outbox.c.ready_at.type)
    earlier_open = exists().where(
        prev.c.project_no == cand.c.project_no,
        prev.c.id < cand.c.id,
        prev.c.status != OutboxStatus.DELIVERED,
    )
    ids = (
        select(cand.c.id)
        .where(
            or_(
                and_(
                    cand.c.status == OutboxStatus.PENDING,
                    cand.c.ready_at <= now,
                    cand.c.next_attempt_at <= now,
                ),
                # a lease that ran out: its holder died mid-batch
                and_(cand.c.status == OutboxStatus.INFLIGHT, cand.c.claimed_until < now),
            ),
            ~earlier_open,
        )
        .order_by(cand.c.id)
        .limit(bindparam("limit"))
    )
    if lock:
        ids = ids.with_for_update(skip_locked=True, of=cand)
    return (
        update(_outbox)
        .where(_outbox.c.id.in_(ids))
        .values(
            status=OutboxStatus.INFLIGHT,
            claimed_by=bindparam("worker"),
            claimed_until=bindparam("until", type_=_outbox.c.claimed_until.type),
        )
        .returning(*(_outbox.c[name] for name in _CLAIMED))
    )


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
) -> list[Claimed]:
    """Reserve up to ``limit`` sendable entries for ``worker`` until now + ``lease`` seconds
    (now: the database's clock unless a test gives it)."""
    async with db.transaction() as session:
        now = now or await db_now(session)
        # Core rows, not ORM entities: the same attributes (id, payload, event, attempts …)
        # at a fraction of the cost (issue 13: hydrating entities was most of a claim)
        result = await session.execute(_claim_statement(not db.is_sqlite), {
            "now": now, "limit": limit, "worker": worker,
            "until": now + dt.timedelta(seconds=lease),
        })
        rows: list[Any] = list(result.all())
    return sorted(rows, key=lambda e: e.id)


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


@dataclass(frozen=True)
class Finished:
    """One entry's outcome for :func:`finish_many`."""

    entry_id: int
    status: str  # delivered, dead, or pending (a retry)
    error: str | None = None
    retry_in: float = 0.0  # seconds, for a retry


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
            query = (
                select(_outbox.c.id)
                .where(
                    _outbox.c.id.in_(ids),
                    _outbox.c.status == OutboxStatus.INFLIGHT,
                    _outbox.c.claimed_by == worker,
                )
                .order_by(_outbox.c.id)
            )
            if not db.is_sqlite:
                # locked until commit: nobody takes one over between this look and the update
                query = query.with_for_update()
            mine = set((await session.scalars(query)).all())
        done = [r for r in ordered if r.entry_id in mine]
        for status in (OutboxStatus.DELIVERED, OutboxStatus.DEAD, OutboxStatus.PENDING):
            rows = [r for r in done if r.status == status]
            if not rows:
                continue
            values: dict[str, Any] = {
                "status": status,
                "claimed_by": None,
                "claimed_until": None,
                "attempts": _outbox.c.attempts + 1,
            }
            if status == OutboxStatus.DELIVERED:
                # the common outcome, the same values for every row: one statement, not one
                # per row (issue 13: thousands of records a second)
                values["delivered_at"] = now
                updated = await session.execute(
                    update(_outbox)
                    .where(
                        _outbox.c.id.in_([r.entry_id for r in rows]),
                        _outbox.c.status == OutboxStatus.INFLIGHT,
                        _outbox.c.claimed_by == worker,
                    )
                    .values(**values)
                    .returning(_outbox.c.id),
                    execution_options={"synchronize_session": False},
                )
                kept.update(updated.scalars())
                continue
            values["last_error"] = bindparam("b_error")
            if status == OutboxStatus.PENDING:
                values["next_attempt_at"] = bindparam(
                    "b_next", type_=OutboxEntry.__table__.c.next_attempt_at.type
                )
            params: list[dict[str, Any]] = []
            for r in rows:
                param: dict[str, Any] = {"b_id": r.entry_id}
                if status != OutboxStatus.DELIVERED:
                    param["b_error"] = _clip(r.error or "")
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
