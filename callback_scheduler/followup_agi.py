"""The FastAGI route ``callback``: runs :mod:`callback_scheduler.followup` on the answered
回访 / 邀评 call. Registered in service/agi.py's route table; the dialplan context
(``callback_context``, ivr/dialplans/callback.conf) calls ``AGI(${HOTLINE_FASTAGI}/callback)``.

The dialer sets ``CALLBACK_ATTEMPT_ID`` on the channel it originates; everything else (case,
department, number) is read from the database by that id, so nothing personal travels in
channel variables. The call speaks Chinese: the channel's language is zh (the dialplan sets it;
this route sets it too if a site's own context did not), so SAY DIGITS plays the Chinese digits
``hotline prompts build`` renders (ivr/prompts.py). What the citizen answers is stored as it
comes (tasks.record_ivr_result): the dialer's view of the call (Hangup) and the IVR's writes
may arrive in either order.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from callback_scheduler import followup as f
from callback_scheduler.campaigns import add_do_not_call
from callback_scheduler.results import CITIZEN_NEWS, Answer
from callback_scheduler.rules import Outcome
from callback_scheduler.tasks import record_ivr_result
from hotline.channel_vars import CALLBACK_ATTEMPT_ID
from hotline.clock import utcnow
from hotline.privacy import ProtectedNumber
from hotline.statuses import ACTIVE_ATTEMPT_STATUSES
from ivr import prompts
from ivr.agi import protocol as p
from ivr.agi.channel import AgiChannel, CallLog, ChannelGone
from ivr.dialog import DialogRunner
from ivr.spoken import spoken_prompt
from service.context import AppContext
from storage.models import CallbackAttempt, CallbackTask, Case
from storage.ratings import release_rating

log = logging.getLogger("hotline.callback.ivr")

VAR_ATTEMPT = CALLBACK_ATTEMPT_ID
#: a rating saved before its reason is known is held back from the push this long at most
HOLD = dt.timedelta(minutes=10)
#: the cached spoken prompts (ivr/spoken.py): the department's name, the 整改 result
DEPARTMENT_PROMPT_KIND = "callback-dept"
RESULT_PROMPT_KIND = "callback-result"
_NOT_DIGITS = re.compile(r"\D")


@dataclass(frozen=True)
class Target:
    attempt_id: int
    task: CallbackTask
    case: Case | None


async def load_target(
    ctx: AppContext, attempt_id: int, uniqueid: str | None = None
) -> Target | None:
    """The attempt's task and case — only for an attempt this service dialled that is still in
    progress on this very channel (issue 8 defect 8): the dialer gave the channel its uniqueid
    (Originate ChannelId), so a peer naming someone else's attempt, an ended one or a made-up
    one gets nothing, and nothing is stored or put on the do-not-call list for it."""
    async with ctx.db.sessions() as s:
        attempt = await s.get(CallbackAttempt, attempt_id)
        if attempt is None:
            return None
        if attempt.status not in ACTIVE_ATTEMPT_STATUSES or not attempt.channel_id \
                or attempt.channel_id != uniqueid:
            return None
        task = await s.get(CallbackTask, attempt.task_id)
        if task is None:
            return None
        case = await s.get(Case, task.case_id) if task.case_id is not None else None
        return Target(attempt_id, task, case)


async def department_prompt(ctx: AppContext, name: str | None) -> str | None:
    """A prompt speaking the department's name: ``callback-dept-<hash of the name>``
    (ivr/spoken.py: rendered on first use when Asterisk shares this host, otherwise only a
    file already there is used, and the name is left out)."""
    return await spoken_prompt(ctx.settings, DEPARTMENT_PROMPT_KIND, name)


async def result_prompt(ctx: AppContext, case: Case | None) -> str | None:
    """The department's short result for the citizen after 整改, when the case has a 差评 item
    awaiting this 回访 (issue 10: the 回访 tells it before asking); rendered like the
    department's name. Nothing to say, or a failure to find or render it: None, and the 回访
    goes on without it (logged)."""
    if case is None:
        return None
    hook = ctx.db.info.get(CITIZEN_NEWS)
    if hook is None:
        return None
    try:
        async with ctx.db.sessions() as s:
            text = await hook(s, case)
    except Exception as exc:  # the 回访 must not depend on the 差评 loop answering
        log.warning("result for the citizen not read", extra={"error": type(exc).__name__})
        return None
    return await spoken_prompt(ctx.settings, RESULT_PROMPT_KIND, text)


async def ensure_language(channel: AgiChannel) -> None:
    """Make the channel's language zh (or a zh dialect such as zh_CN, which Asterisk looks up
    before falling back to zh) unless it already is: SAY DIGITS speaks the channel's language."""
    language = (channel.env.get("language") or "").lower()
    if language != prompts.LANGUAGE and not language.startswith(f"{prompts.LANGUAGE}_"):
        await channel.set_variable("CHANNEL(language)", prompts.LANGUAGE)


