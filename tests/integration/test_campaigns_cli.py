"""A supervisor runs a campaign from the console (``hotline campaign ...``, ``hotline
callback ...``), on SQLite and PostgreSQL: DOMAIN.md rule 5 (manual list, 回访率) and rule 8
(numbers masked unless one is revealed for a manual call; do-not-call list)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select, update

from service import cli
from service.context import AppContext
from storage.audit import list_audit
from storage.models import CallbackTask, DoNotCall
from tests.conftest import make_settings
from tests.helpers.callbacks import NUMBER, closed_bad_case, settle_open_tasks


def hotline(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli.main(["--config", "/dev/null", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_supervisor_runs_a_campaign_from_the_cli(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(tmp_path, database_url=database_url)

    async def seed() -> None:
        ctx = AppContext.create(settings)
        try:
            await closed_bad_case(ctx, "GD-CLI-1")
            await closed_bad_case(ctx, "GD-CLI-2", number="13900139000")
            await settle_open_tasks(ctx)  # their 回访 done: a further campaign may call them
        finally:
            await ctx.close()

    asyncio.run(seed())
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)

    rc, out, err = hotline(capsys, "campaign", "create", "--name", "国庆后回访",
                           "--kind", "satisfaction_followup", "--levels", "4,5",
                           "--window", "09:00-12:00", "--max-attempts", "2",
                           "--retry", "busy=10", "--start")
    assert rc == 0, err
    assert "added 2 task(s)" in out and "running" in out
    cid = out.split("#", 1)[1].split()[0]

    rc, out, _ = hotline(capsys, "campaign", "status", cid, "--json")
    status = json.loads(out)
    assert (status["status"], status["total"], status["rules"]["max_attempts"]) == (
        "running", 2, 2)
    assert status["rules"]["retry_minutes"]["busy"] == 10

    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("case_number,number\nGD-CLI-1,\nGD-NONE,\n", encoding="utf-8")
    rc, _, err = hotline(capsys, "campaign", "import", cid, str(bad_csv))
    assert rc == 1 and "nothing imported" in err
    assert f"{bad_csv}:2: case already in this campaign" in err
    assert f"{bad_csv}:3: unknown case_number" in err

    good_csv = tmp_path / "good.csv"
    good_csv.write_text("case_number\nGD-CLI-1\n", encoding="utf-8")
    rc, out, err = hotline(capsys, "campaign", "create", "--name", "补充回访",
                           "--kind", "satisfaction_followup")
    assert rc == 0, err
    other = out.split("#", 1)[1].split()[0]
    rc, out, err = hotline(capsys, "campaign", "import", other, str(good_csv))
    assert rc == 0, err

    rc, out, _ = hotline(capsys, "campaign", "pause", cid)
    assert (rc, out.strip()) == (0, f"campaign #{cid} paused")
    rc, out, _ = hotline(capsys, "campaign", "list")
    assert "国庆后回访" in out and "回访率 0.0%" in out
    rc, _, err = hotline(capsys, "campaign", "start", "9999")
    assert rc == 1 and "no campaign 9999" in err

    async def make_unreachable() -> int:
        ctx = AppContext.create(settings)
        try:
            async with ctx.db.transaction() as s:
                task = await s.scalar(select(CallbackTask).where(
                    CallbackTask.campaign_id == int(cid)).order_by(CallbackTask.id))
                assert task is not None
                await s.execute(update(CallbackTask).where(CallbackTask.id == task.id)
                                .values(status="unreachable", outcome="max_attempts"))
                return task.id
        finally:
            await ctx.close()

    tid = asyncio.run(make_unreachable())
    rc, out, _ = hotline(capsys, "callback", "manual-list")
    assert f"task {tid}" in out and "138****8000" in out and NUMBER not in out
    rc, out, _ = hotline(capsys, "callback", "reveal", str(tid), "--by", "王主任",
                         "--reason", "人工回访")
    assert out.strip() == NUMBER
    rc, _, err = hotline(capsys, "callback", "record-manual", str(tid), "--not-reached",
                         "--level", "2", "--by", "王主任")
    assert rc == 1 and "needs the citizen to have been reached" in err
    rc, out, _ = hotline(capsys, "callback", "record-manual", str(tid), "--reached",
                         "--level", "2", "--resolved", "--by", "王主任", "--note", "已回访")
    assert rc == 0 and "manual_done (manual_reached)" in out
    rc, out, _ = hotline(capsys, "callback", "manual-list")
    assert "empty" in out
    rc, out, _ = hotline(capsys, "campaign", "status", cid)
    assert "回访率 50.0%" in out

    rc, out, _ = hotline(capsys, "callback", "do-not-call", "139-0013-9000")
    assert rc == 0 and "139****9000 added to" in out

    async def dnc_rows() -> list[str]:
        ctx = AppContext.create(settings)
        try:
            async with ctx.db.sessions() as s:
                return list(await s.scalars(select(DoNotCall.number_masked)))
        finally:
            await ctx.close()

    assert asyncio.run(dnc_rows()) == ["139****9000"]

    async def audit_rows() -> list[tuple[str, str, str | None, dict[str, object]]]:
        ctx = AppContext.create(settings)
        try:
            async with ctx.db.sessions() as s:
                return [(e.actor, e.action, e.subject_id, e.details)
                        for e in await list_audit(s)]
        finally:
            await ctx.close()

    # DEVELOPERS.md: every state change a person makes is audited — from the console too;
    # refused commands (the bad import, campaign 9999) leave no row
    rows = asyncio.run(audit_rows())
    campaign_rows = [(actor, action, sid) for actor, action, sid, _ in rows
                     if action.startswith("campaign.")]
    assert campaign_rows == [("cli", "campaign.create", cid), ("cli", "campaign.start", cid),
                             ("cli", "campaign.create", other),
                             ("cli", "campaign.import", other), ("cli", "campaign.pause", cid)]
    [dnc] = [r for r in rows if r[1] == "do_not_call.add"]
    assert dnc[3] == {"number_masked": "139****9000", "added": True}
    assert "13900139000" not in str(rows)  # rule 8: the audit holds masked numbers only
