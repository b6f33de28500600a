"""The classic AGI entry (ivr/agi_scripts/survey.py) as Asterisk runs it: a child process
talking AGI on stdin/stdout, told of the hang-up by SIGHUP; same flow, same database."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable

from sqlalchemy import select

from hotline.settings import PROJECT_ROOT
from ivr.agi.simulated import SimulatedCaller, environment_lines
from service.context import AppContext
from storage.models import Call, Rating, SurveyStatus


async def run_script(
    ctx: AppContext, respond: Callable[[str, int], list[str] | None]
) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({
        "HOTLINE_CONFIG": os.devnull,
        "HOTLINE_DATA_DIR": str(ctx.settings.data_dir),
        "HOTLINE_DATABASE_URL": ctx.settings.effective_database_url,
        "HOTLINE_LOG_FORMAT": "text",
    })
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr.agi_scripts.survey",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env, cwd=PROJECT_ROOT,
    )
    assert proc.stdin and proc.stdout and proc.stderr
    proc.stdin.write("".join(f"{x}\n" for x in environment_lines(route=None)).encode())
    await proc.stdin.drain()
    async with asyncio.timeout(60):
        while raw := await proc.stdout.readline():
            reply = respond(raw.decode().rstrip("\n"), proc.pid)
            if reply is None:
                break
            proc.stdin.write("".join(f"{x}\n" for x in reply).encode())
            await proc.stdin.drain()
        proc.stdin.close()
        stderr = (await proc.stderr.read()).decode()
        return await proc.wait(), stderr


async def test_classic_agi_rates_the_call(ctx: AppContext) -> None:
    caller = SimulatedCaller(keys=["2"], variables={"HOTLINE_AGENT": "A9"})
    code, stderr = await run_script(ctx, lambda line, _pid: caller(line))
    assert code == 0, stderr
    assert "13800138000" not in stderr  # the caller's number is never logged in full
    assert caller.variables["SURVEY_RESULT"] == "2"
    async with ctx.db.sessions() as s:
        rating = await s.scalar(select(Rating))
    assert rating is not None and (rating.level, rating.agent_id) == (2, "A9")


async def test_classic_agi_sighup_is_a_hangup(ctx: AppContext) -> None:
    """Classic AGI learns of the hang-up by SIGHUP (which must not kill it mid-save)."""
    caller = SimulatedCaller(keys=["5"])

    def respond(line: str, pid: int) -> list[str] | None:
        if line.startswith("GET DATA") and "survey-reasons" in line:
            os.kill(pid, signal.SIGHUP)
            caller.hung_up = True
            return ["200 result=-1"]
        return caller(line)

    code, stderr = await run_script(ctx, respond)
    assert code == 0, stderr
    async with ctx.db.sessions() as s:
        call = await s.scalar(select(Call))
        rating = await s.scalar(select(Rating))
    assert call is not None and call.survey_status == SurveyStatus.RATED
    assert rating is not None and rating.level == 5  # the level survived the hang-up
