"""Issue 8, "more than one machine": two service instances on one PostgreSQL, the real Asterisk
22 sandbox's dialplan falling back to the second FastAGI address (global
HOTLINE_FASTAGI_FALLBACK, ivr/dialplans/survey.conf) when the first fails. The first instance is
killed in the middle of calls (its sessions cut, its port closed); the calls it was serving
continue on the second, and calls placed afterwards go straight to it (AGISTATUS=FAILURE on the
first). Every call ends recorded once, rated by the caller's key (DOMAIN.md rule 1)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from ami.client import AmiClient
from ivr import prompts
from ivr.agi.channel import AgiChannel
from ivr.agi.server import FastAgiServer
from ivr.survey_flow import handle, record_rejected
from sandbox.instance import AsteriskSandbox
from service.context import AppContext
from storage.models import Call, Rating, SurveyStatus
from tests.waiting import wait_until

pytestmark = [pytest.mark.asterisk, pytest.mark.postgres]

FIRST_WAVE = 4  # in the survey on the first instance when it dies
SECOND_WAVE = 3  # placed after it died
#: the caller presses 2 every 3 s: whichever instance is listening takes the first it hears
SCRIPT = "w1.5|d2|w3|d2|w3|d2|w3|d2|w3|d2"


@contextlib.asynccontextmanager
async def instance(ctx: AppContext, port: int, served: Counter[str], name: str
                   ) -> AsyncIterator[FastAgiServer]:
    async def counting(ctx: AppContext, channel: AgiChannel) -> object:
        served[name] += 1
        return await handle(ctx, channel)

    srv = FastAgiServer(ctx, {"survey": counting}, host="127.0.0.1", port=port, max_calls=50,
                        read_timeout=60, shutdown_grace=0, on_reject=record_rejected)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def originate(ami: AmiClient, linkedid: str) -> None:
    response = await ami.send({
        "Action": "Originate", "Channel": "Local/s@hotline-test-caller",
        "Context": "hotline-survey", "Exten": "s", "Priority": 1,
        "ChannelId": linkedid, "OtherChannelId": f"{linkedid}-caller",
        "CallerID": "<13800138000>", "Variable": [f"HOTLINE_TEST_SCRIPT={SCRIPT}"],
        "Async": True, "Timeout": 10000,
    })
    assert response.ok, response


async def test_two_instances_one_killed_in_the_middle_of_calls(
    asterisk: AsteriskSandbox, ami: AmiClient, postgres_url: str,
) -> None:
    base = asterisk.settings
    assert base is not None
    settings = base.model_copy(update={"database_url": postgres_url,
                                       "survey_digit_timeout_ms": 3000})
    await asyncio.to_thread(prompts.build_prompts, settings)
    second_port = asterisk.fastagi_port + 10
    fallback = f"agi://127.0.0.1:{second_port}"
    ctx1, ctx2 = AppContext.create(settings), AppContext.create(settings)
    served: Counter[str] = Counter()
    run = secrets.token_hex(3)
    first = [f"two-{run}-a{i}" for i in range(FIRST_WAVE)]
    second = [f"two-{run}-b{i}" for i in range(SECOND_WAVE)]
    await ami.send({"Action": "Setvar", "Variable": "HOTLINE_FASTAGI_FALLBACK",
                    "Value": fallback})
    try:
        async with instance(ctx2, second_port, served, "second"):
            async with instance(ctx1, asterisk.fastagi_port, served, "first") as one:
                for linkedid in first:
                    await originate(ami, linkedid)

                async def all_on_first() -> bool:
                    return one.active_calls == FIRST_WAVE

                await wait_until(all_on_first, within=20)
                # killed: every session cut at once, the port closed (as a SIGKILL would)
            for linkedid in second:
                await originate(ami, linkedid)
            everyone = [*first, *second]

            async def all_ended() -> bool:
                async with ctx2.db.sessions() as s:
                    n = await s.scalar(select(func.count()).select_from(Call).where(
                        Call.linkedid.in_(everyone),
                        Call.survey_status.in_([SurveyStatus.RATED, SurveyStatus.NOT_RATED])))
                return n == len(everyone)

            await wait_until(all_ended, within=90)
        async with ctx2.db.sessions() as s:
            calls = (await s.scalars(select(Call).where(Call.linkedid.in_(everyone)))).all()
            ratings = (await s.scalars(select(Rating).where(
                Rating.call_id.in_([c.id for c in calls])))).all()
        by_id = {c.linkedid: c for c in calls}
        lost = [x for x in everyone if x not in by_id]
        per_call = Counter(r.call_id for r in ratings)
        duplicated = sum(n - 1 for n in per_call.values())
        rated = sum(c.survey_status == SurveyStatus.RATED for c in calls)
        print(f"two instances: tried {len(everyone)} lost {len(lost)} duplicated {duplicated} "
              f"(rated {rated}; sessions first {served['first']} second {served['second']})")
        assert lost == [] and duplicated == 0
        # the second instance took over the cut calls and served the later ones
        assert served["first"] == FIRST_WAVE and served["second"] >= len(everyone)
        assert rated == len(everyone)
        assert {r.level for r in ratings} == {2}
    finally:
        await ami.send({"Action": "Setvar", "Variable": "HOTLINE_FASTAGI_FALLBACK",
                        "Value": ""})
        await ctx1.close()
        await ctx2.close()
