"""整改 and 反馈 records pushed to the province where the profile defines them (issue 10 "Back to
the citizen"; seed 002 第十条 "整改及反馈情况同步报送省政务服务平台"), against the simulated
receiver on SQLite and PostgreSQL: two 整改 rounds give two 整改 and two 反馈 records, each with
its own key per item and round, after the 差评 itself and in the case's order; a 退回 reply of
the same round is its own revision; the shipped default profile queues none of them."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path

from sqlalchemy import select

from bad_ratings import service
from bad_ratings.machine import Action, Command, Finding
from bad_ratings.service import Actor
from forwarder.profile import BUILTIN_DIR
from forwarder.simulated import Receiver, add_call_rating
from hotline.clock import utcnow
from hotline.levels import Level
from service.context import AppContext
from storage.models import BadRatingItem, OutboxEntry, OutboxStatus
from tests.helpers.forwarding import all_in, context, forwarding
from tests.waiting import wait_until

DEP = Actor("dep-d1", "department", frozenset({"D1"}))
SUP = Actor("sup", "supervisor")
RECORDS = {
    "rectification": {
        "path": "/rectification",
        "fields": {
            "projectNo": "project_no", "assessNumber": "assess_number", "itemNo": "item_id",
            "round": "round", "deptCode": "dept_code", "verifyResult": "verification",
            "rectifyContent": "rectification_reply", "feedbackContent": "citizen_result",
            "rectifyTime": "rectified_at", "rectifyDeadline": "rectify_due",
            "onTime": "rectified_on_time", "dataSource": "values.data_source",
        },
    },
    "feedback": {
        "path": "/feedback",
        "fields": {
            "projectNo": "project_no", "assessNumber": "assess_number", "itemNo": "item_id",
            "round": "round", "solved": "followup_solved",
            "satisfaction": "followup_satisfaction", "feedbackTime": "followup_at",
        },
    },
}


def site_profile(tmp_path: Path) -> Path:
    data = tomllib.loads((BUILTIN_DIR / "default.toml").read_text(encoding="utf-8"))
    data["records"] = RECORDS
    path = tmp_path / "site.json"  # a profile may be JSON too (forwarder/README.md)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


async def act(ctx: AppContext, actor: Actor, item_id: int, cmd: Command,
              now: dt.datetime) -> None:
    async with ctx.db.transaction() as s:
        await service.act(s, actor, item_id, cmd, policy=ctx.bad_rating_policy, now=now)


async def answer(ctx: AppContext, item_id: int, solved: bool, level: Level,
                 now: dt.datetime) -> None:
    async with ctx.db.transaction() as s:
        await service.followup_result(s, item_id, solved=solved, level=level, rating_id=None,
                                      policy=ctx.bad_rating_policy, now=now)


def rectify(text: str) -> Command:
    return Command(Action.RECTIFY, "department", note=text, citizen_result=text)


async def item_id(ctx: AppContext) -> int:
    async with ctx.db.sessions() as s:
        found = await s.scalar(select(BadRatingItem.id))
    assert found is not None
    return found


async def test_rectification_and_feedback_records_reach_the_receiver(
    tmp_path: Path, database_url: str
) -> None:
    async with Receiver() as rx:
        settings = rx.settings_for(tmp_path, database_url,
                                   forwarder_profile_file=site_profile(tmp_path))
        async with context(settings) as ctx:
            key = await add_call_rating(ctx, "LR.1", Level.VERY_DISSATISFIED, reasons=["2"],
                                        department="D1")
            item = await item_id(ctx)
            now = utcnow()
            await act(ctx, DEP, item, Command(Action.VERIFY, "department", note="属实",
                                              finding=Finding.GENUINE), now)
            await act(ctx, DEP, item, rectify("已重新办理"), now + dt.timedelta(minutes=1))
            await answer(ctx, item, False, Level.SATISFIED, now + dt.timedelta(minutes=2))
            await act(ctx, DEP, item, rectify("已上门解决"), now + dt.timedelta(minutes=3))
            # 退回: the same round's second reply is a revision of its own
            await act(ctx, SUP, item, Command(Action.RETURN, "supervisor", note="不具体"),
                      now + dt.timedelta(minutes=4))
            await act(ctx, DEP, item, rectify("已上门解决并回复"), now + dt.timedelta(minutes=5))
            await answer(ctx, item, True, Level.VERY_SATISFIED, now + dt.timedelta(minutes=6))
            r1, f1 = f"{key}:rectification:{item}:1", f"{key}:feedback:{item}:1"
            r2, r2b = f"{key}:rectification:{item}:2", f"{key}:rectification:{item}:2.2"
            f2 = f"{key}:feedback:{item}:2"
            rx.order = {"CALL-LR.1": [key, r1, f1, r2, r2b, f2]}
            async with forwarding(ctx):
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx))
            async with ctx.db.sessions() as s:
                events = list(await s.scalars(select(OutboxEntry.event)
                                              .order_by(OutboxEntry.id)))
    rx.assert_clean()
    assert events == ["rating", "rectification", "feedback", "rectification", "rectification",
                      "feedback"]
    assert set(rx.stored) == {key, r1, f1, r2, r2b, f2}  # distinct keys, none overwritten
    assert {k: rx.paths[k] for k in (key, r1, f1)} == {
        key: "/push", r1: "/push/rectification", f1: "/push/feedback"}
    first = rx.stored[r1]
    assert (first["itemNo"], first["round"], first["deptCode"], first["verifyResult"]) == (
        item, 1, "D1", "genuine")
    assert first["rectifyContent"] == first["feedbackContent"] == "已重新办理"
    assert first["onTime"] == "1" and first["dataSource"] == "123"
    assert len(first["rectifyTime"]) == 19 and len(first["rectifyDeadline"]) == 10
    assert "satisfaction" not in first and "isValid" not in first  # its own fields only
    assert rx.stored[r2b]["rectifyContent"] == "已上门解决并回复"
    # 反馈 in the profile's coding (provincial: 5 = 非常满意), round by round
    assert (rx.stored[f1]["solved"], rx.stored[f1]["satisfaction"]) == ("0", 4)
    assert (rx.stored[f2]["solved"], rx.stored[f2]["satisfaction"], rx.stored[f2]["round"]) == (
        "1", 5, 2)


async def test_the_shipped_default_profile_queues_no_loop_records(
    tmp_path: Path, database_url: str
) -> None:
    async with Receiver() as rx:
        async with context(rx.settings_for(tmp_path, database_url)) as ctx:
            await add_call_rating(ctx, "LR.2", Level.DISSATISFIED, reasons=["1"],
                                  department="D1")
            item = await item_id(ctx)
            now = utcnow()
            await act(ctx, DEP, item, Command(Action.VERIFY, "department", note="属实",
                                              finding=Finding.GENUINE), now)
            await act(ctx, DEP, item, rectify("已整改"), now)
            await answer(ctx, item, True, Level.SATISFIED, now)
            async with ctx.db.sessions() as s:
                events = list(await s.scalars(select(OutboxEntry.event)))
    assert events == ["rating"]
