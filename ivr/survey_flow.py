"""The survey over AGI: reads who the call is, plays the menu, then performs the state
machine's actions (:mod:`ivr.survey`) as AGI commands and feeds back what the caller did.

Action → AGI command:

The loop and the shared actions are :class:`ivr.dialog.DialogRunner`'s:

* ``Collect``: ONE GET DATA (it listens while playing; a menu of several prompts is one
  composite sound, ivr/prompts.py) with the digit timeout, 1 digit.
* ``Play``: STREAM FILE without escape digits.
* ``Record``: RECORD FILE ``hotline/recordings/<linkedid>`` wav, ``#`` ends, BEEP, ``s=``.
* ``SetVariable``: SET VARIABLE.  ``Save`` / ``MarkNotRated``: the database (survey_store).
* ``Finish``: return; the server closes the socket and the dialplan goes on.

One round trip before the menu (issue 13): the call's variables (one GET FULL VARIABLE). The
channel's state is not asked: a menu refused as on a dead channel (511) is a caller gone
before the survey. The call's row is written once the caller answered the menu (or hung up,
or the session was lost), and the first save (or "not rated") waits for that write, so every
step lands in order and rule 1 holds. A call found already rated or defaulted is only known
once the row's write is back: the survey stops before its first save without changing
anything. Such a caller (a re-entry of a rated call, rare) hears the menu; that is the price
of never making every other caller wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from hotline import channel_vars as cv
from ivr import prompts
from ivr.agi import protocol as p
from ivr.agi.channel import AgiChannel, AgiCommandError, CallLog, ChannelGone
from ivr.dialog import RECORDINGS_SUBDIR, DialogRunner
from ivr.survey import (
    NOT_RATED_VALUE,
    RESULT_VARIABLE,
    MarkNotRated,
    Save,
    Survey,
    SurveyConfig,
)
from ivr.survey_store import CallInfo, Existing, SurveyStore
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


#: what the survey reads from the channel, in ONE ``GET FULL VARIABLE`` (issue 13: the menu
#: starts after this one round trip, instead of up to ten)
CALL_EXPRESSIONS = (
    "${CHANNEL(linkedid)}",
    f"${{{VAR_AGENT}}}",
    "${MEMBERNAME}",
    "${MEMBERINTERFACE}",
    f"${{{VAR_QUEUE}}}",
    "${QUEUENAME}",
    f"${{{VAR_CASE}}}",
    f"${{{VAR_DEPT}}}",
    f"${{{VAR_ABANDONED}}}",
)


def call_info_from(env: p.AgiEnvironment, values: dict[str, str]) -> CallInfo:
    """The call's identity from the channel's values (keyed by expression; missing ones are
    unknown). No linkedid read: the caller's channel's uniqueid (it is the call's first)."""
    def get(expression: str) -> str | None:
        return values.get(expression) or None

    linkedid = get("${CHANNEL(linkedid)}") or env.uniqueid or ""
    if not linkedid:
        raise p.AgiProtocolError("the channel has neither a linkedid nor a uniqueid")
    agent = (
        get(f"${{{VAR_AGENT}}}")
        or get("${MEMBERNAME}")
        or agent_from_interface(get("${MEMBERINTERFACE}"))
    )
    return CallInfo(
        linkedid=linkedid,
        uniqueid=env.uniqueid,
        channel=env.channel,
        caller=env.callerid,
        agent_id=agent or None,
        queue=get(f"${{{VAR_QUEUE}}}") or get("${QUEUENAME}"),
        case_number=get(f"${{{VAR_CASE}}}"),
        department_code=get(f"${{{VAR_DEPT}}}"),
        abandoned=values.get(f"${{{VAR_ABANDONED}}}") == "1",
    )


async def read_call_info(channel: AgiChannel) -> CallInfo:
    """Everything that identifies the call, in one round trip. There is no agi_linkedid: read
    CHANNEL(linkedid). All of it is permitted on a dead channel, so it works after a hang-up.

    An Asterisk whose reply cannot be split (no func_uri) is read one expression at a time;
    if the connection is lost during that, what was read so far is kept, so a call whose
    linkedid is known still gets its row (issue 8: hang-ups while the variables are read)."""
    values: dict[str, str] = {}
    try:
        values = dict(zip(CALL_EXPRESSIONS,
                          await channel.get_full_variables(list(CALL_EXPRESSIONS)), strict=True))
    except p.AgiProtocolError:
        channel.log.info("joined variable read not understood; reading one by one")
        try:
            for expression in CALL_EXPRESSIONS:
                values[expression] = await channel.get_full_variable(expression)
        except ChannelGone:
            if not values:
                raise
    return call_info_from(channel.env, values)


class AlreadyResolved(Exception):
    """The call-row write found the call already rated or defaulted: no second survey."""

    def __init__(self, existing: Existing) -> None:
        super().__init__(existing.status)
        self.existing = existing


#: call-row writes still running after their survey ended (a strong reference until done)
_begins: set[asyncio.Task[Existing | None]] = set()


class SurveyRunner(DialogRunner):
    """Drives one :class:`Survey` over one channel; its own actions go to the store."""

    def __init__(
        self,
        ctx: AppContext,
        channel: AgiChannel,
        store: SurveyStore,
        logger: CallLog,
        begun: asyncio.Future[Existing | None] | None = None,
    ) -> None:
        """Performs the survey's actions from its first event on (:func:`handle` played the
        first menu before the call was known)."""
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
        #: the call-row write, started once the call is known; every database step waits for it
        self.begun = begun

    async def begin_done(self) -> None:
        """Wait for the call row; a call already resolved stops the survey here."""
        if self.begun is not None:
            existing = await self.begun
            if existing is not None:
                raise AlreadyResolved(existing)

    async def perform(self, action: object) -> None:
        if isinstance(action, Save | MarkNotRated):
            await self.begin_done()
        if isinstance(action, Save):
            await self.store.save(action)
        elif isinstance(action, MarkNotRated):
            await self.store.mark_not_rated()


async def handle(ctx: AppContext, channel: AgiChannel) -> str:
    """The ``survey`` route: run the survey for the caller on this channel; returns the outcome.

    One round trip before the menu (issue 13), the call's variables, and nothing else: not the
    channel's state (a menu refused as on a dead channel tells it) and not the database (the
    call's row is written once the caller answered the menu). Under a burst every round trip
    before the menu is a turn of a busy event loop while the caller may already press, and DTMF
    sent before the menu listens is lost (DOMAIN.md).

    A caller who already hung up (the route was reached from a hang-up handler, or the caller
    left as it started) hears nothing and is recorded as not rated (rule 1). A call already
    rated or defaulted is not surveyed again.
    """
    info = await read_call_info(channel)
    logger = CallLog(
        log, {"linkedid": info.linkedid, "uniqueid": info.uniqueid, "agent": info.agent_id}
    )
    store = SurveyStore(ctx, info)
    survey = Survey(SurveyConfig.from_context(ctx))
    runner = SurveyRunner(ctx, channel, store, logger)
    try:
        first = await runner.opening(survey)
    except AgiCommandError:  # as below: the call is still recorded (rule 1)
        with contextlib.suppress(Exception):
            await store.begin(live=True)
            await store.mark_not_rated()
        raise
    except asyncio.CancelledError:  # shutdown past its grace: the call's row, as for any step
        with contextlib.suppress(Exception):
            await asyncio.shield(store.begin(live=True))
        raise
    if channel.dead_on_arrival:
        existing = await store.begin(live=False)
        if existing is not None:
            return await _already(channel, logger, existing)
        if info.abandoned:
            logger.info("caller left the queue before any agent: abandoned")
            return "abandoned"
        logger.info("caller gone before the survey: not rated")
        return "not_rated_hangup"
    # the first save waits for the row (rule 1: every step lands, in order)
    begun = asyncio.ensure_future(store.begin(live=True))
    _begins.add(begun)
    begun.add_done_callback(_begins.discard)
    runner.begun = begun
    try:
        outcome = await runner.resume(survey, survey.handle(first) if first is not None else [])
    except AlreadyResolved as already:
        return await _already(channel, logger, already.existing)
    except AgiCommandError:
        # Asterisk refused a command (a bug, or a peer that is not Asterisk): the call is still
        # recorded (rule 1); conditional, so a level already saved stays
        with contextlib.suppress(Exception):
            await runner.begin_done()
            await store.mark_not_rated()
        raise
    finally:
        # whatever ended the survey (a lost connection, a protocol error), the call's row is
        # written or journalled before the handler returns (rule 1); a cancel leaves it running
        if not begun.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(begun)
    logger.info("survey finished", extra={"outcome": outcome})
    return outcome


async def _already(channel: AgiChannel, logger: CallLog, existing: Existing) -> str:
    logger.info("call already %s; no second survey", existing.status)
    value = (
        str(int(existing.level))
        if existing.status == SurveyStatus.RATED and existing.level
        else NOT_RATED_VALUE
    )
    await _set_quietly(channel, RESULT_VARIABLE, value)
    return f"already_{existing.status}"


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
