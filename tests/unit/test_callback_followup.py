"""The follow-up IVR state machine: DOMAIN.md rule 5 (回访 of a closed 差评: case number said
digit by digit, department, "问题是否已解决", the 1–5 menu, a reason for a 差评; "未解决" flags
the case), rule 3 (邀评 of a call), rule 8 (the do-not-call key), rule 1 (nothing pressed or
a hang-up is recorded as such, never guessed)."""

from __future__ import annotations

from pathlib import Path

from callback_scheduler import followup as f
from hotline.levels import KeypadMap, Level
from ivr import prompts
from tests.conftest import make_settings

KEYPAD = KeypadMap({"1": 1, "2": 2, "3": 3, "4": 4, "5": 5})
REASONS = {"1": "1", "2": "2", "5": "9"}


def machine(**kw: object) -> f.Followup:
    config = f.FollowupConfig(keypad=KEYPAD, reasons=REASONS, case_digits="2025001",
                              department_prompt="callback-dept-abc", **kw)  # type: ignore[arg-type]
    return f.Followup(config)


def run(m: f.Followup, *events: f.Event) -> list[f.Action]:
    """All actions from the start through the given events."""
    actions = m.start()
    seen = list(actions)
    for event in events:
        actions = m.handle(event)
        seen += actions
    return seen


def test_rule5_greets_says_case_digits_and_department_then_asks_resolved() -> None:
    actions = machine().start()
    assert actions == [
        f.Play((f.GREETING,)), f.Play((f.CASE_NUMBER,)), f.SayDigits("2025001"),
        f.Play((f.DEPARTMENT, "callback-dept-abc")),
        f.Collect((f.RESOLVED_QUESTION, f.DNC_HINT), 6000),
    ]


def test_after_rectification_the_result_is_told_before_the_questions() -> None:
    """issue 10 "Back to the citizen": the department's result for the citizen (seed 003
    第十四条) is played after the department and before "问题是否已解决"."""
    actions = machine(result_prompt="callback-result-123").start()
    told = actions.index(f.Play((f.RESULT, "callback-result-123")))
    assert actions.index(f.Play((f.DEPARTMENT, "callback-dept-abc"))) < told
    assert actions[told + 1] == f.Collect((f.RESOLVED_QUESTION, f.DNC_HINT), 6000)
    # an ordinary 回访 (no 整改 result): nothing of it
    assert not any(isinstance(a, f.Play) and f.RESULT in a.prompts for a in machine().start())


def test_rule5_resolved_then_satisfied_is_stored_as_a_followup_rating() -> None:
    m = machine()
    actions = run(m, f.Digit("1"), f.Digit("2"))
    assert f.Collect((f.SATISFACTION, f.MENU), 6000) in actions
    assert f.SaveAnswer(Level.SATISFIED, True, (), final=True) in actions
    assert not any(isinstance(a, f.MarkUnresolved) for a in actions)
    assert actions[-1] == f.Finish("rated") and m.outcome == "rated"
    assert f.SetVariable(f.RESULT_VARIABLE, "2") in actions


def test_rule5_unresolved_flags_the_case_at_once_and_bad_rating_asks_a_reason() -> None:
    m = machine()
    actions = m.start()
    actions = m.handle(f.Digit("2"))
    assert actions[0] == f.MarkUnresolved()
    actions = m.handle(f.Digit("5"))
    # the level is saved (held) before the reason menu: a hang-up there keeps it
    assert actions == [f.SaveAnswer(Level.VERY_DISSATISFIED, False, (), final=False),
                       f.Collect((f.REASONS,), 6000)]
    actions = m.handle(f.Digit("5"))
    assert actions[0] == f.SaveAnswer(Level.VERY_DISSATISFIED, False, ("9",), final=True)


def test_rule5_hangup_during_the_reason_keeps_the_level() -> None:
    m = machine()
    run(m, f.Digit("1"), f.Digit("4"))
    assert m.handle(f.HungUp()) == [f.SaveAnswer(Level.DISSATISFIED, True, (), final=True),
                                    f.Finish("rated")]


def test_rule8_do_not_call_key_ends_the_call() -> None:
    m = machine()
    actions = run(m, f.Digit(f.DNC_KEY))
    assert f.AddDoNotCall() in actions and actions[-1] == f.Finish("do_not_call")
    assert not any(isinstance(a, f.SaveAnswer) for a in actions)


