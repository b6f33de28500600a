"""The 回访 follow-up IVR over a simulated channel: a citizen who also hears SAY DIGITS, a claimed
call, and the AGI session of it."""

from __future__ import annotations

from pathlib import Path

from callback_scheduler.claims import Claim, claim
from callback_scheduler.followup_agi import VAR_ATTEMPT, handle
from ivr.agi.simulated import SimulatedCaller, environment_lines, memory_channel
from service.context import AppContext
from storage.models import CallbackAttempt
from tests.conftest import make_settings
from tests.helpers.callbacks import NOW, closed_bad_case


class Citizen(SimulatedCaller):
    """SimulatedCaller plus SAY DIGITS, which the survey never uses."""

    def __call__(self, line: str) -> list[str] | None:
        if line.upper().startswith("SAY DIGITS"):
            self.commands.append(line.split())
            return ["511 dead"] if self.hung_up else ["200 result=0"]
        return super().__call__(line)


async def setup_call(tmp_path: Path, url: str, case_number: str) -> tuple[AppContext, Claim]:
    ctx = AppContext.create(make_settings(tmp_path, database_url=url,
                                          fastagi_check_prompts=False))
    await closed_bad_case(ctx, case_number)
    [c] = await claim(ctx, scheduler_id="t", now=NOW, want=1)
    return ctx, c


async def agi(ctx: AppContext, citizen: Citizen, language: str = "en") -> str:
    # the channel the dialer originated: its uniqueid is the attempt's ChannelId
    uniqueid = "1700000000.7"
    if VAR_ATTEMPT in citizen.variables:
        async with ctx.db.sessions() as s:
            attempt = await s.get(CallbackAttempt, int(citizen.variables[VAR_ATTEMPT]))
        assert attempt is not None and attempt.channel_id is not None
        uniqueid = attempt.channel_id
    env = environment_lines(route="callback", uniqueid=uniqueid, extra={"language": language})
    channel, _ = memory_channel(citizen, env)
    await channel.read_environment()
    return await handle(ctx, channel)
