"""Read-then-write races between the dialer and the follow-up IVR (issue 8 defect 5), on
SQLite and PostgreSQL.

The other party's write is made to land exactly inside the function under test: right after
that function's first statement on a given table, a second process (its own engine, in a
thread) runs its own step, and is given a second to finish. Where the function under test
already holds the row (PostgreSQL ``FOR UPDATE``, or a conditional UPDATE taking the lock) the
other party waits and runs after the commit, as it would in production."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from callback_scheduler import tasks
from callback_scheduler.claims import claim
from callback_scheduler.results import Answer
from callback_scheduler.rules import Outcome
from hotline.levels import Level
from service.context import AppContext
from storage.models import CallbackAttempt
from tests.helpers.callbacks import NOW, closed_bad_case, task_of


@contextmanager
def other_process_after_first(
    ctx: AppContext, table: str, step: Callable[[AppContext], Awaitable[Any]]
) -> Iterator[threading.Thread]:
    """Run ``step`` in another "process" right after the first statement touching ``table``."""
    other = AppContext.create(ctx.settings)

    def run() -> None:
        asyncio.run(_run_and_close(other, step))

    thread = threading.Thread(target=run)
    fired = False

    def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        nonlocal fired
        if not fired and table in statement:
            fired = True
            thread.start()
            thread.join(timeout=1.0)  # it finishes, or waits on our lock until we commit

    engine = ctx.db.engine.sync_engine
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield thread
    finally:
        event.remove(engine, "after_cursor_execute", after)
    assert fired, f"no statement on {table}"
    thread.join(timeout=30)
    assert not thread.is_alive()


async def _run_and_close(ctx: AppContext, step: Callable[[AppContext], Awaitable[Any]]) -> None:
    try:
        await step(ctx)
    finally:
        await ctx.close()


async def test_rule8_ivr_rated_while_the_hangup_is_handled_no_retry_is_planned(
    ctx: AppContext,
) -> None:
    """DOMAIN.md rule 8 (no needless call): the IVR stores "rated" while the dialer handles
    the Hangup; "answered_no_rating" must not overwrite it and plan a retry call."""
    closed = await closed_bad_case(ctx, "GD-R1")
    [a] = await claim(ctx, scheduler_id="s", now=NOW, want=1)

    async def ivr(other: AppContext) -> None:
        async with other.db.transaction() as s:
            await tasks.record_ivr_result(s, other, a.attempt_id,
                                          Answer(Level.SATISFIED, resolved=True),
                                          Outcome.RATED, now=NOW)

    with other_process_after_first(ctx, "callback_attempts", ivr):
        async with ctx.db.transaction() as s:
            await tasks.finish_attempt(s, ctx, a.attempt_id, Outcome.ANSWERED_NO_RATING,
                                       now=NOW)
    async with ctx.db.sessions() as s:
        attempt = await s.get(CallbackAttempt, a.attempt_id)
    assert attempt is not None and (attempt.status, attempt.outcome) == ("ended", "rated")
    task = await task_of(ctx, closed.task.id)
    assert (task.status, task.outcome, task.next_attempt_at) == ("completed", "rated", None)


async def test_rule8_hangup_handled_while_the_ivr_stores_the_rating_completes_the_task(
    ctx: AppContext,
) -> None:
    """The other order: the dialer plans a retry while the IVR is storing the rating; the
    task still ends completed (no retry call to a citizen who rated)."""
    closed = await closed_bad_case(ctx, "GD-R2")
    [a] = await claim(ctx, scheduler_id="s", now=NOW, want=1)

    async def hangup(other: AppContext) -> None:
        async with other.db.transaction() as s:
            await tasks.finish_attempt(s, other, a.attempt_id, Outcome.ANSWERED_NO_RATING,
                                       now=NOW)

    with other_process_after_first(ctx, "callback_tasks", hangup):
        async with ctx.db.transaction() as s:
            await tasks.record_ivr_result(s, ctx, a.attempt_id, Answer(Level.SATISFIED),
                                          Outcome.RATED, now=NOW)
    task = await task_of(ctx, closed.task.id)
    assert (task.status, task.outcome, task.next_attempt_at) == ("completed", "rated", None)
