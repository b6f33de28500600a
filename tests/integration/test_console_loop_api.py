"""The console's views of the 差评 loop and the 通报, on SQLite and PostgreSQL (issue 12): the
工作台 reads its figures from the reports engine (so it equals getReport), in the viewer's
scope; its 即将超期 / 超期 lists; and an item's ratings and voice comment, heard by whoever may
see the item (DOMAIN.md rule 8: a department only its own) and nobody else."""

from __future__ import annotations

import datetime as dt
import wave
from pathlib import Path

from sqlalchemy import select, update

from console.dashboard import FIGURE_KEYS
from hotline.clock import utcnow
from hotline.levels import Level
from service.context import AppContext
from storage.models import BadRatingItem, Call, Rating
from storage.ratings import RatingInput, project_no_for_call, save_rating
from tests.conftest import Client, bearer
from tests.helpers.bad_ratings import post
from tests.helpers.callbacks import add_call


async def rate_call(ctx: AppContext, linkedid: str, level: Level) -> None:
    """As the survey saves it: the call's agent and department go on the rating."""
    async with ctx.db.transaction() as s:
        call = await s.scalar(select(Call).where(Call.linkedid == linkedid))
        assert call is not None
        await save_rating(s, RatingInput(
            project_no=project_no_for_call(linkedid), kind="per_call", source="keypad",
            level=level, call_id=call.id, agent_id=call.agent_id,
            department_code=call.department_code))


async def bad_call_now(ctx: AppContext, linkedid: str, department: str | None,
                       level: Level = Level.VERY_DISSATISFIED) -> tuple[int, int]:
    """A call served today and rated 差评; returns (item id, rating id)."""
    await add_call(ctx, linkedid, department=department, started=utcnow())
    await rate_call(ctx, linkedid, level)
    async with ctx.db.sessions() as s:
        item = await s.scalar(select(BadRatingItem).where(
            BadRatingItem.subject_key == f"call:CALL-{linkedid}"))
    assert item is not None
    return item.id, item.first_rating_id


async def get(client: Client, path: str, auth: dict[str, str], status: int = 200) -> object:
    resp = await client.get(path, headers=auth)
    assert resp.status == status, await resp.text()
    return await resp.json() if resp.content_type == "application/json" else await resp.read()


async def test_dashboard_figures_are_the_reports_figures_in_the_viewers_scope(
    client: Client, ctx: AppContext
) -> None:
    await bad_call_now(ctx, "DB-1", "D1")
    await bad_call_now(ctx, "DB-2", "D2")
    await add_call(ctx, "DB-3", department="D1", started=utcnow())
    await rate_call(ctx, "DB-3", Level.SATISFIED)
    boss = await bearer(ctx, "supervisor")
    dash = await get(client, "/api/v1/dashboard", boss)
    report = await get(client, "/api/v1/reports?period=today&by=total", boss)
    assert isinstance(dash, dict) and isinstance(report, dict)
    total = report["total"]["figures"]
    # one definition: every 工作台 figure is the 通报's figure of the same period
    assert {k: dash["today"]["current"]["values"][k] for k in FIGURE_KEYS} == {
        k: total[k] for k in FIGURE_KEYS}
    assert dash["today"]["current"]["values"]["bad_count"] == 2
    assert dash["today"]["current"]["values"]["served"] == 3
    assert dash["figures"]["callback_rate"] == "回访率"
    assert dash["trend"][-1]["values"]["bad_count"] == 2 and len(dash["trend"]) == 14
    # a department sees its own figures only (DOMAIN.md rule 8, issue 12 "only its own")
    own = await get(client, "/api/v1/dashboard", await bearer(ctx, "department",
                                                             departments=("D1",)))
    assert isinstance(own, dict)
    assert own["today"]["current"]["values"]["bad_count"] == 1
    assert own["today"]["current"]["values"]["good_rate"] == 0.5
    # an agent: its own 工号 (A007 served all three); another agent has nothing
    other = await get(client, "/api/v1/dashboard", await bearer(ctx, "agent", agent_id="A9"))
    assert isinstance(other, dict)
    assert other["today"]["current"]["values"]["bad_count"] == 0
    assert other["due_soon"] == [] and other["overdue"] == []


async def test_dashboard_lists_items_due_soon_and_overdue(client: Client, ctx: AppContext) -> None:
    soon, _ = await bad_call_now(ctx, "DUE-1", "D1")  # 核实 due in 2 working days: due soon
    late, _ = await bad_call_now(ctx, "DUE-2", "D1")
    today = utcnow().astimezone(ctx.settings.tz).date()
    async with ctx.db.transaction() as s:
        await s.execute(update(BadRatingItem).where(BadRatingItem.id == late)
                        .values(verify_due=today - dt.timedelta(days=3)))
    dash = await get(client, "/api/v1/dashboard", await bearer(ctx, "supervisor"))
    assert isinstance(dash, dict)
    assert [i["id"] for i in dash["due_soon"]] == [soon]
    assert [i["id"] for i in dash["overdue"]] == [late]
    assert dash["overdue"][0]["due_status"] == "overdue"
    listed = await get(client, "/api/v1/bad-ratings?due_soon=true",
                       await bearer(ctx, "department", departments=("D1",)))
    assert isinstance(listed, list) and [i["id"] for i in listed] == [soon]
    nobody = await get(client, "/api/v1/bad-ratings?due_soon=true",
                       await bearer(ctx, "department", departments=("D2",)))
    assert nobody == []


def _wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x10\x00" * 8000)


async def test_an_items_comment_is_heard_in_the_items_scope_only(
    client: Client, ctx: AppContext
) -> None:
    item_id, rating_id = await bad_call_now(ctx, "AU-1", None)  # unassigned: no department
    _wav(ctx.settings.effective_prompts_dir / "recordings" / "au-1.wav")
    async with ctx.db.transaction() as s:
        await s.execute(update(Rating).where(Rating.id == rating_id)
                        .values(comment_recording="hotline/recordings/au-1.wav"))
    d2 = await bearer(ctx, "department", departments=("D2",))
    base = f"/api/v1/bad-ratings/{item_id}/ratings"
    await get(client, base, d2, status=404)  # not (yet) its item
    await get(client, f"{base}/{rating_id}/comment", d2, status=404)
    await post(client, f"/api/v1/bad-ratings/{item_id}/assign", await bearer(ctx, "supervisor"),
               {"department_code": "D2"})
    ratings = await get(client, base, d2)
    assert isinstance(ratings, list)
    assert [(r["id"], r["level"], r["has_audio"]) for r in ratings] == [(rating_id, 5, True)]
    audio = await get(client, f"{base}/{rating_id}/comment", d2)
    assert isinstance(audio, bytes) and audio[:4] == b"RIFF"
    # the rating itself still carries no department: the rating search does not widen
    await get(client, f"/api/v1/ratings/{rating_id}/comment", d2, status=404)
    # a rating that is not the item's is never served through it
    _, stranger = await bad_call_now(ctx, "AU-2", "D1")
    await get(client, f"{base}/{stranger}/comment", d2, status=404)
    await get(client, base, await bearer(ctx, "department", departments=("D1",)), status=404)
