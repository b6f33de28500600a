"""Every transition of the survey state machine (ivr.survey), without Asterisk or a database.
Each test names the rule it checks: DOMAIN.md rules and the survey rules of issue 3."""

from __future__ import annotations

import pytest

from hotline.levels import KeypadMap, Level
from ivr import prompts as P
from ivr.survey import (
    Collect,
    Digit,
    Finish,
    HungUp,
    MarkNotRated,
    Phase,
    Play,
    PromptFailed,
    Record,
    RecordingDone,
    RecordingFailed,
    Save,
    SetVariable,
    Survey,
    SurveyConfig,
    SurveyError,
    Timeout,
)

REASONS = {"1": "1", "2": "2", "3": "3", "4": "4", "5": "9"}
IDENTITY = KeypadMap({"1": 1, "2": 2, "3": 3, "4": 4, "5": 5})
TIMEOUT = 6000


def config(**kw: object) -> SurveyConfig:
    values: dict[str, object] = {
        "keypad": IDENTITY, "reasons": REASONS, "max_tries": 3, "digit_timeout_ms": TIMEOUT,
        "comment_max_seconds": 60, "comment_silence_seconds": 5,
    }
    values.update(kw)
    return SurveyConfig(**values)  # type: ignore[arg-type]


def started(**kw: object) -> Survey:
    survey = Survey(config(**kw))
    survey.start()
    return survey


def menu(*ids: str) -> Collect:
    return Collect(tuple(ids), TIMEOUT)


def rated(level: Level, reasons: tuple[str, ...] | None = None,
          comment: str | None = None) -> list[object]:
    return [
        Save(level, reasons, comment, final=True),
        SetVariable("SURVEY_RESULT", str(int(level))),
        Play((P.SURVEY_THANKS,)),
        Finish(level, "rated"),
    ]


def not_rated(outcome: str) -> list[object]:
    return [
        MarkNotRated(outcome),
        SetVariable("SURVEY_RESULT", "none"),
        Play((P.SURVEY_GOODBYE,)),
        Finish(None, outcome),
    ]


def at_reason_menu(level: Level = Level.DISSATISFIED, **kw: object) -> Survey:
    survey = started(**kw)
    survey.handle(Digit(str(int(level))))
    assert survey.phase is Phase.REASON
    return survey


def at_comment_offer(**kw: object) -> Survey:
    survey = at_reason_menu(**kw)
    survey.handle(Digit("2"))
    assert survey.phase is Phase.COMMENT_OFFER
    return survey


def at_comment(**kw: object) -> Survey:
    survey = at_comment_offer(**kw)
    survey.handle(Digit("1"))
    assert survey.phase is Phase.COMMENT
    return survey


# ----------------------------------------------------------------------------- the menu


def test_start_plays_the_welcome_as_one_prompt_listening_for_one_key() -> None:
    """Issue 3: menu prompt, barge-in (keys are collected while it plays). Issue 13: the
    greeting and the menu are one prompt, so no key can fall between two AGI commands."""
    assert Survey(config()).start() == [menu(P.SURVEY_WELCOME)]


@pytest.mark.parametrize("level", [Level.VERY_SATISFIED, Level.SATISFIED,
                                   Level.BASICALLY_SATISFIED])
def test_good_level_is_saved_thanked_and_set_in_survey_result(level: Level) -> None:
    """Levels 1-3 are not 差评: save, SURVEY_RESULT = canonical level, thanks, done."""
    survey = started()
    assert survey.handle(Digit(str(int(level)))) == rated(level)
    assert survey.finished and survey.outcome == "rated"


@pytest.mark.parametrize("level", [Level.DISSATISFIED, Level.VERY_DISSATISFIED])
def test_bad_level_is_saved_at_once_then_asks_the_reason(level: Level) -> None:
    """差评 (4, 5): the level is saved before the reason menu (a hang-up keeps it)."""
    survey = started()
    assert survey.handle(Digit(str(int(level)))) == [
        Save(level, None, None, final=False), menu(P.SURVEY_REASONS),
    ]