def test_wrong_keys_and_silence_retry_then_give_up_without_a_rating() -> None:
    m = machine()
    m.start()
    assert m.handle(f.Digit("7")) == [f.Collect((f.INVALID, f.RESOLVED_QUESTION), 6000)]
    assert m.handle(f.Digit("*")) == [f.Collect((f.RESOLVED_QUESTION,), 6000)]  # repeat
    assert m.handle(f.Timeout()) == [f.Collect((f.RESOLVED_QUESTION,), 6000)]
    actions = m.handle(f.Timeout())
    assert actions[-1] == f.Finish("no_answer_keys")
    assert not any(isinstance(a, f.SaveAnswer) for a in actions)


def test_reason_menu_out_of_tries_keeps_the_level_without_reason() -> None:
    m = machine(max_tries=2)
    run(m, f.Digit("1"), f.Digit("4"), f.Digit("8"))
    actions = m.handle(f.Digit("8"))
    assert actions[0] == f.SaveAnswer(Level.DISSATISFIED, True, (), final=True)


def test_hangup_before_a_level_is_no_rating_and_late_events_are_ignored() -> None:
    m = machine()
    m.start()
    assert m.handle(f.HungUp()) == [f.Finish("hangup")]
    assert m.handle(f.HungUp()) == []


def test_rule3_invitation_skips_the_case_questions() -> None:
    m = f.Followup(f.FollowupConfig(keypad=KEYPAD, reasons=REASONS, invite=True))
    assert m.start() == [f.Collect((f.INVITE, f.MENU, f.DNC_HINT), 6000)]
    actions = m.handle(f.Digit("3"))
    assert f.SaveAnswer(Level.BASICALLY_SATISFIED, None, (), final=True) in actions
    m = f.Followup(f.FollowupConfig(keypad=KEYPAD, reasons=REASONS, invite=True))
    m.start()
    assert f.AddDoNotCall() in m.handle(f.Digit(f.DNC_KEY))


def test_missing_prompt_ends_the_call_cleanly() -> None:
    m = machine()
    m.start()
    assert m.handle(f.PromptFailed())[-1] == f.Finish("failed")


def test_every_prompt_played_has_a_text(tmp_path: Path) -> None:
    """Every prompt of the follow-up is in the one catalogue, so `hotline prompts build`
    renders it and the FastAGI start check finds it missing."""
    catalogue = prompts.catalogue(make_settings(tmp_path))
    played = {f.GREETING, f.INVITE, f.CASE_NUMBER, f.DEPARTMENT, f.RESOLVED_QUESTION,
              f.DNC_HINT, f.SATISFACTION, f.DNC_DONE, f.MENU, f.REASONS, f.INVALID, f.THANKS,
              f.GOODBYE}
    assert played <= set(catalogue)
    assert "已解决请按1，未解决请按2" in catalogue[f.RESOLVED_QUESTION]
    # each menu of several prompts is a composite of the catalogue: one file, one GET DATA
    menus = {f.INVITE_MENU, f.RESOLVED_MENU, f.LEVEL_MENU,
             *((f.INVALID, menu) for menu in (f.RESOLVED_QUESTION, f.MENU, f.REASONS))}
    assert {prompts.played_as(parts) for parts in menus} <= set(catalogue)


def test_issue13_each_menu_of_several_prompts_is_a_declared_composite() -> None:
    """The 回访's menus and every retry are said as parts (what the citizen hears) that the
    catalogue builds into one file each, so the adapter can play them as ONE GET DATA."""
    assert (f.INVITE_MENU, f.RESOLVED_MENU, f.LEVEL_MENU) == (
        (f.INVITE, f.MENU, f.DNC_HINT), (f.RESOLVED_QUESTION, f.DNC_HINT), (f.SATISFACTION, f.MENU))
    m = machine()
    m.start()
    m.handle(f.Digit("1"))  # solved: the satisfaction menu
    assert m.handle(f.Digit("7")) == [f.Collect((f.INVALID, f.MENU), 6000)]
    m.handle(f.Digit("4"))  # 不满意: the reasons
    assert m.handle(f.Digit("7")) == [f.Collect((f.INVALID, f.REASONS), 6000)]
    assert prompts.played_as((f.INVALID, f.REASONS)) == "survey-reasons-retry"
    assert prompts.played_as((f.INVALID, f.RESOLVED_QUESTION)) == "callback-resolved-retry"
