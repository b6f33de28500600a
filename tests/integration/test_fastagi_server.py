"""The FastAGI server over real TCP with a scripted Asterisk peer: routing, the survey route
into the real databases, capacity, read timeouts, EOF, and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import select

from ivr import prompts
from ivr.agi.channel import AgiChannel
from ivr.agi.server import FastAgiServer
from ivr.agi.simulated import SimulatedCaller, environment_lines, fastagi_call, split_args
from ivr.survey_flow import record_rejected
from service import agi as server
from service.context import AppContext
from storage.models import Call, Rating, SurveyStatus
from tests.helpers.fastagi import HOST, running


async def open_session(port: int, route: str = "survey") -> tuple[asyncio.StreamReader,
                                                                  asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write("".join(f"{line}\n" for line in environment_lines(route=route)).encode())
    await writer.drain()
    return reader, writer


async def test_survey_route_rates_the_call(ctx: AppContext) -> None:
    caller = SimulatedCaller(keys=["4", "2", "2"], variables={"HOTLINE_AGENT": "A7"})
    async with running(ctx) as srv:
        lines = await fastagi_call(HOST, srv.bound_port, caller)
    # every channel variable in one round trip (issue 13), then the menu at once
    assert lines[0].startswith("GET FULL VARIABLE ${URIENCODE(${CHANNEL(linkedid)})}|")
    assert lines[1] == "GET DATA hotline/survey-welcome 6000 1"
    assert caller.variables["SURVEY_RESULT"] == "4"
    async with ctx.db.sessions() as s:
        rating = await s.scalar(select(Rating))
    assert rating is not None and (rating.level, rating.reason_codes, rating.agent_id) == (
        4, "2", "A7"
    )


async def test_unknown_route_sets_an_error_and_ends(ctx: AppContext) -> None:
    """Unknown route: a failure the dialplan can branch on; the channel is not left waiting."""
    async with running(ctx) as srv:
        lines = await fastagi_call(HOST, srv.bound_port, SimulatedCaller(),
                                   environment_lines(route="nope"))
    assert [split_args(x) for x in lines] == [["SET", "VARIABLE", "HOTLINE_AGI_ERROR",
                                               "unknown-route"]]


async def test_over_capacity_is_rejected_quickly(ctx: AppContext) -> None:
    async with running(ctx, max_calls=1) as srv:
        held_reader, held_writer = await open_session(srv.bound_port)
        assert (await held_reader.readline()).startswith(b"GET FULL VARIABLE")
        assert srv.active_calls == 1
        lines = await asyncio.wait_for(
            fastagi_call(HOST, srv.bound_port, SimulatedCaller()), timeout=3
        )
        assert [split_args(x) for x in lines] == [["SET", "VARIABLE", "HOTLINE_AGI_ERROR", "busy"]]
        held_writer.close()


async def test_rejected_survey_call_is_recorded_not_rated(ctx: AppContext) -> None:
    """Rule 1 at capacity: no survey, but the call is not lost."""
    async with running(ctx, max_calls=1, on_reject=record_rejected) as srv:
        held_reader, held_writer = await open_session(srv.bound_port)
        assert (await held_reader.readline()).startswith(b"GET FULL VARIABLE")
        caller = SimulatedCaller(variables={"HOTLINE_AGENT": "A5"})
        lines = await asyncio.wait_for(fastagi_call(HOST, srv.bound_port, caller), timeout=5)
        assert split_args(lines[0]) == ["SET", "VARIABLE", "HOTLINE_AGI_ERROR", "busy"]
        assert caller.played == []
        held_writer.close()
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call))
    assert call is not None and call.survey_status == SurveyStatus.NOT_RATED
    assert call.agent_id == "A5"


async def test_silent_asterisk_hits_the_read_timeout(ctx: AppContext) -> None:
    """A timeout on every read: a peer that stops answering does not hold a slot forever."""
    async with running(ctx, read_timeout=0.3) as srv:
        reader, writer = await open_session(srv.bound_port)
        assert (await reader.readline()).startswith(b"GET FULL VARIABLE")
        rest = await asyncio.wait_for(reader.read(), timeout=3)  # server closes: EOF
        assert rest == b""
        writer.close()
        await asyncio.sleep(0.05)
        assert srv.active_calls == 0


async def test_eof_mid_survey_leaves_the_call_not_rated(ctx: AppContext) -> None:
    """EOF at any time (Asterisk gone): the caller is recorded as not rated (rule 1)."""
    caller = SimulatedCaller(keys=[])

    def responder(line: str) -> list[str] | None:
        if line.startswith("GET DATA"):
            return None  # Asterisk closes the socket instead of answering
        return caller(line)

    async with running(ctx) as srv:
        await fastagi_call(HOST, srv.bound_port, responder)
        for _ in range(50):
            if srv.active_calls == 0:
                break
            await asyncio.sleep(0.02)
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call))
    assert call is not None and call.survey_status == SurveyStatus.NOT_RATED


async def test_hangup_twice_and_511_end_the_session_cleanly(ctx: AppContext) -> None:
    caller = SimulatedCaller(keys=["hangup"], double_hangup=True)
    async with running(ctx) as srv:
        lines = await fastagi_call(HOST, srv.bound_port, caller)
    assert sum(line.startswith("GET DATA") for line in lines) == 1
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call))
    assert call is not None and call.survey_status == SurveyStatus.NOT_RATED


async def test_agi_exit_on_hangup_eof_instead_of_511(ctx: AppContext) -> None:
    caller = SimulatedCaller(keys=["4", "hangup"], eof_on_hangup=True)
    async with running(ctx) as srv:
        await fastagi_call(HOST, srv.bound_port, caller)
        await asyncio.sleep(0.1)
    async with ctx.db.sessions() as s:
        rating = await s.scalar(select(Rating))
    assert rating is not None and rating.level == 4


async def test_handler_crash_sets_internal_error(ctx: AppContext) -> None:
    async def broken(_ctx: AppContext, channel: AgiChannel) -> None:
        raise RuntimeError("bug")

    async with running(ctx, {"broken": broken}) as srv:
        lines = await fastagi_call(HOST, srv.bound_port, SimulatedCaller(),
                                   environment_lines(route="broken"))
    assert [split_args(x) for x in lines] == [["SET", "VARIABLE", "HOTLINE_AGI_ERROR", "internal"]]


async def test_graceful_stop_lets_a_call_in_progress_finish(ctx: AppContext) -> None:
    """Stop: no new connections, the call in progress finishes within the grace period."""
    srv = FastAgiServer(ctx, server.ROUTES, host=HOST, port=0, max_calls=10, read_timeout=5,
                        shutdown_grace=5)
    await srv.start()
    port = srv.bound_port
    reader, writer = await open_session(port)
    assert (await reader.readline()).startswith(b"GET FULL VARIABLE")
    stopper = asyncio.create_task(srv.stop())
    await asyncio.sleep(0.1)
    assert not stopper.done()
    with pytest.raises(OSError):
        await asyncio.open_connection(HOST, port)
    # the caller finishes the survey: press 1
    caller = SimulatedCaller(keys=["1"])
    writer.write(b"200 result=1 (1700000000.5)\n")
    while raw := await reader.readline():
        reply = caller(raw.decode().rstrip("\n"))
        assert reply is not None
        writer.write("".join(f"{r}\n" for r in reply).encode())
    await asyncio.wait_for(stopper, timeout=3)
    assert caller.variables["SURVEY_RESULT"] == "1"
    writer.close()


async def test_stop_cuts_calls_after_the_grace_period(ctx: AppContext) -> None:
    srv = FastAgiServer(ctx, server.ROUTES, host=HOST, port=0, max_calls=10, read_timeout=30,
                        shutdown_grace=0.2)
    await srv.start()
    reader, writer = await open_session(srv.bound_port)
    assert (await reader.readline()).startswith(b"GET FULL VARIABLE")
    await asyncio.wait_for(srv.stop(), timeout=3)
    assert await asyncio.wait_for(reader.read(), timeout=3) == b""
    assert srv.active_calls == 0
    writer.close()


async def test_worker_refuses_to_start_without_prompts(ctx: AppContext) -> None:
    """GET DATA answers -1 for a missing file, like a hang-up: start-up checks the prompts."""
    with pytest.raises(server.PromptsMissingError, match="hotline prompts build"):
        await server.run(ctx, asyncio.Event())


async def test_worker_serves_until_stopped(ctx: AppContext, unused_tcp_port: int) -> None:
    directory = ctx.settings.effective_prompts_dir
    for pid in prompts.catalogue(ctx.settings):  # the hotline/<id> prompts and the zh digits
        folder, name = prompts.place(ctx.settings, pid)
        (folder / f"{name}.wav").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.wav").write_bytes(b"RIFF")
    ctx.settings.fastagi_port = unused_tcp_port
    stopping = asyncio.Event()
    worker = asyncio.create_task(server.run(ctx, stopping))
    for _ in range(100):
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection(HOST, unused_tcp_port)
            w.close()
            break
        await asyncio.sleep(0.02)
    lines = await fastagi_call(HOST, unused_tcp_port, SimulatedCaller(keys=["3"]))
    assert lines
    assert (directory / "recordings").is_dir()
    stopping.set()
    await asyncio.wait_for(worker, timeout=5)
