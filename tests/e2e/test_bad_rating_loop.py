"""The 差评 closed loop end to end (issue 10 "Tests"), on the real Asterisk 22 sandbox, the
carrier simulator and the real PostgreSQL, with every worker of ``hotline serve`` running
(FastAGI, HTTP API, forwarder, 回访 scheduler, 差评 worker):

a caller rates the agent 5 (非常不满意) in the survey of a real call → a 差评 item opens for the
agent's department → the department verifies 属实 and rectifies through the HTTP API with its
token → the 回访 calls the citizen through the carrier, tells the department's result (rendered
with the prompts' TTS) and the citizen says "not solved" → a second round opens → the
department rectifies again → the second 回访: solved and satisfied → the item is closed. Every
step is in the audit log, and the survey's rating and both 回访 evaluations reached the
provincial receiver (forwarder/simulated.py), each under its own key (DOMAIN.md rule 5 回访,
rule 9 aggregation, "The 差评 loop"; seeds 000-004; issue 8 defect 6).

The carrier's citizens behave as their number says (sandbox/carrier.py), so the citizen's two
answers need two numbers: between the rounds the test gives the case the second one, as the
工单 system would record a citizen's new contact number.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from ami.client import AmiClient
from callback_scheduler import followup as f
from callback_scheduler.followup_agi import DEPARTMENT_PROMPT_KIND, RESULT_PROMPT_KIND
from forwarder.simulated import Receiver
from hotline.settings import DEFAULT_CALLBACK_RETRY_MINUTES, Settings
from http_api import tokens
from ivr import prompts, spoken
from sandbox import testcall
from sandbox.carrier import Carrier, Press, keys_number, random_tag
from sandbox.instance import AsteriskSandbox
from service.context import AppContext
from service.serve import serve
from storage.models import BadRatingItem, CallbackTask, Case, OutboxEntry, OutboxStatus

pytestmark = pytest.mark.asterisk

CASE = "GD-8"  # its digit is said with SAY DIGITS: short, to keep the 回访 short
DEPARTMENT, DEPARTMENT_NAME = "D1", "住建局"
AGENT, AGENT_TALK = "A3001", 4
RESULTS = ("已对窗口人员批评教育，并为您重新办理。", "已上门为您办结。")
LIMIT = 150.0  # the whole loop, seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def loop_settings(asterisk: AsteriskSandbox, rx: Receiver, url: str, tmp_path: Path) -> Settings:
    base = asterisk.settings
    assert base is not None
    forwarding = rx.settings_for(tmp_path, url)
    return base.model_copy(update={
        "database_url": url,
        **{k: getattr(forwarding, k) for k in type(forwarding).model_fields
           if k.startswith("forwarder_")},
        "http_port": _free_port(),
        "serve_reports": False,
        "serve_default_ratings": False,
        "survey_digit_timeout_ms": 4000,
        "callback_windows": ["00:00-24:00"],
        "callback_working_days_only": False,
        "callback_retry_minutes": {k: 0 for k in DEFAULT_CALLBACK_RETRY_MINUTES},
        "callback_max_attempts": 1,
        "callback_ring_seconds": 10,
        "callback_response_grace_seconds": 5.0,
        "callback_poll_interval": 0.2,
        "callback_calls_per_minute": 1000,
    })


async def intro_seconds(settings: Settings, result: str) -> float:
    """How long the 回访 speaks before asking "问题是否已解决" (the citizen's first key must
    come after it: keys pressed while a prompt plays without listening are lost)."""
    directory = settings.effective_prompts_dir
    dept = await spoken.spoken_prompt(settings, DEPARTMENT_PROMPT_KIND, DEPARTMENT_NAME)
    told = await spoken.spoken_prompt(settings, RESULT_PROMPT_KIND, result)
    assert dept is not None and told is not None
    files = [directory / f"{pid}.wav" for pid in (
        f.GREETING, f.CASE_NUMBER, f.DEPARTMENT, dept, f.RESULT, told)]
    files.append(prompts.language_dir(settings) / "digits" / "8.wav")
    return sum(_seconds(p) for p in files)


def citizen_answering(resolved: str, level: str, intro: float, satisfaction: float) -> str:
    """A citizen who waits for the question, then presses ``resolved``, then ``level``."""
    return keys_number([Press(resolved, after=math.ceil(intro + 2)),
                        Press(level, after=math.ceil(satisfaction + 2))], tag=random_tag(2))


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def call(self, method: str, path: str, token: str, body: Any = None,
                   status: int = 200) -> Any:
        async with self.http.request(method, self.base + path, json=body,
                                     headers={"Authorization": f"Bearer {token}"}) as resp:
            data = await resp.json()
            assert resp.status == status, data
            return data


async def token(ctx: AppContext, role: str, **kw: Any) -> str:
    async with ctx.db.transaction() as s:
        _, secret = await tokens.create_token(s, name=f"e2e-{role}", role=role, **kw)
    return secret


async def until(what: str, check: Callable[[], Awaitable[bool]], asterisk: AsteriskSandbox,
                within: float = 60.0) -> None:
    try:
        async with asyncio.timeout(within):
            while not await check():  # noqa: ASYNC110 - the database has nothing to await
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}\n{asterisk.log_tail(40)}")


@contextlib.asynccontextmanager
async def hotline_serve(settings: Settings) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    service = asyncio.create_task(serve(settings, stopping))
    try:
        for _ in range(200):  # until the HTTP API and FastAGI listen
            with contextlib.suppress(OSError):
                for port in (settings.http_port, settings.fastagi_port):
                    _, w = await asyncio.open_connection("127.0.0.1", port)
                    w.close()
                break
            assert not service.done(), "hotline serve stopped at start"
            await asyncio.sleep(0.1)
        yield
    finally:
        stopping.set()
        assert await asyncio.wait_for(service, 60), "a worker of hotline serve failed"


def played_since(asterisk: AsteriskSandbox, offset: int) -> str:
    """What Asterisk logged (verbose 3: "Playing 'hotline/…'") after ``offset`` bytes."""
    with open(asterisk.run_dir / "log" / "messages.log", "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def log_size(asterisk: AsteriskSandbox) -> int:
    return (asterisk.run_dir / "log" / "messages.log").stat().st_size


async def test_bad_rating_closed_loop_on_asterisk_and_postgresql(
    asterisk: AsteriskSandbox, ami: AmiClient, carrier: Carrier, carrier_ami: AmiClient,
    postgres_url: str, tmp_path: Path,
) -> None:
    async with Receiver() as rx:
        settings = loop_settings(asterisk, rx, postgres_url, tmp_path)
        await asyncio.to_thread(prompts.build_prompts, settings)  # real espeak-ng + sox
        satisfaction = _seconds(settings.effective_prompts_dir / f"{f.SATISFACTION}.wav")
        intros = [await intro_seconds(settings, text) for text in RESULTS]
        round_one = citizen_answering("2", "2", intros[0], satisfaction)  # not solved, 满意
        round_two = citizen_answering("1", "1", intros[1], satisfaction)  # solved, 非常满意
        ctx = AppContext.create(settings)  # the test's own view of the database
        try:
            async with asyncio.timeout(LIMIT), hotline_serve(settings), \
                    aiohttp.ClientSession() as http:
                api = Api(http, f"http://127.0.0.1:{settings.http_port}/api/v1")
                await _the_loop(asterisk, ami, carrier, carrier_ami, ctx, api, rx,
                                round_one, round_two)
        finally:
            await ctx.close()
        rx.assert_clean()


async def _the_loop(
    asterisk: AsteriskSandbox, ami: AmiClient, carrier: Carrier, carrier_ami: AmiClient,
    ctx: AppContext, api: Api, rx: Receiver, round_one: str, round_two: str,
) -> None:
    agent = await token(ctx, "agent", agent_id=AGENT)
    workorder = await token(ctx, "workorder")
    department = await token(ctx, "department", departments=(DEPARTMENT,))
    supervisor = await token(ctx, "supervisor")

    # 1. the caller presses 5 (非常不满意), reason 2, no voice comment; during the conversation
    # the agent attaches the case and its department to the call (PUT /calls/{id}/case)
    caller = keys_number(testcall.survey_presses(["5", "2", "2"], first_after=AGENT_TALK + 2,
                                                 gap=2))
    async with testcall.simulated_agent(ami, AGENT, testcall.talk(AGENT_TALK)):
        placed = await testcall.place_call(ami, caller, carrier=carrier, carrier_ami=carrier_ami)
        await api.call("PUT", f"/calls/{placed.linkedid}/case", agent,
                       {"case_number": CASE, "department": DEPARTMENT})
        outcome = await testcall.wait_outcome(ctx.db, placed.linkedid)
    assert outcome.rating is not None and outcome.rating.level == 5

    # 2. one 差评 item, for the department, waiting for 核实
    [item] = await api.call("GET", "/bad-ratings", department)
    assert (item["state"], item["department_code"], item["agent_id"]) == (
        "pending_verification", DEPARTMENT, AGENT)
    url = f"/bad-ratings/{item['id']}"

    # 3. the 工单 system reports the case with the citizen's number for the 回访
    await api.call("POST", "/cases", workorder, {
        "case_number": CASE, "department_code": DEPARTMENT, "department_name": DEPARTMENT_NAME,
        "citizen_number": round_one, "call_linkedid": placed.linkedid}, status=201)

    # 4. 核实 属实 and 整改 by the department: the 回访 is armed at once
    await api.call("POST", f"{url}/verify", department,
                   {"finding": "genuine", "explanation": "工作人员答复不准确，属实"})
    mark = log_size(asterisk)
    out = await api.call("POST", f"{url}/rectify", department,
                         {"reply": "已组织窗口人员培训", "citizen_result": RESULTS[0]})
    assert out["state"] == "followup"

    # 5. the 回访 through the carrier tells the result; the citizen: not solved → round 2
    async def state_is(state: str, round_: int) -> bool:
        got = await api.call("GET", url, supervisor)
        return (got["state"], got["round"]) == (state, round_)

    await until("the first 回访's answer", lambda: state_is("rectifying", 2), asterisk)
    await until("the first 回访 to end", lambda: task_settled(ctx), asterisk)
    heard = played_since(asterisk, mark)
    told = spoken.prompt_id(RESULT_PROMPT_KIND, RESULTS[0])
    assert f"hotline/{told}" in heard, heard[-3000:]
    # the question is asked with the do-not-call hint as one file (issue 13)
    assert heard.index(f"hotline/{told}") < heard.index(
        f"hotline/{prompts.played_as(f.RESOLVED_MENU)}")

    # 6. a second 整改 and its 回访 (the citizen is reached on the number given since)
    await give_case_number(ctx, round_two)
    mark = log_size(asterisk)
    out = await api.call("POST", f"{url}/rectify", department,
                         {"reply": "已上门核实处理", "citizen_result": RESULTS[1]})
    assert (out["state"], out["round"]) == ("followup", 2)
    await until("the second 回访's answer", lambda: state_is("closed", 2), asterisk)
    assert f"hotline/{spoken.prompt_id(RESULT_PROMPT_KIND, RESULTS[1])}" in played_since(
        asterisk, mark)
    closed = await api.call("GET", url, department)
    assert (closed["followup_solved"], closed["followup_level"]) == (True, 1)
    assert [e["action"] for e in closed["timeline"]] == [
        "open", "verify", "rectify", "start_followup", "followup_result",
        "rectify", "start_followup", "followup_result"]

    # 7. every step in the audit log, in order, with who did it
    audit = await api.call("GET", f"/audit?subject_type=bad_rating&subject_id={item['id']}",
                           supervisor)
    assert [(a["action"], a["role"]) for a in audit] == [
        ("bad_rating.open", "system"), ("bad_rating.verify", "department"),
        ("bad_rating.rectify", "department"), ("bad_rating.start_followup", "system"),
        ("bad_rating.followup_result", "system"), ("bad_rating.rectify", "department"),
        ("bad_rating.start_followup", "system"), ("bad_rating.followup_result", "system")]

    # 8. the survey's 差评 and both 回访 evaluations reached the receiver, each its own key
    async def all_delivered() -> bool:
        async with ctx.db.sessions() as s:
            statuses = list(await s.scalars(select(OutboxEntry.status)))
        return len(statuses) == 3 and set(statuses) == {OutboxStatus.DELIVERED}

    await until("the three records upstream", all_delivered, asterisk, within=20)
    records = {(r["projectNo"], r["assessNumber"]): r for r in rx.stored.values()}
    assert set(records) == {(f"CALL-{placed.linkedid}", 1), (CASE, 2), (CASE, 3)}
    assert len(rx.stored) == 3  # three distinct keys, none overwritten
    # the provincial scale: 5 非常满意 … 1 非常不满意 (DOMAIN.md "The five levels")
    assert [records[k]["satisfaction"] for k in sorted(records)] == [1, 4, 5]


async def task_settled(ctx: AppContext) -> bool:
    async with ctx.db.sessions() as s:
        task = await s.scalar(select(CallbackTask))
    return task is not None and task.status == "completed"


async def give_case_number(ctx: AppContext, number: str) -> None:
    """The citizen's new number on the case and its 回访 task (see the module docstring)."""
    protected = ctx.vault.protect(number)
    async with ctx.db.transaction() as s:
        case = await s.scalar(select(Case).where(Case.case_number == CASE))
        task = await s.scalar(select(CallbackTask))
        assert case is not None and task is not None
        case.citizen_enc, case.citizen_hash = protected.encrypted, protected.digest
        case.citizen_masked = protected.masked
        task.number_enc, task.number_hash = protected.encrypted, protected.digest
        task.number_masked = protected.masked
    async with ctx.db.sessions() as s:
        assert await s.scalar(select(BadRatingItem.state)) == "rectifying"