class FollowupRunner(DialogRunner):
    """Drives one :class:`~callback_scheduler.followup.Followup`; its own actions are the case
    number said digit by digit and the database writes."""

    def __init__(self, ctx: AppContext, channel: AgiChannel, target: Target,
                 logger: CallLog) -> None:
        super().__init__(channel, logger)
        self.ctx, self.target = ctx, target

    async def perform(self, action: object) -> None:
        ch = self.channel
        if isinstance(action, f.SayDigits):
            reply = await ch.execute(p.say_digits(action.digits))
            if reply.result == "-1" and not await ch.is_alive():
                raise ChannelGone("hung up while the case number was said")
        elif isinstance(action, f.MarkUnresolved):
            await self._mark_unresolved()
        elif isinstance(action, f.SaveAnswer):
            await self._save(action)
        elif isinstance(action, f.AddDoNotCall):
            await self._do_not_call()

    # ------------------------------------------------------------------ database
    async def _mark_unresolved(self) -> None:
        if self.target.case is None:
            return
        async with self.ctx.db.transaction() as s:
            case = await s.get(Case, self.target.case.id, with_for_update=True)
            if case is not None:
                case.needs_attention = True
        self.log.info("citizen says the problem is not solved: case flagged")

    async def _save(self, action: f.SaveAnswer) -> None:
        now = utcnow()
        answer = Answer(action.level, resolved=action.resolved, reason_codes=action.reason_codes)
        async with self.ctx.db.transaction() as s:
            task = await record_ivr_result(
                s, self.ctx, self.target.attempt_id, answer, Outcome.RATED, now=now,
                hold_until=None if action.final else now + HOLD,
            )
            if action.final and task.result_rating_id is not None:
                await release_rating(s, task.result_rating_id)
        self.log.info("follow-up answer stored", extra={"level": int(action.level),
                                                        "final": action.final})

    async def _do_not_call(self) -> None:
        task, now = self.target.task, utcnow()
        number = ProtectedNumber(task.number_enc, task.number_hash, task.number_masked)
        async with self.ctx.db.transaction() as s:
            await add_do_not_call(s, number, "callback-ivr", now)
            await record_ivr_result(s, self.ctx, self.target.attempt_id, None,
                                    Outcome.DO_NOT_CALL, now=now)
        self.log.info("citizen asked not to be called again: on the do-not-call list")


async def handle(ctx: AppContext, channel: AgiChannel) -> str:
    """The ``callback`` route; returns the follow-up's outcome."""
    raw = await channel.get_variable(VAR_ATTEMPT)
    attempt_id = int(raw) if raw and raw.isdigit() else None
    target = (await load_target(ctx, attempt_id, channel.env.uniqueid)
              if attempt_id is not None else None)
    if target is None:
        log.error("callback call without an attempt in progress on its channel; ignored",
                  extra={"attempt": (raw or "")[:20]})
        return "unknown_attempt"
    logger = CallLog(log, {"attempt_id": target.attempt_id, "task_id": target.task.id})
    if not await channel.is_alive():
        logger.info("citizen gone before the follow-up started")
        return "hangup"
    await ensure_language(channel)
    case = target.case
    s = ctx.settings
    config = f.FollowupConfig(
        keypad=ctx.keypad,
        reasons={r.key: r.code for r in s.survey_reasons},
        invite=case is None,
        case_digits=_NOT_DIGITS.sub("", case.case_number) if case else "",
        department_prompt=await department_prompt(ctx, case.department_name if case else None),
        result_prompt=await result_prompt(ctx, case),
        max_tries=s.survey_max_tries,
        digit_timeout_ms=s.survey_digit_timeout_ms,
    )
    outcome = await FollowupRunner(ctx, channel, target, logger).run(f.Followup(config))
    logger.info("follow-up finished", extra={"outcome": outcome})
    return outcome