def test_keypad_map_setting_decides_the_level() -> None:
    """DOMAIN.md numbering: some sites reverse the keypad; SURVEY_RESULT stays canonical."""
    reversed_map = KeypadMap({"1": 5, "2": 4, "3": 3, "4": 2, "5": 1})
    survey = started(keypad=reversed_map)
    assert survey.handle(Digit("5")) == rated(Level.VERY_SATISFIED)
    survey = started(keypad=reversed_map)
    assert survey.handle(Digit("1"))[0] == Save(Level.VERY_DISSATISFIED, None, None, final=False)


@pytest.mark.parametrize("key", ["6", "9", "#"])
def test_key_outside_the_menu_says_invalid_and_replays(key: str) -> None:
    """A key outside the menu: "输入有误" and the menu again."""
    assert started().handle(Digit(key)) == [menu(P.SURVEY_INVALID, P.SURVEY_MENU)]


def test_invalid_then_valid_key_rates() -> None:
    survey = started()
    survey.handle(Digit("8"))
    assert survey.handle(Digit("2")) == rated(Level.SATISFIED)


def test_three_invalid_keys_end_not_rated() -> None:
    """At most 3 tries, then not rated (rule 1: recorded, not lost)."""
    survey = started()
    survey.handle(Digit("7"))
    survey.handle(Digit("8"))
    assert survey.handle(Digit("9")) == not_rated("not_rated_invalid")
    assert survey.finished and survey.outcome == "not_rated_invalid"


@pytest.mark.parametrize("key", ["0", "*"])
def test_zero_or_star_repeats_the_menu_without_using_a_try(key: str) -> None:
    """0 or * repeats the menu; the three tries remain for wrong keys."""
    survey = started()
    assert survey.handle(Digit(key)) == [menu(P.SURVEY_MENU)]
    survey.handle(Digit("7"))
    survey.handle(Digit("8"))
    assert survey.handle(Digit("3")) == rated(Level.BASICALLY_SATISFIED)


def test_repeats_are_capped_then_count_as_wrong_keys() -> None:
    """The survey always ends: after max_tries repeats a repeat key is a wrong key."""
    survey = started()
    for _ in range(3):
        assert survey.handle(Digit("*")) == [menu(P.SURVEY_MENU)]
    assert survey.handle(Digit("*")) == [menu(P.SURVEY_INVALID, P.SURVEY_MENU)]


def test_silence_gets_one_retry() -> None:
    """Silence: one retry (the menu again, no "输入有误")."""
    assert started().handle(Timeout()) == [menu(P.SURVEY_MENU)]


def test_silence_twice_is_not_rated() -> None:
    """Silence: one retry, then not rated (rule 1)."""
    survey = started()
    survey.handle(Timeout())
    assert survey.handle(Timeout()) == not_rated("not_rated_silence")


def test_silence_then_key_rates() -> None:
    survey = started()
    survey.handle(Timeout())
    assert survey.handle(Digit("1")) == rated(Level.VERY_SATISFIED)


def test_wrong_keys_and_silence_share_the_three_tries() -> None:
    survey = started()
    survey.handle(Digit("7"))
    survey.handle(Timeout())
    assert survey.handle(Digit("8")) == not_rated("not_rated_invalid")


def test_silence_after_two_wrong_keys_uses_the_last_try() -> None:
    survey = started()
    survey.handle(Digit("7"))
    survey.handle(Digit("8"))
    assert survey.handle(Timeout()) == not_rated("not_rated_silence")


def test_single_try_setting() -> None:
    assert started(max_tries=1).handle(Digit("7")) == not_rated("not_rated_invalid")
    assert started(max_tries=1).handle(Timeout()) == not_rated("not_rated_silence")


def test_hangup_in_the_menu_is_not_rated() -> None:
    """Rule 1: hang-up before rating is recorded as not rated (no prompt, no variable)."""
    survey = started()
    assert survey.handle(HungUp()) == [
        MarkNotRated("not_rated_hangup"), Finish(None, "not_rated_hangup")
    ]
    assert survey.outcome == "not_rated_hangup"


