"""The survey over AGI: reads who the call is, then performs the state machine's actions
(:mod:`ivr.survey`) as AGI commands and feeds back what the caller did.

Action → AGI command:

The loop and the shared actions are :class:`ivr.dialog.DialogRunner`'s:

* ``Collect``: STREAM FILE for each prompt but the last, any key interrupting it (barge-in), then
  GET DATA on the last prompt (it listens while playing) with the digit timeout, 1 digit.
* ``Play``: STREAM FILE without escape digits.
* ``Record``: RECORD FILE ``hotline/recordings/<linkedid>`` wav, ``#`` ends, BEEP, ``s=``.
* ``SetVariable``: SET VARIABLE.  ``Save`` / ``MarkNotRated``: the database (survey_store).
* ``Finish``: return; the server closes the socket and the dialplan goes on.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from hotline import channel_vars as cv
from ivr import prompts
from ivr.agi import protocol as p
from ivr.agi.channel import AgiChannel, CallLog, ChannelGone
from ivr.dialog import RECORDINGS_SUBDIR, DialogRunner
from ivr.survey import (
    NOT_RATED_VALUE,
    RESULT_VARIABLE,
    MarkNotRated,
    Save,
    Survey,
    SurveyConfig,
)
from ivr.survey_store import CallInfo, SurveyStore
from service.context import AppContext
from storage.models import SurveyStatus

log = logging.getLogger("hotline.ivr.survey")

#: channel variables the dialplan, the queue or the API set on the caller's channel
#: (the contract: hotline/channel_vars.py)
VAR_AGENT = cv.HOTLINE_AGENT
VAR_QUEUE = cv.HOTLINE_QUEUE
VAR_CASE = cv.HOTLINE_CASE_ID
VAR_DEPT = cv.HOTLINE_DEPT
VAR_ABANDONED = cv.HOTLINE_ABANDONED

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_INTERFACE = re.compile(r"^[A-Za-z0-9]+/([^@/]+)")


def agent_from_interface(interface: str | None) -> str | None:
    """``PJSIP/1001`` or ``Local/1001@agents/n`` → ``1001`` (queue members named by 工号)."""
    if not interface:
        return None
    m = _INTERFACE.match(interface)
    return m.group(1) if m else None


async def read_call_info(channel: AgiChannel) -> CallInfo:
    """Everything that identifies the call. There is no agi_linkedid: read CHANNEL(linkedid).
    All these commands are permitted on a dead channel, so this works after a hang-up too."""
    env = channel.env
    linkedid = await channel.get_full_variable("${CHANNEL(linkedid)}")
    linkedid = linkedid or env.uniqueid or ""
    if not linkedid:
        raise p.AgiProtocolError("the channel has neither a linkedid nor a uniqueid")
    agent = (
        await channel.get_variable(VAR_AGENT)
        or await channel.get_variable("MEMBERNAME")
        or agent_from_interface(await channel.get_variable("MEMBERINTERFACE"))
    )
    queue = await channel.get_variable(VAR_QUEUE) or await channel.get_variable("QUEUENAME")
    return CallInfo(
        linkedid=linkedid,
        uniqueid=env.uniqueid,
        channel=env.channel,
        caller=env.callerid,
        agent_id=agent or None,
        queue=queue or None,
        case_number=await channel.get_variable(VAR_CASE) or None,
        department_code=await channel.get_variable(VAR_DEPT) or None,
        abandoned=await channel.get_variable(VAR_ABANDONED) == "1",
    )


class SurveyRunner(DialogRunner):
    """Drives one :class:`Survey` over one channel; its own actions go to the store."""

    def __init__(
        self,
        ctx: AppContext,
        channel: AgiChannel,
        store: SurveyStore,
        logger: CallLog,
    ) -> None:
        safe = _UNSAFE.sub("-", store.info.linkedid)
        super().__init__(
            channel,
            logger,
            recording=f"{prompts.SOUND_PREFIX}/{RECORDINGS_SUBDIR}/{safe}",
            recordings_dir=ctx.settings.effective_prompts_dir / RECORDINGS_SUBDIR,
            flag_prompt_errors=True,
        )
        self.ctx = ctx
        self.store = store
        self.survey = Survey(SurveyConfig.from_context(ctx))

    async def perform(self, action: object) -> None:
        if isinstance(action, Save):
            await self.store.save(action)
        elif isinstance(action, MarkNotRated):
            await self.store.mark_not_rated()


async def handle(ctx: AppContext, channel: AgiChannel) -> str:
    """The ``survey`` route: run the survey for the caller on this channel; returns the outcome.

    A caller who already hung up (the route was reached from a hang-up handler, or the
    hand-off came too late) hears nothing and is recorded as not rated. A call already rated
    or defaulted is not surveyed again.
    """
    info = await read_call_info(channel)
    logger = CallLog(
        log, {"linkedid": info.linkedid, "uniqueid": info.uniqueid, "agent": info.agent_id}
    )
    store = SurveyStore(ctx, info)
    live = await channel.is_alive()
    existing = await store.begin(live=live)
    if existing is not None:
        logger.info("call already %s; no second survey", existing.status)
        value = (
            str(int(existing.level))
            if existing.status == SurveyStatus.RATED and existing.level
            else NOT_RATED_VALUE
        )
        await _set_quietly(channel, RESULT_VARIABLE, value)
        return f"already_{existing.status}"
    if not live:
        if info.abandoned:
            logger.info("caller left the queue before any agent: abandoned")
            return "abandoned"
        logger.info("caller gone before the survey: not rated")
        return "not_rated_hangup"
    runner = SurveyRunner(ctx, channel, store, logger)
    outcome = await runner.run(runner.survey)
    logger.info("survey finished", extra={"outcome": outcome})
    return outcome


async def record_rejected(ctx: AppContext, channel: AgiChannel) -> None:
    """The server was at capacity: a survey call that got no survey is recorded as not rated
    (rule 1) unless already resolved. Other routes are left alone."""
    if channel.env.route != "survey":
        return
    info = await read_call_info(channel)
    await SurveyStore(ctx, info).begin(live=False)


async def _set_quietly(channel: AgiChannel, name: str, value: Any) -> None:
    try:
        await channel.set_variable(name, str(value))
    except ChannelGone:
        pass
