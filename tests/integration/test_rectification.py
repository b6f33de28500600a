"""DOMAIN.md rule 4: a 差评 goes to the responsible department, to be answered within 15
working days (official calendar), or natural days where a site says so."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from hotline.levels import Level
from service.context import AppContext
from storage.models import Case, RatingKind, RatingSource
from storage.ratings import RatingInput, save_rating
from tests.conftest import make_settings

BEIJING_EVENING = dt.datetime(2025, 9, 30, 15, 0, tzinfo=dt.UTC)  # 2025-09-30 23:00 Beijing


def test_rule4_deadline_is_15_working_days_across_national_day(tmp_path: Path) -> None:
    ctx = AppContext.create(make_settings(tmp_path))
    # Oct 1-8 are off, Oct 11 (Sat) is a make-up working day: 15 working days -> Oct 28
    assert ctx.rectification_due(BEIJING_EVENING) == dt.date(2025, 10, 28)
    # counted from the Beijing date: 15:30 UTC is 23:30 on Oct 9, 16:30 UTC already Oct 10
    assert ctx.rectification_due(dt.datetime(2025, 10, 9, 15, 30, tzinfo=dt.UTC)) == dt.date(
        2025, 10, 29
    )
    assert ctx.rectification_due(dt.datetime(2025, 10, 9, 16, 30, tzinfo=dt.UTC)) == dt.date(
        2025, 10, 30
    )


def test_rule4_natural_days_variant(tmp_path: Path) -> None:
    """Seed 002 counts 15 natural days; a setting."""
    ctx = AppContext.create(make_settings(tmp_path, rectification_days_unit="natural_days"))
    assert ctx.rectification_due(BEIJING_EVENING) == dt.date(2025, 10, 15)


async def test_rule4_bad_rating_on_a_case_marks_it_and_starts_the_deadline(
    ctx: AppContext,
) -> None:
    async with ctx.db.transaction() as s:
        case = Case(case_number="GD-R4", department_code="D1")
        s.add(case)
        await s.flush()
        case_id = case.id
    due = ctx.rectification_due(BEIJING_EVENING)
    for level in (Level.SATISFIED, Level.DISSATISFIED):
        async with ctx.db.transaction() as s:
            await save_rating(
                s,
                RatingInput(project_no="GD-R4", kind=RatingKind.PER_CASE,
                            source=RatingSource.CALLBACK, level=level, assess_number=2,
                            case_id=case_id, rated_at=BEIJING_EVENING),
                rectification_due=due,
            )
        async with ctx.db.sessions() as s:
            stored = await s.scalar(select(Case).where(Case.id == case_id))
        assert stored is not None
        if level is Level.SATISFIED:
            assert (stored.has_bad_rating, stored.rectification_due) == (False, None)
    assert (stored.has_bad_rating, stored.rectification_due) == (True, dt.date(2025, 10, 28))
    # a later 差评 does not move a deadline already running
    async with ctx.db.transaction() as s:
        await save_rating(
            s,
            RatingInput(project_no="GD-R4", kind=RatingKind.PER_CASE,
                        source=RatingSource.CALLBACK, level=Level.VERY_DISSATISFIED,
                        assess_number=3, case_id=case_id),
            rectification_due=dt.date(2026, 1, 1),
        )
    async with ctx.db.sessions() as s:
        stored = await s.scalar(select(Case).where(Case.id == case_id))
    assert stored is not None and stored.rectification_due == dt.date(2025, 10, 28)
