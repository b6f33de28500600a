"""Where the survey's decisions land: the call (upserted by ``linkedid``) and its 一次一评 rating,
saved after every step so a hang-up keeps what was already pressed.

Durability (issue 8 defects 3, 5, 11): a step is durable — in the database, or else in the local
journal (:mod:`ivr.survey_journal`) — before the survey plays its next prompt. A step tries the
database (retrying what fails) for at most ``survey_save_deadline_seconds``; then it is
journalled instead and the caller hears the next prompt. From then on every later step of the
same call goes to the journal too, so the replay applies them in order; a save still running
after its deadline is waited for by the replay. A database error therefore never ends a
survey, and never lets the hang-up path or the default job turn the vote into "not rated" or a
default.

Every status change is conditional in the statement itself (``UPDATE … WHERE survey_status …``),
never read-check-write, so on SQLite (where ``FOR UPDATE`` does nothing) the default job, the
hang-up handler and the HTTP API cannot overwrite each other's decisions.

The caller's number is stored only through the phone vault (encrypted, keyed hash, mask;
DOMAIN.md rule 8) and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.clock import utcnow
from hotline.levels import Level
from hotline.privacy import ProtectedNumber
from hotline.statuses import SURVEY_RESOLVED as RESOLVED
from hotline.statuses import SURVEY_UNRESOLVED as UNRESOLVED
from ivr.survey import Save
from ivr.survey_journal import OP_BEGIN, OP_NOT_RATED, OP_SAVE, NetEffect, parse_time
from service.context import AppContext
from storage.calls import insert_new_call, upsert_call
from storage.db import Database
from storage.first_votes import store_first_vote
from storage.models import (
    Call,
    Case,
    Rating,
    RatingKind,
    RatingSource,
    SurveyStatus,
)
from storage.ratings import (
    RatingInput,
    project_no_for_call,
    release_rating,
    upsert_rating,
)

log = logging.getLogger("hotline.ivr.store")

T = TypeVar("T")

#: how long a rating being completed is held back from delivery beyond the comment's length:
#: a crash mid-survey delays the push by this much, it never loses it (storage.ratings)
HOLD_MARGIN = dt.timedelta(minutes=10)
#: first pause before a failed database step is tried again (doubling, within the deadline)
RETRY_DELAY = 0.1


@dataclass
class CallInfo:
    """What the channel tells about the call (AGI environment and channel variables)."""

    linkedid: str
    uniqueid: str | None = None
    channel: str | None = None
    caller: str | None = field(default=None, repr=False)  # personal data: vault only
    agent_id: str | None = None
    queue: str | None = None
    case_number: str | None = None
    department_code: str | None = None
    abandoned: bool = False  # the caller left the queue before any agent answered
    #: the caller's number already protected (a journalled call being replayed)
    caller_protected: ProtectedNumber | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Existing:
    """The call was already resolved before this survey started."""

    status: str
    level: Level | None


@dataclass(frozen=True)
class Vote:
    """One save of the caller's rating: everything known so far."""

    level: int
    reason_codes: tuple[str, ...] | None
    comment_recording: str | None
    final: bool
    rated_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies, and this runs for every save (issue 13)
        return {"level": self.level, "reason_codes": self.reason_codes,
                "comment_recording": self.comment_recording, "final": self.final,
                "rated_at": self.rated_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vote:
        reasons = data.get("reason_codes")
        return cls(
            level=int(data["level"]),
            reason_codes=tuple(reasons) if reasons is not None else None,
            comment_recording=data.get("comment_recording"),
            final=bool(data.get("final")),
            rated_at=parse_time(data["rated_at"]),
        )


@dataclass
class _Attempt:
    """Whether a survey step's write is inside the database right now (holding a slot, or its
    row in a batch being written), as opposed to waiting for one or between tries: only then
    can it still land after its deadline."""

    in_database: bool = False

    def sent(self, inside: bool) -> None:
        self.in_database = inside

    @contextlib.asynccontextmanager
    async def slot(self, db: Database) -> AsyncIterator[None]:
        """One of the database's places for a survey write (a burst queues here, not in the
        connection pool)."""
        async with db.slots:
            self.in_database = True
            try:
                yield
            finally:
                self.in_database = False


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


class SurveyStore:
    def __init__(self, ctx: AppContext, info: CallInfo) -> None:
        self.ctx = ctx
        self.info = info
        self.journal = ctx.survey_journal
        self.call_id: int | None = None
        self.rated_at: dt.datetime | None = None
        #: a step of this call went to the journal: every later one follows it there
        self.journalled = False

    @property
    def project_no(self) -> str:
        return project_no_for_call(self.info.linkedid)

    # ----------------------------------------------------------------- the survey's steps
    async def begin(self, *, live: bool) -> Existing | None:
        """Upsert the call. A live caller starts the survey (``in_progress``); a caller already
        gone is recorded as not rated (rule 1). Returns :class:`Existing` when the call is
        already rated or defaulted: the survey must not run twice for one call. With the
        database unavailable the survey runs anyway (its steps are journalled)."""
        now = utcnow()
        return await self._durably(lambda attempt: self._begin_db(live, now, attempt),
                                   {"op": OP_BEGIN, "live": live}, now)

    async def save(self, action: Save) -> None:
        """Upsert the rating (idempotent: one rating per call) with its outbox entry, held
        while the survey goes on and released by the final save."""
        now = utcnow()
        self.rated_at = self.rated_at or now
        vote = Vote(int(action.level), action.reason_codes, action.comment_recording,
                    action.final, self.rated_at)
        await self._durably(lambda attempt: self._save_db(vote, now, attempt),
                            {"op": OP_SAVE, "vote": vote.to_json()}, now)

    async def mark_not_rated(self) -> None:
        """Rule 1: not rated, never lost. Conditional, so it can never undo a rating."""
        now = utcnow()
        await self._durably(lambda attempt: self._not_rated_db(now, attempt),
                            {"op": OP_NOT_RATED}, now)

    # ----------------------------------------------------------------- durability
    async def _durably(
        self, write: Callable[[_Attempt], Awaitable[T]], record: dict[str, Any],
        now: dt.datetime,
    ) -> T | None:
        """The database within the deadline, else the journal; None when journalled."""
        linkedid = self.info.linkedid
        if self.journalled or self.journal.holds(linkedid) or self.journal.db_down():
            await self._to_journal(record, now)
            return None
        attempt = _Attempt()
        task = asyncio.ensure_future(self._retrying(write, attempt))
        done, _ = await asyncio.wait({task}, timeout=self.journal.deadline)
        if task in done and task.exception() is None:
            self.journal.db_answered()
            return task.result()
        if task in done:
            log.warning("survey step not saved in the database; journalled",
                        extra={"linkedid": linkedid, "error": repr(task.exception())})
        elif not attempt.in_database:
            # it never reached the database (it waited for a slot, or between tries): dropped,
            # so it cannot land after the journal's copy; no work done twice (issue 13)
            task.cancel()
            log.info("survey step waited past the deadline for the database; journalled",
                     extra={"linkedid": linkedid, "seconds": self.journal.deadline})
        else:  # inside the database and still running: the replay waits for it to end
            self.journal.track(linkedid, task)
            log.warning("survey step not saved within the deadline; journalled",
                        extra={"linkedid": linkedid, "seconds": self.journal.deadline})
        self.journal.db_failed()  # the breaker opens only if the database answers nobody
        await self._to_journal(record, now)
        return None

    async def _retrying(self, write: Callable[[_Attempt], Awaitable[T]], attempt: _Attempt
                        ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.journal.deadline
        delay = RETRY_DELAY
        while True:
            try:
                return await write(attempt)
            except Exception:  # OperationalError, pool timeout, failover, a lost race …
                if loop.time() + delay >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay *= 2

    async def _to_journal(self, record: dict[str, Any], now: dt.datetime) -> None:
        self.journalled = True
        await self.journal.append({
            **record, "linkedid": self.info.linkedid, "at": now.isoformat(),
            "info": self._journal_info(),
        })

    def _journal_info(self) -> dict[str, Any]:
        info = self.info
        protected = self._protected()
        return {
            "uniqueid": info.uniqueid, "channel": info.channel, "agent_id": info.agent_id,
            "queue": info.queue, "case_number": info.case_number,
            "department_code": info.department_code, "abandoned": info.abandoned,
            "caller": asdict(protected) if protected else None,
        }

    # ----------------------------------------------------------------- database
    async def _begin_db(self, live: bool, now: dt.datetime, attempt: _Attempt
                        ) -> Existing | None:
        # the usual case, a call not stored yet: one statement (issue 13); else decide against
        # the stored row below
        db = self.ctx.db
        if db.is_sqlite:
            async with attempt.slot(db):
                new_id = await insert_new_call(db, self._new_row(live, now))
        else:  # written with the other calls arriving now, on a slot of its batch
            new_id = await insert_new_call(db, self._new_row(live, now), attempt.sent)
        if new_id is not None:
            self.call_id = new_id
            return None

        async def change(s: AsyncSession, call: Call) -> Existing | None:
            new = inspect(call).pending
            self._fill(call)
            if new:  # our own insert: nobody else can have decided anything yet
                call.survey_status = self._begin_status(live)
                call.survey_started_at = now if live else None
                call.ended_at = None if live else now
                await s.flush()
                self.call_id = call.id
                return None
            await s.flush()
            self.call_id = call.id
            values: dict[str, Any] = {"survey_status": self._begin_status(live), "updated_at": now}
            if live:
                values["survey_started_at"] = now
            else:
                values["ended_at"] = func.coalesce(Call.ended_at, now)
            started = await s.execute(
                update(Call)
                .where(Call.id == call.id, Call.survey_status.not_in(RESOLVED))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if started.rowcount == 1:  # type: ignore[attr-defined]
                return None
            status = await s.scalar(select(Call.survey_status).where(Call.id == call.id))
            level = await s.scalar(
                select(Rating.level).where(
                    Rating.project_no == self.project_no, Rating.assess_number == 1
                )
            )
            return Existing(str(status), Level(level) if level else None)

        async with attempt.slot(db):
            return await upsert_call(db, self.info.linkedid, change, started_at=now)

    def _begin_status(self, live: bool) -> str:
        if live:
            return SurveyStatus.IN_PROGRESS
        return SurveyStatus.ABANDONED if self.info.abandoned else SurveyStatus.NOT_RATED

    def _new_row(self, live: bool, now: dt.datetime) -> dict[str, Any]:
        """The row :meth:`_fill` and :meth:`_begin_db`'s own insert would make, as values."""
        info = self.info
        row: dict[str, Any] = {
            "linkedid": info.linkedid,
            "started_at": now,
            "survey_status": self._begin_status(live),
            "survey_started_at": now if live else None,
            "ended_at": None if live else now,
            "uniqueid": _clip(info.uniqueid, 64),
            "channel": _clip(info.channel, 128),
            "agent_id": _clip(info.agent_id, 32),
            "queue": _clip(info.queue, 64),
            "case_number": _clip(info.case_number, 64),
            "department_code": _clip(info.department_code, 32),
            "created_at": now,
            "updated_at": now,
        }
        protected = self._protected()
        row.update(caller_enc=protected and protected.encrypted,
                   caller_hash=protected and protected.digest,
                   caller_masked=protected and protected.masked)
        return row

    def _protected(self) -> ProtectedNumber | None:
        """The caller's number through the vault, once per call (encryption costs CPU)."""
        info = self.info
        if info.caller_protected is None and info.caller:
            info.caller_protected = self.ctx.vault.protect(info.caller)
        return info.caller_protected

    def _fill(self, call: Call) -> None:
        """Add what this channel knows; never erase what an earlier step (the API, an earlier
        survey) stored with a value this channel does not have."""
        info = self.info
        if info.uniqueid and not call.uniqueid:
            call.uniqueid = _clip(info.uniqueid, 64)
        if info.channel:
            call.channel = _clip(info.channel, 128)
        protected = self._protected()
        if protected is not None and not call.caller_hash:
            call.caller_enc = protected.encrypted
            call.caller_hash = protected.digest
            call.caller_masked = protected.masked
        for attr, value, length in (
            ("agent_id", info.agent_id, 32),
            ("queue", info.queue, 64),
            ("case_number", info.case_number, 64),
            ("department_code", info.department_code, 32),
        ):
            if value:
                setattr(call, attr, _clip(value, length))

    async def _save_db(self, vote: Vote, now: dt.datetime, attempt: _Attempt) -> int:
        if self.call_id is not None and first_vote_at_once(self.ctx, vote):
            # with the other calls voting now, on a slot of its batch
            rating_id = await store_first_vote(
                self.ctx.db, self.call_id, self.project_no, vote.level, vote.reason_codes,
                vote.comment_recording, vote.rated_at, now, attempt.sent)
            if rating_id is not None:
                return rating_id
        async with attempt.slot(self.ctx.db):
            where = Call.id == self.call_id if self.call_id is not None else (
                Call.linkedid == self.info.linkedid
            )
            async with self.ctx.db.transaction() as s:
                return await store_vote(self.ctx, s, where, self.project_no, vote, now)

    async def _not_rated_db(self, now: dt.datetime, attempt: _Attempt) -> None:
        async with attempt.slot(self.ctx.db), self.ctx.db.transaction() as s:
            await s.execute(
                update(Call)
                .where(Call.linkedid == self.info.linkedid, Call.survey_status.in_(UNRESOLVED))
                .values(survey_status=SurveyStatus.NOT_RATED, ended_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )


async def store_vote(
    ctx: AppContext,
    s: AsyncSession,
    where: ColumnElement[bool],
    project_no: str,
    vote: Vote,
    now: dt.datetime,
) -> int:
    """The vote, in one transaction: the call becomes ``rated`` in a conditional statement that
    also returns the call's case, agent and department as they are at that moment (so a case
    attached by the API either is in this rating, or is refused as too late — never lost), then
    the rating and its outbox entry. A default made meanwhile (the window passed while the vote
    sat in the journal) gives way: the caller's real vote is never downgraded."""
    values: dict[str, Any] = {"survey_status": SurveyStatus.RATED, "updated_at": now}
    if vote.final:
        values["ended_at"] = now
    returned = (Call.id, Call.case_number, Call.agent_id, Call.department_code)
    row = (await s.execute(
        update(Call).where(where, Call.survey_status != SurveyStatus.DEFAULTED)
        .values(**values).returning(*returned).execution_options(synchronize_session=False)
    )).one_or_none()
    if row is None:
        row = (await s.execute(
            update(Call).where(where, Call.survey_status == SurveyStatus.DEFAULTED)
            .values(**values).returning(*returned)
            .execution_options(synchronize_session=False)
        )).one_or_none()
        if row is None:
            raise LookupError(f"no call row for {project_no}")
        log.warning("a real vote replaces the default rating", extra={"project_no": project_no})
    call_id, case_number, agent_id, department_code = row
    case_id = None
    if case_number:
        case_id = await s.scalar(select(Case.id).where(Case.case_number == case_number))
    hold = HOLD_MARGIN + dt.timedelta(seconds=ctx.settings.survey_comment_max_seconds)
    rating, written = await upsert_rating(
        s,
        RatingInput(
            project_no=project_no,
            kind=RatingKind.PER_CALL,
            source=RatingSource.KEYPAD,
            level=Level(vote.level),
            reason_codes=list(vote.reason_codes) if vote.reason_codes else None,
            comment_recording=vote.comment_recording,
            call_id=call_id,
            case_id=case_id,
            case_number=case_number,
            agent_id=agent_id,
            department_code=department_code,
            rated_at=vote.rated_at,
        ),
        # the final save queues its entry ready at once; only one that found nothing new to
        # write still has to release the entry an earlier save held (one statement less)
        hold_until=None if vote.final else now + hold,
        # only a 差评 has a 整改 deadline; the working-day count is the costliest step of a
        # save (profile, issue 13), so a good rating skips it
        rectification_due=(
            ctx.rectification_due(vote.rated_at) if Level(vote.level).is_bad else None
        ),
        skip_unchanged=True,
    )
    if vote.final and not written:
        await release_rating(s, rating.id)
    return rating.id


def first_vote_at_once(ctx: AppContext, vote: Vote) -> bool:
    """Whether :func:`storage.first_votes.store_first_vote` may try this vote: the final vote
    of a survey that is not a 差评, on PostgreSQL. A 差评 also marks its case, starts the 整改
    deadline and opens its 差评 item (the ``AFTER_SAVE`` hook), which only :func:`store_vote`
    does; SQLite has no writing CTEs and no network round trips to save."""
    return vote.final and not Level(vote.level).is_bad and not ctx.db.is_sqlite


# ----------------------------------------------------------------------------- replay
def info_from_journal(linkedid: str, data: dict[str, Any]) -> CallInfo:
    caller = data.get("caller")
    return CallInfo(
        linkedid=linkedid,
        uniqueid=data.get("uniqueid"),
        channel=data.get("channel"),
        agent_id=data.get("agent_id"),
        queue=data.get("queue"),
        case_number=data.get("case_number"),
        department_code=data.get("department_code"),
        abandoned=bool(data.get("abandoned")),
        caller_protected=ProtectedNumber(**caller) if caller else None,
    )


async def apply_journalled(ctx: AppContext, net: NetEffect) -> None:
    """Apply one call's journalled steps (idempotent: applying them again changes nothing and
    queues nothing, so a replay cut short by a crash is simply run again)."""
    store = SurveyStore(ctx, info_from_journal(net.linkedid, net.info))
    first = net.first_at or utcnow()

    async def change(s: AsyncSession, call: Call) -> None:
        store._fill(call)
        await s.flush()

    await upsert_call(ctx.db, net.linkedid, change, started_at=first)
    where = Call.linkedid == net.linkedid
    if net.vote is not None:
        async with ctx.db.transaction() as s:
            await store_vote(ctx, s, where, store.project_no, Vote.from_json(net.vote),
                             net.vote_at or utcnow())
        return
    async with ctx.db.transaction() as s:
        if net.not_rated_at is not None:
            status = SurveyStatus.ABANDONED if store.info.abandoned and not net.live else (
                SurveyStatus.NOT_RATED
            )
            await s.execute(
                update(Call).where(where, Call.survey_status.in_(UNRESOLVED))
                .values(survey_status=status, updated_at=utcnow(),
                        ended_at=func.coalesce(Call.ended_at, net.not_rated_at))
                .execution_options(synchronize_session=False)
            )
        elif net.live:  # the survey began, and nothing after it reached us (a crash)
            await s.execute(
                update(Call).where(where, Call.survey_status == SurveyStatus.PENDING)
                .values(survey_status=SurveyStatus.IN_PROGRESS, survey_started_at=first,
                        updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
