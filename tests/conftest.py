"""Shared fixtures. Storage-touching tests take ``database_url``, which runs them on both
SQLite and the real PostgreSQL (DEVELOPERS.md). In CI (CI=true) a missing component fails
loudly instead of skipping."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline import clock
from hotline.settings import Settings, load_settings
from http_api import tokens
from http_api.app import build_app
from service.context import AppContext
from storage import migrate
from storage.pg_admin import PgAdmin

pytest_plugins = ["tests.fixtures_asterisk", "tests.fixtures_carrier"]
# the shared helpers' asserts explain a failure like the tests' own (set before their import)
pytest.register_assert_rewrite("tests.helpers")

IN_CI = os.environ.get("CI") == "true"
#: where the tests create (and drop) their PostgreSQL databases
PG = PgAdmin.from_env("HOTLINE_TEST_PG")


def missing(what: str) -> None:
    """Skip locally, fail in CI: no real-component test may be skipped there."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI", pytrace=False)
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """One migrated PostgreSQL database per test session, cloned per test."""
    name = f"hotline_tmpl_{os.getpid()}"
    try:
        url = asyncio.run(PG.create(name))
    except Exception as exc:
        yield None
        print(f"PostgreSQL unavailable: {exc}")
        return
    migrate.upgrade(url)
    yield name
    asyncio.run(PG.drop(name))


def _pg_clone(template: str | None) -> Iterator[str]:
    if template is None:
        missing("PostgreSQL at 127.0.0.1:5432")
        return
    name = f"hotline_t_{uuid.uuid4().hex[:12]}"
    yield asyncio.run(PG.create(name, template=template))
    asyncio.run(PG.drop(name))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    pg_template: str | None,
) -> Iterator[str]:
    """A fresh, migrated database: SQLite file, or a PostgreSQL database cloned from the
    session template (fast: no migration per test)."""
    if request.param == "sqlite":
        target = tmp_path / "hotline.db"
        target.write_bytes(sqlite_template.read_bytes())
        yield f"sqlite+aiosqlite:///{target}"
        return
    yield from _pg_clone(pg_template)


@pytest.fixture
def postgres_url(pg_template: str | None) -> Iterator[str]:
    """PostgreSQL only (for what SQLite cannot do, such as SKIP LOCKED between processes)."""
    yield from _pg_clone(pg_template)


def covered_years_file(directory: Path) -> Path:
    """A workday override file declaring this year and the next covered (as a site does once
    the State Council publishes its 放假安排), so a test that is not about the calendar's reach
    passes on any date, also after the installed chinesecalendar's last year (``/readyz``
    and ``hotline serve`` check it). Two years: the longest default deadline (15 working days)
    always fits, and tests/unit/test_calendar_coverage.py builds its calendars without it."""
    year = clock.local_today().year
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "covered_years.toml"
    path.write_text(f"years = [{year}, {year + 1}]\n", encoding="utf-8")
    return path


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings isolated from the developer's environment and files; the working-day calendar
    covers today's year and the next unless ``workday_overrides_file`` is given (None: the
    real coverage of the installed package only)."""
    for key in list(os.environ):
        if key.startswith("HOTLINE_") and not key.startswith("HOTLINE_TEST_"):
            os.environ.pop(key)
    if "workday_overrides_file" not in overrides:
        overrides["workday_overrides_file"] = covered_years_file(tmp_path)
    return load_settings(Path(os.devnull), data_dir=tmp_path / "data", **overrides)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url=database_url)


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[AppContext]:
    context = AppContext.create(settings)
    yield context
    await context.close()


Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(ctx: AppContext) -> AsyncIterator[Client]:
    """The whole HTTP application on ``ctx``, on a loopback port."""
    async with TestClient(TestServer(build_app(ctx), host="127.0.0.1")) as c:
        yield c


async def bearer(ctx: AppContext, role: str = "supervisor", *, departments: tuple[str, ...] = (),
                 agent_id: str | None = None) -> dict[str, str]:
    """The ``Authorization`` header of a new token with ``role`` (and its scope)."""
    async with ctx.db.transaction() as session:
        _, secret = await tokens.create_token(
            session, name=f"{role}-{'-'.join(departments) or agent_id or 'x'}", role=role,
            departments=departments, agent_id=agent_id)
    return {"Authorization": f"Bearer {secret}"}
