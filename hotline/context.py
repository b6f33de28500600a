"""What every worker of the service shares: settings, database, phone vault, calendar, levels."""

from __future__ import annotations

from dataclasses import dataclass, field

from hotline.levels import KeypadMap
from hotline.privacy import PhoneVault
from hotline.settings import Settings
from hotline.workdays import WorkdayCalendar, calendar
from storage.db import Database


@dataclass
class AppContext:
    settings: Settings
    db: Database
    vault: PhoneVault
    workdays: WorkdayCalendar = field(init=False)
    keypad: KeypadMap = field(init=False)

    def __post_init__(self) -> None:
        self.workdays = calendar(self.settings.workday_overrides_file)
        self.keypad = KeypadMap(self.settings.keypad_map)

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            db=Database(settings.effective_database_url),
            vault=PhoneVault.from_key_file(settings.effective_phone_key_file),
        )

    async def close(self) -> None:
        await self.db.close()
