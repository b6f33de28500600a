"""A survey's first rating of a call, when it is the usual case (a 满意-side final vote, on
PostgreSQL): ONE statement for the call, the rating and its outbox entry, shared by the calls
voting at the same moment (storage/write_batch.py).

The general path (storage/ratings.py, ``upsert_rating`` in a transaction) was ~7 round trips,
each a turn of a busy event loop while a connection is held; 2,000 callers pressing at once
waited seconds for the pool and past the survey's save deadline (issue 13). Anything unusual
— a rating already stored, a call defaulted or missing — returns None here, and the caller
takes the general path, which decides against what is stored.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from storage import outbox_wake
from storage.db import Database
from storage.models import OutboxStatus, RatingKind, RatingSource, SurveyStatus
from storage.ratings import snapshot
from storage.write_batch import WriteBatcher, first_of_each


@dataclass(frozen=True)
class _NewRating:
    """The rating :func:`store_first_vote` inserts, as :func:`snapshot` reads it (the values the
    statement alone knows are laid over the snapshot in SQL)."""

    project_no: str
    level: int
    reason_codes: str | None
    comment_recording: str | None
    rated_at: dt.datetime
    id: int | None = None
    assess_number: int = 1
    kind: str = RatingKind.PER_CALL
    source: str = RatingSource.KEYPAD
    comment_text: str | None = None
    agent_id: str | None = None
    department_code: str | None = None
    valid: bool = True
    invalid_reason: str | None = None


async def store_first_vote(
    db: Database, call_id: int, project_no: str, level: int,
    reason_codes: Sequence[str] | None, comment_recording: str | None, rated_at: dt.datetime,
    now: dt.datetime, on_sent: Callable[[bool], None] | None = None,
) -> int | None:
    """The call's first rating, in its final save, in ONE statement in autocommit, together with
    the other calls voting at the same moment (:func:`store_first_votes`). The call becomes
    ``rated`` unless defaulted and gives its case, agent and department as they are at that
    moment; the rating is inserted unless it exists; its outbox entry, ready at once, carries
    :func:`snapshot` with the four values only the statement knows laid over it. ``on_sent``
    tells when the vote is in the database.

    Returns the rating's id, or None when the usual case does not hold: the caller then takes
    the general path. Nothing is lost either way: the statement is atomic, and its call update
    is one the general path would make too."""
    rating = _NewRating(
        project_no=project_no, level=int(level),
        reason_codes=",".join(reason_codes) if reason_codes else None,
        comment_recording=comment_recording, rated_at=rated_at,
    )
    row = (call_id, project_no, rating.level, rating.reason_codes, rating.comment_recording,
           rated_at, json.dumps(snapshot(rating)), now)
    batcher = db.batcher("first_votes", lambda: WriteBatcher(
        lambda rows: store_first_votes(db, rows), db.slots))
    return await batcher.submit(row, on_sent)  # type: ignore[no-any-return]


async def store_first_votes(db: Database, rows: Sequence[tuple[Any, ...]]) -> list[int | None]:
    """:func:`store_first_vote` for many calls in one statement: a rating id per row, or None.
    The same call twice: the first row votes, the second finds its rating stored."""
    first = first_of_each([row[0] for row in rows])
    voting = [row for row, is_first in zip(rows, first, strict=True) if is_first]
    stored = await db.fetch_direct(_first_votes_sql(), [
        *(list(column) for column in zip(*voting, strict=True)),
        SurveyStatus.RATED, SurveyStatus.DEFAULTED, RatingKind.PER_CALL, RatingSource.KEYPAD,
        OutboxStatus.PENDING,
    ])
    ratings = {voted_call: rating_id for voted_call, rating_id, queued in stored
               if queued is not None}
    if ratings:
        outbox_wake.signal_of(db).committed()
    return [ratings.get(row[0]) if is_first else None
            for row, is_first in zip(rows, first, strict=True)]


@functools.cache
def _first_votes_sql() -> str:
    """:func:`store_first_votes`' statement: the votes as one array per column ($1–$8), the
    status and kind values as parameters ($9–$13), so it is prepared once whatever the number
    of votes. A writing CTE: the calls' update, the ratings' insert and the outbox entries'
    insert commit together or not at all."""
    return """
WITH vote AS (
    SELECT * FROM unnest($1::bigint[], $2::varchar[], $3::integer[], $4::varchar[],
                         $5::varchar[], $6::timestamptz[], $7::text[], $8::timestamptz[])
        AS vote(call_id, project_no, level, reason_codes, comment_recording, rated_at,
                payload, now)
), voted_call AS (
    UPDATE calls SET survey_status = $9, updated_at = vote.now, ended_at = vote.now
    FROM vote WHERE calls.id = vote.call_id AND calls.survey_status != $10
    RETURNING calls.id, calls.case_number, calls.agent_id, calls.department_code
), new_rating AS (
    INSERT INTO ratings (project_no, assess_number, kind, source, level, reason_codes,
                         comment_recording, rated_at, valid, created_at, updated_at, call_id,
                         case_id, agent_id, department_code)
    SELECT vote.project_no, 1, $11, $12, vote.level, vote.reason_codes,
           vote.comment_recording, vote.rated_at, true, vote.now, vote.now, voted_call.id,
           (SELECT cases.id FROM cases WHERE cases.case_number = voted_call.case_number),
           voted_call.agent_id, voted_call.department_code
    FROM voted_call JOIN vote ON vote.call_id = voted_call.id
    ON CONFLICT ON CONSTRAINT uq_ratings_key DO NOTHING
    RETURNING ratings.id, ratings.call_id, ratings.agent_id, ratings.department_code
), queued AS (
    INSERT INTO outbox (rating_id, project_no, assess_number, event, payload, ready_at,
                        next_attempt_at, status, attempts, created_at)
    SELECT new_rating.id, vote.project_no, 1, 'rating',
           CAST(CAST(vote.payload AS jsonb) || jsonb_build_object(
               'rating_id', new_rating.id, 'case_number', voted_call.case_number,
               'agent_id', new_rating.agent_id, 'department_code', new_rating.department_code)
               AS json),
           vote.now, vote.now, $13, 0, vote.now
    FROM new_rating JOIN voted_call ON voted_call.id = new_rating.call_id
         JOIN vote ON vote.call_id = new_rating.call_id
    RETURNING outbox.id, outbox.rating_id
)
SELECT new_rating.call_id, new_rating.id, queued.id
FROM new_rating LEFT JOIN queued ON queued.rating_id = new_rating.id
"""
