"""Issue 13: round trips to Asterisk per survey, counted. All the channel variables the survey
needs come in ONE ``GET FULL VARIABLE`` (URIENCODE-joined), so the menu starts after two round
trips (that and CHANNEL STATUS) instead of up to ten; the greeting and the menu are one GET
DATA (no key can fall between two commands there); a whole 满意 survey takes five."""

from __future__ import annotations

from sqlalchemy import select

from ivr.agi.simulated import SimulatedCaller, fastagi_call, split_args
from service.context import AppContext
from storage.models import Call
from tests.integration.test_fastagi_server import HOST, running


async def test_a_survey_costs_five_round_trips_and_two_before_the_menu(ctx: AppContext) -> None:
    caller = SimulatedCaller(keys=["2"], variables={"HOTLINE_AGENT": "A9", "QUEUENAME": "q1",
                                                    "HOTLINE_CASE_ID": "GD-1|(x) y"})
    async with running(ctx) as srv:
        lines = await fastagi_call(HOST, srv.bound_port, caller)
    verbs = [" ".join(split_args(line)[:2]) for line in lines]
    print(f"round trips per survey: {len(lines)} ({', '.join(verbs)})")
    assert verbs == ["GET FULL", "CHANNEL STATUS", "GET DATA", "SET VARIABLE", "STREAM FILE"]
    assert caller.variables["SURVEY_RESULT"] == "2"
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call))
    # values holding the separator, parentheses and spaces come through intact
    assert call is not None and (call.agent_id, call.queue, call.case_number) == (
        "A9", "q1", "GD-1|(x) y")
