"""The AGI adapter of the keypad dialog (ivr/dialog.py ``DialogRunner``) over a simulated
channel: a menu of several prompts is ONE ``GET DATA`` of its composite (issue 13: between two
AGI commands Asterisk reads and drops the caller's DTMF, so a key pressed across the end of
"输入有误" or of the 回访's invitation was lost; DOMAIN.md, Asterisk facts, and rule 1: every
call can be rated). The machines keep saying what the caller hears (the parts); the runner
plays it as one file."""

from __future__ import annotations

import logging

import pytest

from callback_scheduler import followup as f
from hotline.levels import KeypadMap
from ivr import prompts
from ivr.agi.channel import CallLog
from ivr.agi.simulated import SimulatedCaller, memory_channel
from ivr.dialog import Collect, DialogRunner, Machine
from ivr.survey import Survey, SurveyConfig

KEYPAD = KeypadMap({"1": 1, "2": 2, "3": 3, "4": 4, "5": 5})
REASONS = {"1": "A1", "2": "A2"}


async def run(machine: Machine, keys: list[object]) -> tuple[str, list[list[str]]]:
    caller = SimulatedCaller(keys=keys)
    channel, _ = memory_channel(caller)
    await channel.read_environment()
    runner = DialogRunner(channel, CallLog(logging.getLogger("test"), {}))
    outcome = await runner.run(machine)
    return outcome, [c for c in caller.commands if c[:2] in (["GET", "DATA"],
                                                              ["STREAM", "FILE"])]


def listened(commands: list[list[str]]) -> list[str]:
    """The prompts played by the commands that listen for a key: GET DATA only (a STREAM FILE
    with escape digits would be a menu split over two commands)."""
    assert not [c for c in commands if c[:2] == ["STREAM", "FILE"] and len(c) > 3 and c[3]]
    return [c[2] for c in commands if c[:2] == ["GET", "DATA"]]


def survey() -> Survey:
    return Survey(SurveyConfig(keypad=KEYPAD, reasons=REASONS, comment_max_seconds=0))


async def test_a_wrong_key_gets_one_get_data_of_invalid_and_the_menu() -> None:
    """Issue 13: "输入有误" and the menu again are one file, played by one GET DATA that
    listens from "输入有误"'s first word; no STREAM FILE listens before it."""
    outcome, commands = await run(survey(), ["9", "2"])
    assert outcome == "rated"
    assert commands[:2] == [
        ["GET", "DATA", "hotline/survey-welcome", "6000", "1"],
        ["GET", "DATA", "hotline/survey-menu-retry", "6000", "1"],
    ]
    assert listened(commands) == ["hotline/survey-welcome", "hotline/survey-menu-retry"]


async def test_a_wrong_key_in_the_reason_menu_gets_its_composite() -> None:
    outcome, commands = await run(survey(), ["4", "7", "2"])
    assert outcome == "rated"
    assert listened(commands) == ["hotline/survey-welcome", "hotline/survey-reasons",
                                  "hotline/survey-reasons-retry"]


async def test_a_repeat_key_replays_the_menu_alone() -> None:
    _, commands = await run(survey(), ["*", "1"])
    assert listened(commands) == ["hotline/survey-welcome", "hotline/survey-menu"]


def followup(**kw: object) -> f.Followup:
    return f.Followup(f.FollowupConfig(keypad=KEYPAD, reasons=REASONS, **kw))  # type: ignore[arg-type]


async def test_the_invitation_menu_is_one_get_data() -> None:
    """邀评: the invitation, the menu and the do-not-call hint in one file; a wrong key gets
    the menu's retry composite."""
    outcome, commands = await run(followup(invite=True), ["8", "2"])
    assert outcome == "rated"
    assert listened(commands) == ["hotline/callback-invite-menu", "hotline/survey-menu-retry"]
    assert commands[0] == ["GET", "DATA", "hotline/callback-invite-menu", "6000", "1"]


async def test_the_callback_questions_are_one_get_data_each() -> None:
    """回访: "是否已解决" + the do-not-call hint, its retry, then "请您对办理情况进行评价" + the
    menu: each ONE GET DATA of its composite."""
    outcome, commands = await run(followup(), ["7", "1", "2"])
    assert outcome == "rated"
    assert listened(commands) == ["hotline/callback-resolved-menu",
                                  "hotline/callback-resolved-retry",
                                  "hotline/callback-level-menu"]
    assert [c[2] for c in commands[:1]] == ["hotline/callback-greeting"]  # told, not asked


def test_several_prompts_that_are_no_composite_are_refused_where_the_flow_makes_them() -> None:
    """A flow cannot ask for a menu of several prompts that the catalogue does not build."""
    with pytest.raises(LookupError, match="not a composite"):
        Collect((prompts.SURVEY_THANKS, prompts.SURVEY_MENU), 6000)
    assert Collect(prompts.retry_of(prompts.SURVEY_MENU).parts, 6000).prompts == (
        prompts.SURVEY_INVALID, prompts.SURVEY_MENU)
