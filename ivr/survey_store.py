"""Where the survey's decisions land in the database: the call (upserted by ``linkedid``) and
its 一次一评 rating, saved after every step so a hang-up keeps what was already pressed.

The caller's number is stored only through the phone vault (encrypted, keyed hash, mask;
DOMAIN.md rule 8) and never logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.clock import utcnow
from hotline.levels import Level
from hotline.statuses import SURVEY_RESOLVED as RESOLVED
from hotline.statuses import SURVEY_UNRESOLVED as UNRESOLVED
from ivr.survey import Save
from service.context import AppContext
from storage.calls import upsert_call
from storage.models import Call, Case, Rating, RatingKind, RatingSource, SurveyStatus
from storage.ratings import RatingInput, project_no_for_call, release_rating, save_rating

log = logging.getLogger("hotline.ivr.store")

#: how long a rating being completed is held back from delivery beyond the comment's length:
#: a crash mid-survey delays the push by this much, it never loses it (storage.ratings)
HOLD_MARGIN = dt.timedelta(minutes=10)


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


@dataclass(frozen=True)
class Existing:
    """The call was already resolved before this survey started."""

    status: str
    level: Level | None


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


class SurveyStore:
    def __init__(self, ctx: AppContext, info: CallInfo) -> None:
        self.ctx = ctx
        self.info = info
        self.call_id: int | None = None
        self.rated_at: dt.datetime | None = None
        self._hold = HOLD_MARGIN + dt.timedelta(seconds=ctx.settings.survey_comment_max_seconds)

    @property
    def project_no(self) -> str:
        return project_no_for_call(self.info.linkedid)

    async def begin(self, *, live: bool) -> Existing | None:
        """Upsert the call. A live caller starts the survey (``in_progress``); a caller already
        gone is recorded as not rated (rule 1). Returns :class:`Existing` when the call is
        already rated or defaulted: the survey must not run twice for one call."""
        now = utcnow()

        async def change(s: AsyncSession, call: Call) -> Existing | None:
            self._fill(call)
            await s.flush()
            self.call_id = call.id
            if call.survey_status in RESOLVED:
                level = await s.scalar(
                    select(Rating.level).where(
                        Rating.project_no == self.project_no, Rating.assess_number == 1
                    )
                )
                return Existing(call.survey_status, Level(level) if level else None)
            if live:
                call.survey_status = SurveyStatus.IN_PROGRESS
                call.survey_started_at = now
            else:
                call.survey_status = (
                    SurveyStatus.ABANDONED if self.info.abandoned else SurveyStatus.NOT_RATED
                )
                call.ended_at = call.ended_at or now
            return None

        return await upsert_call(self.ctx.db, self.info.linkedid, change, started_at=now)

    def _fill(self, call: Call) -> None:
        """Add what this channel knows; never erase what an earlier step (the API, an earlier
        survey) stored with a value this channel does not have."""
        info = self.info
        if info.uniqueid and not call.uniqueid:
            call.uniqueid = _clip(info.uniqueid, 64)
        if info.channel:
            call.channel = _clip(info.channel, 128)
        if info.caller and not call.caller_hash:
            protected = self.ctx.vault.protect(info.caller)
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

    async def save(self, action: Save) -> int:
        """Upsert the rating (idempotent: one rating per call) with its outbox entry, held
        while the survey goes on and released by the final save."""
        if self.call_id is None:
            raise RuntimeError("begin() first")
        now = utcnow()
        self.rated_at = self.rated_at or now
        async with self.ctx.db.transaction() as s:
            call = await s.get(Call, self.call_id, with_for_update=True)
            assert call is not None
            case_id = None
            if call.case_number:
                case_id = await s.scalar(
                    select(Case.id).where(Case.case_number == call.case_number)
                )
            rating = await save_rating(
                s,
                RatingInput(
                    project_no=self.project_no,
                    kind=RatingKind.PER_CALL,
                    source=RatingSource.KEYPAD,
                    level=action.level,
                    reason_codes=list(action.reason_codes) if action.reason_codes else None,
                    comment_recording=action.comment_recording,
                    call_id=call.id,
                    case_id=case_id,
                    case_number=call.case_number,
                    agent_id=call.agent_id,
                    department_code=call.department_code,
                    rated_at=self.rated_at,
                ),
                hold_until=None if action.final else now + self._hold,
                # only a 差评 has a 整改 deadline; the working-day count is the costliest
                # step of a save (profile, issue 13), so a good rating skips it
                rectification_due=(
                    self.ctx.rectification_due(self.rated_at) if action.level.is_bad else None
                ),
            )
            if action.final:
                await release_rating(s, rating.id)
                call.ended_at = now
            call.survey_status = SurveyStatus.RATED
            return rating.id

    async def mark_not_rated(self) -> None:
        """Rule 1: not rated, never lost. Conditional, so it can never undo a rating."""
        if self.call_id is None:
            raise RuntimeError("begin() first")
        now = utcnow()
        async with self.ctx.db.transaction() as s:
            await s.execute(
                update(Call)
                .where(Call.id == self.call_id, Call.survey_status.in_(UNRESOLVED))
                .values(survey_status=SurveyStatus.NOT_RATED, ended_at=now, updated_at=now)
            )
