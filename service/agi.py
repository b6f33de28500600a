"""The ``serve_fastagi`` worker: checks the prompts, then runs the FastAGI server until the
service stops.

Missing prompts stop the worker from starting (and with it ``hotline serve``): GET DATA answers
-1 for a missing sound file exactly as for a hang-up, so a survey without its prompts would
silently record every caller as not rated, and the default-rating job would then turn them all
into 基本满意 — invented votes. Failing loudly at start is the only safe choice; a deployment
whose Asterisk runs on another host (so the files cannot be checked from here) turns the check
off with ``fastagi_check_prompts = false``, and each call still detects a missing prompt
(CHANNEL STATUS after the -1) and reports ``HOTLINE_AGI_ERROR=prompt-missing``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ivr import journal_replay, prompts
from ivr.agi.server import FastAgiServer
from ivr.dialog import RECORDINGS_SUBDIR
from ivr.survey_flow import record_rejected
from service.context import AppContext
from service.supervisor import CannotStart

log = logging.getLogger("hotline.ivr.server")

#: agi://host:port/<route> → "module:function(ctx, channel)": each flow's module is imported
#: when the server starts. A new AGI flow adds its route here.
ROUTES: dict[str, str] = {
    "survey": "ivr.survey_flow:handle",
    "callback": "callback_scheduler.followup_agi:handle",
}


class PromptsMissingError(CannotStart):
    pass


def check_prompts(ctx: AppContext) -> None:
    missing = prompts.missing_prompts(ctx.settings)
    if missing:
        raise PromptsMissingError(
            f"{len(missing)} prompt file(s) missing in {ctx.settings.effective_prompts_dir}: "
            f"{', '.join(missing)}. Run `hotline prompts build` (or drop studio recordings "
            "there); set fastagi_check_prompts = false only if Asterisk runs on another host."
        )


async def run(ctx: AppContext, stopping: asyncio.Event) -> None:
    settings = ctx.settings
    if settings.fastagi_check_prompts:
        check_prompts(ctx)
    with contextlib.suppress(OSError):  # where RECORD FILE writes comments (res_agi won't mkdir)
        (settings.effective_prompts_dir / RECORDINGS_SUBDIR).mkdir(parents=True, exist_ok=True)
    server = FastAgiServer(
        ctx,
        ROUTES,
        host=settings.fastagi_host,
        port=settings.fastagi_port,
        max_calls=settings.fastagi_max_calls,
        read_timeout=settings.fastagi_read_timeout,
        shutdown_grace=settings.fastagi_shutdown_grace,
        on_reject=record_rejected,
        allowed_peers=settings.fastagi_allowed_peers,
        environment_timeout=settings.fastagi_environment_timeout,
    )
    await server.start()
    # beside the server, so a vote journalled during a database outage needs nothing else alive
    replayer = asyncio.create_task(journal_replay.run(ctx, stopping), name="journal_replay")
    try:
        await stopping.wait()
    finally:
        await server.stop()
        replayer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await replayer
        with contextlib.suppress(Exception):  # steps journalled during the drain, if it can
            await journal_replay.replay_once(ctx)
