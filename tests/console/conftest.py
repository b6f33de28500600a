"""Browser tests of the console: the real service (HTTP API + built console) on a loopback
port, and headless Chromium from Debian's ``chromium`` package driven by Playwright (never a
downloaded browser). Every page's console errors fail the test that opened it; screenshots go
to ``build/screenshots/`` (the README names the folder)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from console import users
from hotline.settings import PROJECT_ROOT
from http_api.app import run
from service.context import AppContext
from tests.conftest import make_settings, missing

CHROMIUM = "/usr/bin/chromium"
CONSOLE_BUILT = (PROJECT_ROOT / "console" / "dist" / "index.html").is_file()
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = PROJECT_ROOT / "build" / "screenshots"
PORT = 18080 + int(os.environ.get("HOTLINE_TEST_PORT_OFFSET", "0"))
PASSWORD = "console-test-password"
#: users the tests log in as: name -> (role, departments, agent)
USERS = {
    "zhang": ("supervisor", [], None),
    "root": ("admin", [], None),
    "a1001": ("agent", [], "A1001"),
    "zjj": ("department", ["11440100MB2C91234X"], None),
}


@dataclass
class Console:
    ctx: AppContext
    url: str
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def console_db(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    db = tmp_path_factory.mktemp("console") / "hotline.db"
    db.write_bytes(sqlite_template.read_bytes())  # migrated copy
    return db


@pytest.fixture(scope="module")
async def console(console_db: Path) -> AsyncIterator[Console]:
    if not CONSOLE_BUILT:
        missing("the built console (scripts/setup builds console/dist)")
    base, db = console_db.parent, console_db
    settings = make_settings(base, database_url=f"sqlite+aiosqlite:///{db}",
                             http_port=PORT, http_host="127.0.0.1")
    ctx = AppContext.create(settings)
    async with ctx.db.transaction() as s:
        for name, (role, departments, agent) in USERS.items():
            await users.create_user(s, username=name, password=PASSWORD, role=role,
                                    departments=departments, agent_id=agent)
    stopping = asyncio.Event()
    server = asyncio.create_task(run(ctx, stopping))
    url = f"http://127.0.0.1:{PORT}"
    for _ in range(100):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", PORT)
            writer.close()
            break
        await asyncio.sleep(0.05)
    try:
        yield Console(ctx, url)
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server, 15)
        await ctx.close()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        missing("Debian's chromium (scripts/setup installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@contextlib.asynccontextmanager
async def watched_page(browser: object, base_url: str, **options: object) -> AsyncIterator[object]:
    """A fresh browser context (no cookies); any console error or page error fails the test,
    except the refusals a test allows on purpose (``_ALLOWED``)."""
    context = await browser.new_context(  # type: ignore[attr-defined]
        base_url=base_url, locale="zh-CN", timezone_id="Asia/Shanghai",
        viewport={"width": 1440, "height": 900}, **options,
    )
    pg = await context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    _ALLOWED[id(pg)] = set()
    yield pg
    await context.close()
    allowed = _ALLOWED.pop(id(pg))
    unexpected = [e for e in errors
                  if not any(f"status of {code}" in e for code in allowed)]
    assert unexpected == [], "errors in the browser console"


@pytest.fixture
async def page(browser: object, console: Console) -> AsyncIterator[object]:
    async with watched_page(browser, console.url) as pg:
        yield pg


_ALLOWED: dict[int, set[int]] = {}


def expect_refusal(pg: object, status: int) -> None:
    """The test provokes a refusal on purpose: Chromium logs the failed request as a console
    error ("Failed to load resource: ... status of 401"), which is then not a page defect."""
    _ALLOWED[id(pg)].add(status)


async def login(pg: object, username: str, password: str = PASSWORD) -> None:
    await pg.goto("/login")  # type: ignore[attr-defined]
    await pg.fill("input[data-test=username]", username)  # type: ignore[attr-defined]
    await pg.fill("input[data-test=password]", password)  # type: ignore[attr-defined]
    await pg.click("[data-test=login]")  # type: ignore[attr-defined]
    await pg.wait_for_selector("[data-test=whoami]")  # type: ignore[attr-defined]


async def screenshot(pg: object, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await pg.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    await pg.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
