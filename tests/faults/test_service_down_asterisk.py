"""Issue 8, rule 1 without the service (DOMAIN.md rule 1: every call is recorded, never lost), on
the real Asterisk 22 sandbox: the FastAGI service is down (nothing listens on its port) while
real calls go through the 12345 queue — served ones that reach the survey and callers who give
up in the queue. Asterisk writes each call to its own ledger (CEL user event ``hotline_call``,
cel_custom); once the service is back its call ledger records every call it never saw: served
ones not rated (so 邀评 and then the default rating reach them), the others abandoned."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ami.client import AmiClient
from ivr import call_ledger
from sandbox import testcall
from sandbox.carrier import HangUp, Pause, keys_number, random_tag
from sandbox.instance import AsteriskSandbox
from service.context import AppContext
from storage.models import Call, SurveyStatus
from tests.waiting import wait_until

pytestmark = pytest.mark.asterisk

SERVED = 3
ABANDONED = 2


async def _place(ami: AmiClient, citizen: str) -> testcall.PlacedCall:
    async with asyncio.timeout(20):
        return await testcall.place_call(ami, citizen, via="local")


async def _until_gone(ami: AmiClient, linkedid: str) -> None:
    async with asyncio.timeout(60):
        await testcall.wait_gone(ami, linkedid)


async def test_rule1_calls_during_a_service_outage_are_recorded_when_it_is_back(
    asterisk: AsteriskSandbox, ami: AmiClient, sqlite_template: Path, tmp_path: Path
) -> None:
    settings = asterisk.settings
    assert settings is not None
    ledger = settings.effective_asterisk_call_log
    ledger_size = ledger.stat().st_size if ledger.exists() else 0
    # the service is down: nothing listens on the FastAGI port
    with pytest.raises(OSError):
        _, w = await asyncio.open_connection(settings.fastagi_host, asterisk.fastagi_port)
        w.close()

    placed: dict[str, str] = {}  # linkedid -> expected status
    # callers who give up in the queue, no agent there
    for _ in range(ABANDONED):
        call = await _place(ami, keys_number([Pause(4), HangUp()], tag=random_tag()))
        placed[call.linkedid] = SurveyStatus.ABANDONED
    # gone before any agent joins the queue (else the agent would take them)
    await asyncio.gather(*(_until_gone(ami, c) for c in placed))
    # served calls: the agent talks, hangs up, the caller goes on to the survey, which cannot
    # reach the service; the caller presses 2 all the same and hangs up
    async with testcall.simulated_agent(ami, "A3001", testcall.talk(2)):
        calls = await asyncio.gather(*(
            _place(ami, keys_number(testcall.survey_presses(["2"], first_after=4),
                                    tag=random_tag()))
            for _ in range(SERVED)))
        for call in calls:
            placed[call.linkedid] = SurveyStatus.NOT_RATED
        await asyncio.gather(*(_until_gone(ami, c.linkedid) for c in calls))

    async def logged() -> bool:
        text = ledger.read_bytes()[ledger_size:].decode() if ledger.exists() else ""
        return all(linkedid in text for linkedid in placed)

    await wait_until(logged, within=10)
    print(ledger.read_bytes()[ledger_size:].decode().splitlines()[0])

    # the service is back (fresh database), its call ledger runs
    db_file = tmp_path / "hotline.db"
    shutil.copyfile(sqlite_template, db_file)
    ctx = AppContext.create(settings.model_copy(update={
        "database_url": f"sqlite+aiosqlite:///{db_file}", "data_dir": tmp_path / "data"}))
    try:
        stopping = asyncio.Event()
        worker = asyncio.create_task(call_ledger.run(ctx, stopping))

        async def all_recorded() -> bool:
            async with ctx.db.sessions() as s:
                n = await s.scalar(select(func.count()).select_from(Call).where(
                    Call.linkedid.in_(list(placed))))
            return n == len(placed)

        await wait_until(all_recorded, within=15)
        again = await call_ledger.sync(ctx, call_ledger.LedgerReader(
            ledger, tmp_path / "again.position"))  # the whole file once more: no duplicates
        stopping.set()
        await worker
        async with ctx.db.sessions() as s:
            rows = (await s.scalars(select(Call).where(Call.linkedid.in_(list(placed))))).all()
            total = await s.scalar(select(func.count()).select_from(Call).where(
                Call.linkedid.in_(list(placed))))
        by_id = {c.linkedid: c for c in rows}
        lost = [linkedid for linkedid in placed if linkedid not in by_id]
        duplicated = (total or 0) - len(by_id)
        print(f"service down: tried {len(placed)} lost {len(lost)} duplicated {duplicated}")
        assert (lost, duplicated) == ([], 0)
        assert again.added == 0
        for linkedid, expected in placed.items():
            call = by_id[linkedid]
            assert call.survey_status == expected, linkedid
            assert call.ended_at is not None and call.caller_hash is not None
            if expected == SurveyStatus.NOT_RATED:
                assert (call.agent_id, call.queue) == ("A3001", "hotline")
            else:
                assert call.agent_id is None and call.queue == "hotline"
    finally:
        await ctx.close()
