"""What every worker of the service shares: settings, database, phone vault, calendar, levels."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hotline.levels import KeypadMap
from hotline.privacy import PhoneVault
from hotline.settings import Settings
from hotline.workdays import WorkdayCalendar, calendar
from ivr.survey_journal import SurveyJournal
from storage.db import Database


@dataclass
class AppContext:
    settings: Settings
    db: Database
    vault: PhoneVault
    workdays: WorkdayCalendar = field(init=False)
    keypad: KeypadMap = field(init=False)
    bad_rating_policy: Any = field(init=False)
    #: where a survey step goes when the database does not take it in time (issue 8)
    survey_journal: SurveyJournal = field(init=False)
    #: each worker's state under ``hotline serve`` (service.supervisor), shown by readiness
    workers: dict[str, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.workdays = calendar(self.settings.workday_overrides_file)
        self.keypad = KeypadMap(self.settings.keypad_map)
        self.survey_journal = SurveyJournal(
            self.settings.data_dir / "journal", deadline=self.settings.survey_save_deadline_seconds
        )
        # composition root: every rating saved opens or joins its 差评 item (issue 10)
        from bad_ratings import hook

        self.bad_rating_policy = hook.install(self.db, self.settings, self.workdays)
        # a committed rating wakes the forwarder (here, and elsewhere by NOTIFY; issue 13)
        from storage import outbox_wake

        outbox_wake.install(self.db)

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            db=Database(settings.effective_database_url),
            vault=PhoneVault.from_key_file(settings.effective_phone_key_file),
        )

    def rectification_due(self, bad_rating_at: dt.datetime) -> dt.date:
        """DOMAIN.md rule 4: the department answers a 差评 within ``rectification_days``
        (15 working days by default) of the 差评, counted from its Beijing date."""
        start = bad_rating_at.astimezone(self.settings.tz).date()
        days = self.settings.rectification_days
        if self.settings.rectification_days_unit == "working_days":
            return self.workdays.add_working_days(start, days)
        return start + dt.timedelta(days=days)

    async def close(self) -> None:
        await self.db.close()
