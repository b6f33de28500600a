"""Issue 13: round trips to Asterisk per survey, counted. All the channel variables the survey
needs come in ONE ``GET FULL VARIABLE`` (URIENCODE-joined), and the menu follows at once (the
channel's state is not asked: a menu refused as on a dead channel tells it), so the menu
starts after one round trip instead of up to ten; the greeting and the menu are one GET DATA
(no key can fall between two commands there); a whole 满意 survey takes four."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event, select

from hotline.clock import utcnow
from ivr.agi.simulated import SimulatedCaller, fastagi_call, split_args
from service.context import AppContext
from storage.models import Call, Case, OutboxEntry, OutboxStatus, Rating
from storage.ratings import snapshot
from tests.helpers.fastagi import HOST, running


async def test_a_survey_costs_four_round_trips_and_one_before_the_menu(ctx: AppContext) -> None:
    caller = SimulatedCaller(keys=["2"], variables={"HOTLINE_AGENT": "A9", "QUEUENAME": "q1",
                                                    "HOTLINE_CASE_ID": "GD-1|(x) y"})
    async with running(ctx) as srv:
        lines = await fastagi_call(HOST, srv.bound_port, caller)
    verbs = [" ".join(split_args(line)[:2]) for line in lines]
    print(f"round trips per survey: {len(lines)} ({', '.join(verbs)})")
    assert verbs == ["GET FULL", "GET DATA", "SET VARIABLE", "STREAM FILE"]
    assert caller.variables["SURVEY_RESULT"] == "2"
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call))
    # values holding the separator, parentheses and spaces come through intact
    assert call is not None and (call.agent_id, call.queue, call.case_number) == (
        "A9", "q1", "GD-1|(x) y")


async def test_a_good_rating_costs_two_statements_on_postgresql(ctx: AppContext) -> None:
    """Issue 13: on PostgreSQL a 满意 survey writes the call row (one statement, before the
    menu) and its rating with the outbox entry (one statement, ``store_first_vote``), both in
    autocommit; the entry carries the same snapshot as the general path, with the
    case attached to the call before the vote (rule 2 and issue 8 defect 11: never lost)."""
    async with ctx.db.transaction() as s:
        s.add(Case(case_number="GD-7", department_code="D1"))
    statements: list[str] = []

    def on_statement(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "pg_notify" not in statement:  # the forwarder's wake-up, on a connection of its own
            statements.append(statement.split(None, 1)[0])

    event.listen(Engine, "before_cursor_execute", on_statement)  # the pools of ctx.db
    direct = ctx.db.fetch_direct

    async def counted(sql: str, arguments: Any) -> Any:
        statements.append(sql.split(None, 1)[0])
        return await direct(sql, arguments)

    ctx.db.fetch_direct = counted  # type: ignore[method-assign]  # asyncpg, not SQLAlchemy
    caller = SimulatedCaller(keys=["2"], variables={"HOTLINE_AGENT": "A9",
                                                    "HOTLINE_CASE_ID": "GD-7"})
    try:
        async with running(ctx) as srv:
            await fastagi_call(HOST, srv.bound_port, caller)
    finally:
        event.remove(Engine, "before_cursor_execute", on_statement)
    async with ctx.db.sessions() as s:
        rating = await s.scalar(select(Rating))
        case = await s.scalar(select(Case))
        [entry] = (await s.scalars(select(OutboxEntry))).all()
    assert rating is not None and case is not None
    assert (rating.level, rating.agent_id, rating.case_id) == (2, "A9", case.id)
    assert entry.payload == snapshot(rating, "GD-7")
    assert entry.status == OutboxStatus.PENDING and entry.ready_at <= utcnow()
    if not ctx.db.is_sqlite:
        assert statements == ["INSERT", "WITH"]
