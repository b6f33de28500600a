"""The 回访 after 整改 tells the citizen the department's result before asking (issue 10 "Back
to the citizen"; seed 003 第十四条 "将整改情况反馈企业和群众"), over a simulated Asterisk
(ivr.agi.simulated), on SQLite and PostgreSQL: the result is rendered with the prompts' TTS,
cached per text, played after the department and before "问题是否已解决"; a failure to render it
never stops the 回访."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bad_ratings import followup, service
from bad_ratings.machine import Action, Command, Finding
from callback_scheduler.claims import Claim, claim
from callback_scheduler.followup_agi import RESULT_PROMPT_KIND, VAR_ATTEMPT
from ivr import prompts, spoken
from service.context import AppContext
from storage.models import BadRatingItem
from tests.conftest import make_settings
from tests.helpers.callbacks import NOW, closed_bad_case
from tests.helpers.followup_agi import Citizen, agi

RESULT = "已对窗口工作人员批评教育，并为您重新办理。"


async def rectified_call(tmp_path: Path, url: str, case_number: str,
                         **overrides: Any) -> tuple[AppContext, Claim, str]:
    """A closed case whose 差评 the department verified and rectified: its 回访 is claimed."""
    ctx = AppContext.create(make_settings(tmp_path, database_url=url, **overrides))
    await closed_bad_case(ctx, case_number)
    dep = service.Actor("dept", "department", frozenset({"D1"}))
    policy = ctx.bad_rating_policy
    async with ctx.db.transaction() as s:
        item = await s.scalar(select(BadRatingItem))
        assert item is not None
        await service.act(s, dep, item.id, Command(Action.VERIFY, "department",
                                                   finding=Finding.GENUINE, note="属实"),
                          policy=policy, now=NOW)
        row = await service.act(s, dep, item.id, Command(
            Action.RECTIFY, "department", note="已整改", citizen_result=RESULT),
            policy=policy, now=NOW)
        await followup.after_act(s, ctx, row, NOW)
        assert row.state == "followup"
    [c] = await claim(ctx, scheduler_id="t", now=NOW, want=1)
    return ctx, c, spoken.prompt_id(RESULT_PROMPT_KIND, RESULT)


async def test_the_result_is_rendered_and_told_before_the_questions(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    rendered: list[str] = []

    def counting(text: str, target: Path, voice: str, **kw: Any) -> None:
        rendered.append(text)
        # the department's name and the result: a short real file stands for espeak-ng here
        # (tests/unit/test_spoken_prompts.py renders with the real TTS)
        target.write_bytes(b"\0" * 64)

    monkeypatch.setattr(prompts, "render", counting)
    ctx, c, result_id = await rectified_call(tmp_path, database_url, "GD-RS-1")
    try:
        citizen = Citizen(keys=["1", "1"], variables={VAR_ATTEMPT: str(c.attempt_id)})
        assert await agi(ctx, citizen) == "rated"
        played = citizen.played
        told = played.index(f"hotline/{result_id}")
        assert played[told - 1] == "hotline/callback-result"
        assert played.index("hotline/callback-department") < told
        assert told < played.index("hotline/callback-resolved-menu")
        assert RESULT in rendered
        async with ctx.db.sessions() as s:
            item = await s.scalar(select(BadRatingItem))
        assert item is not None and (item.state, item.followup_solved) == ("closed", True)
    finally:
        await ctx.close()
    # the same text is not rendered again for the next call
    rendered.clear()
    assert await spoken.spoken_prompt(ctx.settings, RESULT_PROMPT_KIND, RESULT) == result_id
    assert rendered == []


async def test_a_result_that_cannot_be_rendered_does_not_stop_the_followup(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # whatever level earlier tests configured
    caplog.set_level(logging.WARNING, logger="hotline.ivr.spoken")

    def broken(*_: Any, **__: Any) -> None:
        raise prompts.PromptBuildError("espeak-ng is not installed")

    monkeypatch.setattr(prompts, "render", broken)
    ctx, c, result_id = await rectified_call(tmp_path, database_url, "GD-RS-2")
    try:
        citizen = Citizen(keys=["2", "2"], variables={VAR_ATTEMPT: str(c.attempt_id)})
        assert await agi(ctx, citizen) == "rated"
        assert "hotline/callback-result" not in citizen.played
        assert f"hotline/{result_id}" not in citizen.played
        assert "hotline/callback-resolved-menu" in citizen.played
        assert "spoken prompt not rendered" in caplog.text and RESULT not in caplog.text
        async with ctx.db.sessions() as s:
            item = await s.scalar(select(BadRatingItem))
        # "not solved": the answer still reached the item, which starts round 2
        assert item is not None and (item.state, item.round) == ("rectifying", 2)
    finally:
        await ctx.close()


async def test_an_ordinary_callback_tells_no_result(
    tmp_path: Path, database_url: str,
) -> None:
    """A closed case's 回访 with its item not yet rectified: nothing to tell."""
    ctx = AppContext.create(make_settings(tmp_path, database_url=database_url))
    try:
        await closed_bad_case(ctx, "GD-RS-3")
        [c] = await claim(ctx, scheduler_id="t", now=NOW, want=1)
        citizen = Citizen(keys=["1", "1"], variables={VAR_ATTEMPT: str(c.attempt_id)})
        assert await agi(ctx, citizen) == "rated"
        assert not any(p.startswith("hotline/callback-result") for p in citizen.played)
    finally:
        await ctx.close()
