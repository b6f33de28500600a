"""The console in a real browser (headless Debian Chromium): log in, the live list, the
comment audio, CSRF, campaigns with their progress bars, the admin pages, logging out, and a
screenshot of every main page with no console error on any of them (issue 12)."""

from __future__ import annotations

import datetime as dt
import re
import wave
from typing import Any

from playwright.async_api import Page, expect
from sqlalchemy import select, update

from callback_scheduler import campaigns as camp
from hotline.clock import utcnow
from storage.models import BadRatingItem, CallbackTask, Rating
from tests.console.conftest import Console, expect_refusal, login, screenshot


def _wav(path: Any, seconds: float = 1.0) -> None:
    """A real 8 kHz mono 16-bit WAV, as Asterisk records a comment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        frames = bytearray()
        for i in range(int(8000 * seconds)):
            frames += int(8000 * ((i // 10) % 2 * 2 - 1)).to_bytes(2, "little", signed=True)
        w.writeframes(bytes(frames))


async def _bad_rating(console: Console, linkedid: str) -> int:
    name = f"{linkedid.replace('.', '-')}.wav"
    _wav(console.ctx.settings.effective_prompts_dir / "recordings" / name)
    async with console.ctx.db.transaction() as s:
        r = Rating(project_no=f"CALL-{linkedid}", assess_number=1, kind="per_call",
                   source="keypad", level=5, reason_codes="2", agent_id="A1001",
                   department_code="11440100MB2C91234X", rated_at=utcnow(),
                   comment_recording=f"hotline/recordings/{name}")
        s.add(r)
        await s.flush()
        return r.id


async def test_a_logged_out_user_is_sent_to_the_login_page(page: Page) -> None:
    await page.goto("/ratings")
    await expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)ratings"))
    await screenshot(page, "login")


async def test_wrong_password_is_refused_in_chinese(page: Page) -> None:
    await page.goto("/login")
    await page.fill("input[data-test=username]", "zhang")
    await page.fill("input[data-test=password]", "not-the-password")
    expect_refusal(page, 401)  # Chromium logs the refused request itself
    async with page.expect_response("**/api/v1/session") as resp:
        await page.click("[data-test=login]")
    assert (await resp.value).status == 401
    await expect(page.locator("[data-test=login-error]")).to_contain_text("用户名或密码错误")


async def test_a_bad_rating_appears_live_and_its_comment_plays(
    page: Page, console: Console
) -> None:
    await login(page, "zhang")
    await expect(page.locator("[data-test=live-list]")).to_be_visible()
    await expect(page.locator(".el-tag", has_text="实时")).to_be_visible()
    rating_id = await _bad_rating(console, "1790000000.42")
    row = page.locator("[data-test=live-list] .el-table__row", has_text="非常不满意")
    await expect(row.first).to_be_visible(timeout=10_000)  # pushed by the server, no reload
    await expect(row.first).to_contain_text("办理效率")
    await screenshot(page, "dashboard")
    await row.first.click()
    await expect(page).to_have_url(re.compile(rf"/ratings\?id={rating_id}"))
    detail = page.locator("[data-test=rating-detail]")
    await expect(detail).to_contain_text("非常不满意")
    audio = page.locator("[data-test=comment-audio]")
    # the audio element really loads the recording through the authenticated endpoint
    await page.wait_for_function(
        "el => el.readyState >= 1 && el.duration > 0.5", arg=await audio.element_handle(),
        timeout=10_000)
    played = await audio.evaluate("el => el.play().then(() => true, e => String(e))")
    assert played is True
    await screenshot(page, "ratings")


async def test_a_state_change_without_the_csrf_token_is_refused(page: Page) -> None:
    expect_refusal(page, 403)
    await login(page, "zhang")
    result = await page.evaluate("""async () => {
        const body = JSON.stringify({name: 'x', kind: 'satisfaction_followup'})
        const h = {'Content-Type': 'application/json'}
        const bare = await fetch('/api/v1/campaigns', {method: 'POST', headers: h, body})
        const me = await (await fetch('/api/v1/session')).json()
        const ok = await fetch('/api/v1/campaigns', {method: 'POST', body,
            headers: {...h, 'X-CSRF-Token': me.csrf_token}})
        return [bare.status, (await bare.json()).error.code, ok.status]
    }""")
    assert result == [403, "csrf_failed", 201]


async def test_campaign_from_the_form_and_its_progress_bar(page: Page, console: Console) -> None:
    await login(page, "zhang")
    await page.click("text=回访任务")
    await page.click("[data-test=new-campaign]")
    await page.fill("input[data-test=campaign-name]", "十一月满意度回访")
    await page.click("[data-test=campaign-create]")
    row = page.locator("[data-test=campaigns-table] .el-table__row", has_text="十一月满意度回访")
    await expect(row).to_be_visible()
    async with console.ctx.db.transaction() as s:
        campaign_id = max(c.campaign_id for c in await camp.list_campaigns(s))
        vault = console.ctx.vault
        for i in range(4):
            p = vault.protect(f"1380000{i:04d}")
            s.add(CallbackTask(campaign_id=campaign_id, number_enc=p.encrypted,
                               number_hash=p.digest, number_masked=p.masked, max_attempts=3,
                               next_attempt_at=utcnow() + dt.timedelta(days=1)))
    bar = page.locator(f"[data-test=progress-{campaign_id}]")
    await expect(bar).to_have_attribute("data-done", "0", timeout=5000)
    # two citizens reached: the bar moves on its own (the page polls), no reload
    async with console.ctx.db.transaction() as s:
        ids = list(await s.scalars(select(CallbackTask.id).where(
            CallbackTask.campaign_id == campaign_id).order_by(CallbackTask.id).limit(2)))
        await s.execute(update(CallbackTask).where(CallbackTask.id.in_(ids))
                        .values(status="completed", outcome="rated"))
    await expect(bar).to_have_attribute("data-done", "2", timeout=6000)
    await expect(bar).to_contain_text("50%")
    await screenshot(page, "campaigns")


async def test_every_main_page_opens_without_errors(page: Page) -> None:
    await login(page, "root")
    pages = {"dashboard-admin": "/", "ratings-admin": "/ratings", "manual": "/manual",
             "delivery": "/delivery", "users": "/admin/users", "tokens": "/admin/tokens",
             "settings": "/admin/settings", "audit": "/admin/audit",
             "bad-ratings-admin": "/bad-ratings", "reports-admin": "/reports"}
    for name, path in pages.items():
        await page.goto(path)
        await expect(page.locator("[data-test=whoami]")).to_be_visible()
        await screenshot(page, name)
    await page.goto("/admin/settings")
    await expect(page.locator("[data-test=settings-table]")).to_contain_text("http_port")
    await expect(page.locator("[data-test=settings-table]")).to_contain_text("******")


async def test_user_changes_made_in_the_page_are_in_the_audit_log(page: Page) -> None:
    await login(page, "root")
    await page.goto("/admin/users")
    await page.click("[data-test=new-user]")
    await page.fill("input[data-test=user-name]", "keju")
    await page.click("[data-test=user-save]")
    await expect(page.locator(".el-message-box")).to_contain_text("初始密码")
    await page.click(".el-message-box .el-button--primary")
    await page.goto("/admin/audit")
    await expect(page.locator("[data-test=audit-table]")).to_contain_text("user.create")
    await expect(page.locator("[data-test=audit-table]")).to_contain_text("keju")


async def test_an_agent_sees_no_supervisor_menu_and_the_server_refuses_it(page: Page) -> None:
    expect_refusal(page, 403)
    await login(page, "a1001")
    await expect(page.locator(".el-menu")).not_to_contain_text("回访任务")
    status = await page.evaluate("async () => (await fetch('/api/v1/campaigns')).status")
    assert status == 403  # enforced by the server, not by hiding the menu


async def test_logging_out_leads_to_the_login_page_and_ends_the_session(page: Page) -> None:
    expect_refusal(page, 401)
    await login(page, "zhang")
    await page.click("[data-test=logout]")
    await expect(page).to_have_url(re.compile(r"/login"))
    status = await page.evaluate("async () => (await fetch('/api/v1/campaigns')).status")
    assert status == 401
    await page.goto("/campaigns")
    await expect(page).to_have_url(re.compile(r"/login"))


async def _items(console: Console, count: int, prefix: str) -> None:
    """``count`` 差评 saved through the write path: each opens a 差评 item for D1."""
    from hotline.levels import Level
    from storage.ratings import RatingInput, save_rating

    async with console.ctx.db.transaction() as s:
        for n in range(count):
            await save_rating(s, RatingInput(
                project_no=f"CALL-{prefix}.{n}", kind="per_call", source="keypad",
                level=Level.VERY_DISSATISFIED, reason_codes=["2"], agent_id="A1001",
                department_code="11440100MB2C91234X"))


async def _ids(page: Page, count: int | None = None, within: tuple[int, int] | None = None
               ) -> list[int]:
    """The ids in the 差评 table once it shows ``count`` rows and every id lies ``within``
    [low, high): the pager's page number changes before the page's rows arrive, and the rows
    of two pages can be on screen together for a moment."""
    rows = page.locator("[data-test=bad-table] .el-table__body-wrapper tr.el-table__row")
    if count is not None:
        await expect(rows).to_have_count(count)
    if within is not None:
        await page.wait_for_function(
            """([low, high]) => {
                const ids = [...document.querySelectorAll(
                    '[data-test=bad-table] .el-table__body-wrapper tr.el-table__row')]
                    .map(r => Number(r.querySelector('td').innerText))
                return ids.length > 0 && ids.every(id => low <= id && id < high)
            }""", arg=list(within))
    await page.wait_for_load_state("networkidle")
    texts = await rows.evaluate_all("rs => rs.map(r => r.querySelector('td').innerText)")
    return [int(t) for t in texts]


async def test_bad_rating_list_pages_newest_first(page: Page, console: Console) -> None:
    """listBadRatings order=desc paging (issue 12 ratings search): 20 a page, newest first,
    the next page continues below the last id, and back again."""
    await _items(console, 23, "PAGE")
    await login(page, "zhang")
    await page.goto("/bad-ratings")
    await expect(page.locator("[data-test=bad-pager]")).to_contain_text("第 1 页")
    first = await _ids(page, 20)
    assert len(first) == 20 and first == sorted(first, reverse=True)
    async with console.ctx.db.sessions() as s:
        newest = max(await s.scalars(select(BadRatingItem.id)))
    assert first[0] == newest
    await page.click("[data-test=bad-next]")
    await expect(page.locator("[data-test=bad-pager]")).to_contain_text("第 2 页")
    second = await _ids(page, within=(0, min(first)))
    assert second and max(second) < min(first) and second == sorted(second, reverse=True)
    await page.click("[data-test=bad-prev]")
    await expect(page.locator("[data-test=bad-pager]")).to_contain_text("第 1 页")
    assert await _ids(page, 20, within=(min(first), max(first) + 1)) == first


async def test_a_department_sees_its_own_summary_on_the_reports_page(
    page: Page, console: Console
) -> None:
    """Issue 11 "A department sees only its own figures": the summary cards show the
    department's own 差评数 (the API gives it no centre-wide total)."""
    await _items(console, 2, "SUMMARY")
    async with console.ctx.db.sessions() as s:
        own = len(list(await s.scalars(select(Rating.id).where(
            Rating.department_code == "11440100MB2C91234X", Rating.valid.is_(True),
            Rating.level >= 4))))
    await login(page, "zjj")
    await page.goto("/reports")
    card = page.locator("[data-test=report-figure-bad_count]")
    await expect(card).to_be_visible()
    await expect(card).to_contain_text(str(own))
    await screenshot(page, "reports-department")
