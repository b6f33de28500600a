"""The tests do not depend on today's date (the calendar time bomb: chinesecalendar knows the
years up to its release, and from mid-December of its last year `/readyz` answers 503 because
today + 15 working days leaves the calendar). Here the service's clock is moved to 2027-03-01,
past the installed package's last year as of this writing, on SQLite and PostgreSQL:

- with the test settings (tests.conftest.make_settings declares this year and the next
  covered, as a site's override file does), readiness is 200, as the other tests need;
- with only the package's own calendar, the real coverage check still answers 503 when the
  package does not reach that far (DOMAIN.md rule 4: working days on the official calendar).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hotline import clock
from hotline.workdays import package_years
from http_api.app import build_app
from service.context import AppContext
from tests.conftest import make_settings

LATER = dt.datetime(2027, 3, 1, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Iterator[dt.datetime]:
    monkeypatch.setattr(clock, "utcnow", lambda: LATER)
    yield LATER


async def _readyz(tmp_path: Path, database_url: str, **overrides: object) -> int:
    ctx = AppContext.create(make_settings(tmp_path, database_url=database_url, **overrides))
    try:
        async with TestClient(TestServer(build_app(ctx), host="127.0.0.1")) as client:
            return (await client.get("/readyz")).status
    finally:
        await ctx.close()


async def test_readyz_is_200_on_a_later_date_with_the_test_settings(
    tmp_path: Path, database_url: str, later: dt.datetime
) -> None:
    assert clock.local_today() == dt.date(2027, 3, 1)
    assert await _readyz(tmp_path, database_url) == 200


async def test_the_real_coverage_check_still_sees_the_package_end(
    tmp_path: Path, database_url: str, later: dt.datetime
) -> None:
    expected = 200 if 2027 in package_years() else 503
    assert await _readyz(tmp_path, database_url, workday_overrides_file=None) == expected
