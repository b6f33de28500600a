"""The 差评 loop and the 通报 in a real browser against the real service beside the Asterisk 22
sandbox (issue 12 "Tests in a real browser"): a real call through the carrier in which the
caller presses 5, a reason and leaves a voice comment; the 差评 shows up live; the supervisor
opens it, hears the comment and assigns it; the department verifies and rectifies; the
supervisor sees it move; a campaign created in the page is dialled through the carrier while
its progress bar advances; this month's Excel and PDF are downloaded and read; a department
cannot open another's item by URL. Screenshots of the new pages go to build/screenshots/.

The service runs as ``hotline serve`` runs it: the HTTP API (with the built console), the
FastAGI worker and the 回访 scheduler, one AppContext, on a fresh SQLite database."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import openpyxl
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from ami.client import AmiClient
from callback_scheduler import worker as scheduler
from console import users
from http_api.app import run as run_http
from ivr import prompts
from sandbox import testcall
from sandbox.carrier import Behaviour, Carrier, Press, keys_number, number, random_tag
from sandbox.instance import AsteriskSandbox
from service import agi
from service.context import AppContext
from storage.models import BadRatingItem, Call
from tests.conftest import missing
from tests.console.conftest import (
    CONSOLE_BUILT,
    PASSWORD,
    PORT,
    Console,
    expect_refusal,
    login,
    screenshot,
)

pytestmark = pytest.mark.asterisk

D1, D2 = "11440100MB2C91234X", "11440100MB2C95678Y"
USERS = {
    "zhang": ("supervisor", [], None),
    "zjj": ("department", [D1], None),
    "rsj": ("department", [D2], None),
    "fuhe": ("reviewer", [], None),
    "a1001": ("agent", [], "A1001"),
}
AGENT_TALK = 2
FIRST_KEY = AGENT_TALK + 2  # into the survey's intro, as tests/integration/test_queue_survey.py


@pytest.fixture(scope="module")
async def loop_console(
    asterisk: AsteriskSandbox, carrier: Carrier, sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Console]:
    if not CONSOLE_BUILT:
        missing("the built console (scripts/setup builds console/dist)")
    base = asterisk.settings
    assert base is not None
    db = tmp_path_factory.mktemp("console-loop") / "hotline.db"
    await asyncio.to_thread(shutil.copyfile, sqlite_template, db)
    port = PORT + 1  # beside the other console module's server
    settings = base.model_copy(update={
        "database_url": f"sqlite+aiosqlite:///{db}", "http_host": "127.0.0.1",
        "http_port": port, "survey_digit_timeout_ms": 3000,
        # a short voice comment, ended by its length: the carrier's citizen keeps silent
        "survey_comment_max_seconds": 3, "survey_comment_silence_seconds": 0,
        "callback_ring_seconds": 5, "callback_poll_interval": 0.2,
        "callback_response_grace_seconds": 5.0, "callback_calls_per_minute": 1000,
    })
    await asyncio.to_thread(prompts.build_prompts, settings)
    ctx = AppContext.create(settings)
    async with ctx.db.transaction() as s:
        for name, (role, departments, agent) in USERS.items():
            await users.create_user(s, username=name, password=PASSWORD, role=role,
                                    departments=departments, agent_id=agent)
    stopping = asyncio.Event()
    workers = [asyncio.create_task(w(ctx, stopping))
               for w in (run_http, agi.run, scheduler.run)]
    for _ in range(200):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        await asyncio.sleep(0.05)
    try:
        yield Console(ctx, f"http://127.0.0.1:{port}")
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 60)
        await ctx.close()


@pytest.fixture
async def page(browser: object, loop_console: Console) -> AsyncIterator[Page]:
    from tests.console.conftest import watched_page

    async with watched_page(browser, loop_console.url, accept_downloads=True) as pg:
        yield pg  # type: ignore[misc]


async def _logout(page: Page) -> None:
    await page.click("[data-test=logout]")
    await expect(page).to_have_url(re.compile(r"/login"))


async def _open_item(page: Page, item_id: int) -> None:
    await page.click(".el-menu >> text=差评处理")
    row = page.locator("[data-test=bad-table] .el-table__row", has_text=str(item_id)).first
    await expect(row).to_be_visible()
    await row.click()
    await expect(page).to_have_url(re.compile(rf"/bad-ratings/{item_id}$"))


async def test_a_real_bad_rating_through_the_loop(
    page: Page, loop_console: Console, ami: AmiClient, carrier: Carrier,
    carrier_ami: AmiClient, asterisk: AsteriskSandbox,
) -> None:
    ctx = loop_console.ctx
    await login(page, "zhang")
    await expect(page.locator(".el-tag", has_text="实时")).to_be_visible()
    # the caller presses 5 (非常不满意), reason 2, then 1 to leave a comment, and talks on
    citizen = keys_number([Press("5", FIRST_KEY), Press("2", 3), Press("1", 4)],
                          talks_on=True)
    async with testcall.simulated_agent(ami, "A1001", testcall.talk(AGENT_TALK)):
        async with asyncio.timeout(20):
            placed = await testcall.place_call(ami, citizen, carrier=carrier,
                                               carrier_ami=carrier_ami)
        live = page.locator("[data-test=live-list] .el-table__row", has_text="非常不满意")
        await expect(live.first).to_be_visible(timeout=40_000)  # pushed, no reload
        async with asyncio.timeout(60):
            outcome = await testcall.wait_outcome(ctx.db, placed.linkedid)
    rating = outcome.rating
    assert rating is not None, outcome
    assert (rating.level, rating.reason_codes) == (5, "2")
    assert rating.comment_recording, asterisk.log_tail(60)
    await screenshot(page, "dashboard-live-bad-rating")
    async with ctx.db.sessions() as s:
        item_id = await s.scalar(select(BadRatingItem.id).where(
            BadRatingItem.first_rating_id == rating.id))
    assert item_id is not None

    # open it, hear the comment the caller left (a real recording by Asterisk), assign it
    await _open_item(page, item_id)
    audio = page.locator("[data-test=comment-audio]")
    await page.wait_for_function("el => el.readyState >= 1 && el.duration > 1",
                                 arg=await audio.element_handle(), timeout=10_000)
    assert await audio.evaluate("el => el.play().then(() => true, e => String(e))") is True
    await expect(page.locator("[data-test=timeline]")).to_contain_text("收到差评")
    # the reason came after the level (the live row showed the level as soon as it was saved)
    await expect(page.locator(f"[data-test=item-rating-{rating.id}]")).to_contain_text("办理效率")
    await page.fill("input[data-test=assign-department]", D1)
    await page.click("[data-test=do-assign]")
    await expect(page.locator("[data-test=timeline]")).to_contain_text("派单")
    await expect(page.locator("[data-test=item-detail]")).to_contain_text(D1)
    await screenshot(page, "bad-rating-detail")
    await _logout(page)

    # the department: its 待核实 list, 核实 属实, 整改 reply
    await login(page, "zjj")
    await page.click(".el-menu >> text=差评处理")
    await expect(page.locator("[data-test=own-rank]")).to_be_visible()
    await expect(page.locator("[data-test=bad-table]")).to_contain_text(str(item_id))
    await screenshot(page, "department-bad-ratings")
    await _open_item(page, item_id)
    await page.fill("textarea[data-test=verify-note]", "经核实，办理超时属实")
    await page.click("[data-test=do-verify]")
    await expect(page.locator("[data-test=item-state]")).to_have_text("整改中")
    await page.fill("textarea[data-test=rectify-reply]", "已约谈经办人并优化流程")
    await page.fill("input[data-test=rectify-citizen]", "已整改")
    await page.click("[data-test=do-rectify]")
    await expect(page.locator("[data-test=item-state]")).to_have_text(re.compile("已整改|回访"))
    await _logout(page)

    # another department cannot open it by URL (the server answers 404, the page says so)
    expect_refusal(page, 404)
    await login(page, "rsj")
    await page.goto(f"/bad-ratings/{item_id}")
    await expect(page).to_have_url(re.compile(r"/bad-ratings$"))
    await expect(page.locator("[data-test=bad-table]")).not_to_contain_text(
        f"CALL-{placed.linkedid}")
    await _logout(page)

    # the supervisor sees the item moved on
    await login(page, "zhang")
    await page.click(".el-menu >> text=差评处理")
    state = page.locator(f"[data-test=state-{item_id}]")
    await expect(state).to_have_text(re.compile("已整改|回访"))
    await screenshot(page, "bad-ratings")
    linkedid = placed.linkedid
    await _campaign(page, loop_console, linkedid)
    await _reports(page, loop_console)


async def _campaign(page: Page, console: Console, linkedid: str) -> None:
    """A 电话邀评 campaign from the form, its list imported in the page, started: the carrier's
    citizens answer (and hang up), and the bar advances without a reload."""
    async with console.ctx.db.transaction() as s:
        extra = [Call(linkedid=f"{linkedid}-{i}", survey_status="not_rated", agent_id="A1001")
                 for i in range(2)]
        s.add_all(extra)
    citizens = [number(Behaviour.HANG_UP, tag=random_tag()) for _ in range(3)]
    csv = "linkedid,number\n" + "".join(
        f"{lid},{n}\n" for lid, n in zip([linkedid, *(c.linkedid for c in extra)], citizens,
                                          strict=True))
    await page.click(".el-menu >> text=回访任务")
    await page.click("[data-test=new-campaign]")
    await page.fill("input[data-test=campaign-name]", "本周电话邀评")
    await page.click("[data-test=campaign-kind]")
    await page.click(".el-select-dropdown__item >> text=电话邀评")
    await page.click("[data-test=campaign-window-delete-1]")
    await page.fill("input[data-test=campaign-window-0]", "00:00-24:00")
    await page.click("[data-test=campaign-workdays]")  # every day, not only working days
    attempts = "[data-test=campaign-max-attempts] input, input[data-test=campaign-max-attempts]"
    await page.fill(f":is({attempts})", "1")
    await page.click("[data-test=campaign-create]")
    row = page.locator("[data-test=campaigns-table] .el-table__row", has_text="本周电话邀评")
    await expect(row).to_be_visible()
    await row.locator("input[type=file]").set_input_files(
        files=[{"name": "list.csv", "mimeType": "text/csv", "buffer": csv.encode()}])
    await expect(row).to_contain_text("0 / 3")
    bar = row.locator("[data-test^=progress-]")
    await row.locator("[data-test^=start-]").click()
    # a partly done bar, then the whole: it moves on its own as the calls end
    await expect(bar).not_to_have_attribute("data-done", "0", timeout=60_000)
    await expect(bar).to_have_attribute("data-done", "3", timeout=90_000)
    await expect(bar).to_contain_text("100%")
    await screenshot(page, "campaign-progress")


def _cells(path: Path) -> set[str]:
    book = openpyxl.load_workbook(io.BytesIO(path.read_bytes()), read_only=True)
    return {str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True)
            for c in row if c is not None}


def _pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


async def _reports(page: Page, console: Console) -> None:
    await page.click(".el-menu >> text=通报统计")
    await expect(page.locator("[data-test=report-table]")).to_be_visible()
    await expect(page.locator("[data-test=report-figure-bad_count]")).to_contain_text("1")
    await screenshot(page, "reports")
    async with page.expect_download() as xlsx_download:
        await page.click("[data-test=download-xlsx]")
    xlsx = await (await xlsx_download.value).path()
    cells = await asyncio.to_thread(_cells, Path(xlsx))
    assert "差评数" in cells and "满意率" in cells
    async with page.expect_download() as pdf_download:
        await page.click("[data-test=download-pdf]")
    pdf = await (await pdf_download.value).path()
    text = await asyncio.to_thread(_pdf_text, Path(pdf))
    assert "通报" in text and "满意率" in text


async def test_reviewer_and_agent_pages(page: Page, loop_console: Console) -> None:
    await login(page, "fuhe")
    await page.click(".el-menu >> text=差评处理")
    await expect(page.locator(".el-tabs")).to_contain_text("复核队列")
    await screenshot(page, "reviewer-queue")
    await _logout(page)
    await login(page, "a1001")
    await expect(page.locator("[data-test=figures]")).to_contain_text("满意率")
    await screenshot(page, "agent-dashboard")
    await page.click(".el-menu >> text=差评处理")
    await expect(page.locator(".el-tabs")).to_contain_text("我的差评")
    await screenshot(page, "agent-bad-ratings")
