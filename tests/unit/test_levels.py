"""The five levels and their three numberings (DOMAIN.md, "The five levels")."""

from __future__ import annotations

import pytest

from hotline.levels import DEFAULT_LEVEL, KeypadMap, Level, provincial_is_bad

LABELS = ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]


@pytest.mark.parametrize("level", list(Level))
def test_every_level_round_trips_through_every_numbering(level: Level) -> None:
    assert Level.from_provincial(level.provincial_code) is level
    assert Level.from_gbt(level.gbt_code) is level
    keypad = KeypadMap({"1": 1, "2": 2, "3": 3, "4": 4, "5": 5})
    assert keypad.level_for(keypad.key_for(level)) is level


def test_provincial_code_is_reversed_five_is_very_satisfied() -> None:
    """Push interfaces: 5 = 非常满意 … 1 = 非常不满意."""
    assert [lv.provincial_code for lv in Level] == [5, 4, 3, 2, 1]
    assert Level.from_provincial(5).label == "非常满意"
    assert Level.from_provincial(1).label == "非常不满意"


def test_gbt_39046_code_counts_from_very_satisfied() -> None:
    assert [lv.gbt_code for lv in Level] == [1, 2, 3, 4, 5]
    assert [lv.label for lv in Level] == LABELS


def test_bad_rating_is_dissatisfied_or_very_dissatisfied() -> None:
    """差评 = 不满意 and 非常不满意; a pushed satisfaction < 3 is a 差评."""
    assert [lv.is_bad for lv in Level] == [False, False, False, True, True]
    assert [provincial_is_bad(c) for c in (5, 4, 3, 2, 1)] == [False, False, False, True, True]


def test_default_rating_is_basically_satisfied() -> None:
    """Rule 2: an unrated service counts as 基本满意."""
    assert DEFAULT_LEVEL is Level.BASICALLY_SATISFIED
    assert not DEFAULT_LEVEL.is_bad


@pytest.mark.parametrize("bad", [0, 6, -1])
def test_out_of_range_codes_are_rejected(bad: int) -> None:
    with pytest.raises(ValueError):
        Level.from_provincial(bad)
    with pytest.raises(ValueError):
        Level.from_gbt(bad)


def test_standard_keypad_is_seed_000_order() -> None:
    """Seed 000: ①非常满意②满意③基本满意④不满意⑤非常不满意."""
    keypad = KeypadMap({"1": 1, "2": 2, "3": 3, "4": 4, "5": 5})
    assert [(k, lv.label) for k, lv in keypad.menu] == list(zip("12345", LABELS, strict=True))
    assert keypad.keys == "12345"


def test_reversed_keypad_site_setting() -> None:
    keypad = KeypadMap({"1": 5, "2": 4, "3": 3, "4": 2, "5": 1})
    assert keypad.level_for("1") is Level.VERY_DISSATISFIED
    assert keypad.key_for(Level.VERY_SATISFIED) == "5"
    assert keypad.level_for("6") is None
    assert keypad.level_for("*") is None


def test_keypad_map_must_cover_each_level_once() -> None:
    with pytest.raises(ValueError):
        KeypadMap({"1": 1, "2": 1, "3": 3, "4": 4, "5": 5})