def test_hangup_after_a_wrong_key_is_not_rated() -> None:
    survey = started()
    survey.handle(Digit("9"))
    assert survey.handle(HungUp())[0] == MarkNotRated("not_rated_hangup")


def test_missing_prompt_in_the_menu_ends_not_rated_and_says_none() -> None:
    """A missing prompt must not pass for a hang-up silently: end, SURVEY_RESULT=none."""
    assert started().handle(PromptFailed()) == [
        MarkNotRated("failed"), SetVariable("SURVEY_RESULT", "none"), Finish(None, "failed"),
    ]


# ----------------------------------------------------------------------------- reasons


def test_reason_key_becomes_its_code_and_is_saved() -> None:
    """差评 reasons: keys → evalDetail codes (setting); saved before the comment offer."""
    survey = at_reason_menu()
    assert survey.handle(Digit("5")) == [
        Save(Level.DISSATISFIED, ("9",), None, final=False), menu(P.SURVEY_COMMENT_OFFER),
    ]


def test_wrong_reason_key_says_invalid_and_replays_the_reasons() -> None:
    assert at_reason_menu().handle(Digit("8")) == [menu(P.SURVEY_INVALID, P.SURVEY_REASONS)]


def test_reason_menu_has_fresh_tries() -> None:
    """Wrong keys in the main menu do not use up the reason menu's tries."""
    survey = started()
    survey.handle(Digit("7"))
    survey.handle(Digit("8"))
    survey.handle(Digit("4"))
    assert survey.handle(Digit("9")) == [menu(P.SURVEY_INVALID, P.SURVEY_REASONS)]


def test_reason_tries_exhausted_skip_the_reason_but_keep_the_level() -> None:
    """No reason after the tries: the level stays, the forwarder adds the fallback reason."""
    survey = at_reason_menu()
    survey.handle(Digit("7"))
    survey.handle(Digit("8"))
    assert survey.handle(Digit("9")) == [menu(P.SURVEY_COMMENT_OFFER)]
    assert survey.level is Level.DISSATISFIED and survey.reason_code is None


def test_reason_silence_retries_once_then_skips() -> None:
    survey = at_reason_menu()
    assert survey.handle(Timeout()) == [menu(P.SURVEY_REASONS)]
    assert survey.handle(Timeout()) == [menu(P.SURVEY_COMMENT_OFFER)]


def test_reason_repeat() -> None:
    assert at_reason_menu().handle(Digit("0")) == [menu(P.SURVEY_REASONS)]


def test_hangup_in_the_reason_menu_keeps_the_level() -> None:
    """Issue 3: a hang-up in the reason menu keeps the level already pressed (final save)."""
    survey = at_reason_menu(Level.VERY_DISSATISFIED)
    assert survey.handle(HungUp()) == [
        Save(Level.VERY_DISSATISFIED, None, None, final=True),
        Finish(Level.VERY_DISSATISFIED, "rated"),
    ]


def test_missing_prompt_after_the_level_keeps_it() -> None:
    survey = at_reason_menu()
    assert survey.handle(PromptFailed()) == [
        Save(Level.DISSATISFIED, None, None, final=True),
        SetVariable("SURVEY_RESULT", "4"),
        Finish(Level.DISSATISFIED, "rated"),
    ]


def test_no_reasons_configured_goes_to_the_comment_offer() -> None:
    survey = started(reasons={})
    assert survey.handle(Digit("4")) == [
        Save(Level.DISSATISFIED, None, None, final=False), menu(P.SURVEY_COMMENT_OFFER),
    ]


# ----------------------------------------------------------------------------- comment


def test_pressing_1_offers_the_recording_with_beep_and_hash() -> None:
    """Optional voice comment: RECORD FILE up to the configured length, # ends, beep."""
    assert at_comment_offer().handle(Digit("1")) == [
        Play((P.SURVEY_COMMENT_RECORD,)),
        Record(max_seconds=60, silence_seconds=5, end_keys="#", beep=True),
    ]


