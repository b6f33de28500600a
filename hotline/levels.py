"""The five satisfaction levels and the only place where their numberings are converted.

Canonical numbering (used everywhere inside the service, in the database and in
``SURVEY_RESULT``): 1 = 非常满意 … 5 = 非常不满意, which is also the GB/T 39046-2020 code.
The provincial push interfaces count the other way (5 = 非常满意 … 1 = 非常不满意), and the
keypad is a per-site setting (DOMAIN.md, "The five levels").
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum


class Level(IntEnum):
    VERY_SATISFIED = 1
    SATISFIED = 2
    BASICALLY_SATISFIED = 3
    DISSATISFIED = 4
    VERY_DISSATISFIED = 5

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def is_bad(self) -> bool:
        """差评: 不满意 and 非常不满意."""
        return self >= Level.DISSATISFIED

    @property
    def provincial_code(self) -> int:
        """The push interfaces' ``satisfaction``: 5 = 非常满意 … 1 = 非常不满意."""
        return 6 - int(self)

    @property
    def gbt_code(self) -> int:
        """GB/T 39046-2020 满意度代码: 1 = 非常满意 … 5 = 非常不满意."""
        return int(self)

    @classmethod
    def from_provincial(cls, code: int) -> Level:
        if not 1 <= code <= 5:
            raise ValueError(f"provincial satisfaction code {code} is not in 1..5")
        return cls(6 - code)

    @classmethod
    def from_gbt(cls, code: int) -> Level:
        if not 1 <= code <= 5:
            raise ValueError(f"GB/T 39046 code {code} is not in 1..5")
        return cls(code)


_LABELS = {
    Level.VERY_SATISFIED: "非常满意",
    Level.SATISFIED: "满意",
    Level.BASICALLY_SATISFIED: "基本满意",
    Level.DISSATISFIED: "不满意",
    Level.VERY_DISSATISFIED: "非常不满意",
}

#: the level a service gets when not rated within the window (DOMAIN.md rule 2)
DEFAULT_LEVEL = Level.BASICALLY_SATISFIED


def provincial_is_bad(code: int) -> bool:
    """A pushed record with ``satisfaction`` < 3 is a 差评."""
    return Level.from_provincial(code).is_bad


class KeypadMap:
    """The site's key ↔ level map (setting ``keypad_map``), in both directions."""

    def __init__(self, key_to_level: Mapping[str, int]) -> None:
        if sorted(key_to_level.values()) != [1, 2, 3, 4, 5]:
            raise ValueError("keypad map must assign each of the levels 1..5 exactly one key")
        self._to_level = {key: Level(value) for key, value in key_to_level.items()}
        self._to_key = {level: key for key, level in self._to_level.items()}

    def level_for(self, key: str) -> Level | None:
        """The level a key selects, or None for a key that is not on the menu."""
        return self._to_level.get(key)

    def key_for(self, level: Level) -> str:
        return self._to_key[level]

    @property
    def menu(self) -> list[tuple[str, Level]]:
        """Menu order: the keys as they are read out, lowest key first."""
        return sorted(((k, lv) for k, lv in self._to_level.items()), key=lambda kv: kv[0])

    @property
    def keys(self) -> str:
        return "".join(k for k, _ in self.menu)