@pytest.mark.parametrize("event", [Digit("2"), Digit("#"), Digit("9"), Timeout()])
def test_anything_else_skips_the_comment(event: object) -> None:
    """The comment is optional: any other key or silence finishes with the reason kept."""
    assert at_comment_offer().handle(event) == rated(Level.DISSATISFIED, ("2",))  # type: ignore[arg-type]


def test_comment_disabled_by_setting_finishes_after_the_reason() -> None:
    survey = at_reason_menu(comment_max_seconds=0)
    assert survey.handle(Digit("1")) == [
        Save(Level.DISSATISFIED, ("1",), None, final=False), *rated(Level.DISSATISFIED, ("1",))
    ]


def test_hangup_at_the_comment_offer_keeps_level_and_reason() -> None:
    assert at_comment_offer().handle(HungUp()) == [
        Save(Level.DISSATISFIED, ("2",), None, final=True), Finish(Level.DISSATISFIED, "rated"),
    ]


def test_recorded_comment_is_linked_to_the_rating() -> None:
    """The voice comment's file is linked to the rating."""
    survey = at_comment()
    assert survey.handle(RecordingDone("hotline/recordings/1-5.wav", 7.5)) == rated(
        Level.DISSATISFIED, ("2",), "hotline/recordings/1-5.wav"
    )


def test_a_recording_too_short_to_hold_words_is_not_linked() -> None:
    survey = at_comment()
    assert survey.handle(RecordingDone("hotline/recordings/1-5.wav", 0.2)) == rated(
        Level.DISSATISFIED, ("2",)
    )


def test_hangup_while_recording_keeps_what_was_said() -> None:
    """Callers often hang up instead of pressing #: the comment is still linked."""
    survey = at_comment()
    assert survey.handle(RecordingDone("hotline/recordings/1-5.wav", 4.0, hung_up=True)) == [
        Save(Level.DISSATISFIED, ("2",), "hotline/recordings/1-5.wav", final=True),
        Finish(Level.DISSATISFIED, "rated"),
    ]


def test_recording_failure_finishes_without_comment() -> None:
    assert at_comment().handle(RecordingFailed()) == rated(Level.DISSATISFIED, ("2",))


def test_hangup_during_the_recording_instructions_keeps_the_rating() -> None:
    assert at_comment().handle(HungUp()) == [
        Save(Level.DISSATISFIED, ("2",), None, final=True), Finish(Level.DISSATISFIED, "rated"),
    ]


# ----------------------------------------------------------------------------- the end


def test_hangup_after_the_end_changes_nothing() -> None:
    """A hang-up during the thanks: the rating and SURVEY_RESULT were already done."""
    survey = started()
    survey.handle(Digit("1"))
    assert survey.handle(HungUp()) == []
    assert survey.handle(PromptFailed()) == []
    assert survey.outcome == "rated"


@pytest.mark.parametrize(
    ("prepare", "event"),
    [
        (lambda: started(), RecordingDone("x", 1)),
        (lambda: started(), RecordingFailed()),
        (lambda: at_reason_menu(), RecordingDone("x", 1)),
        (lambda: at_comment(), Digit("1")),
        (lambda: at_comment(), Timeout()),
        (lambda: at_comment_offer(), RecordingFailed()),
    ],
)
def test_events_a_phase_cannot_receive_are_bugs(prepare: object, event: object) -> None:
    with pytest.raises(SurveyError):
        prepare().handle(event)  # type: ignore[operator]


def test_events_after_the_end_or_before_the_start_are_bugs() -> None:
    survey = started()
    survey.handle(Digit("1"))
    with pytest.raises(SurveyError):
        survey.handle(Digit("1"))
    with pytest.raises(SurveyError):
        Survey(config()).handle(Digit("1"))
    with pytest.raises(SurveyError):
        Survey(config()).handle(HungUp())
    with pytest.raises(SurveyError):
        survey.start()
