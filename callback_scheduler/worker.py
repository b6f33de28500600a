"""The ``serve_scheduler`` worker: housekeeping, claiming and dialling, until the service stops.

Every ``callback_poll_interval``: deadlines passed → manual list; campaigns past their end →
finished; attempts orphaned by a dead scheduler → settled; then, while AMI is connected, claim
what may be dialled now (the caps are counted in the database, so several processes can run
this worker against one PostgreSQL) and dial each claim in its own task.

On stop no new call starts; calls under way are followed for a short grace, and any still
going are left active in the database for the orphan check of whichever scheduler runs next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

from ami.client import AmiClient, AmiError
from callback_scheduler import invitations, tasks
from callback_scheduler.claims import claim
from callback_scheduler.dialer import Ami, Dialer
from hotline.clock import utcnow
from service.context import AppContext

log = logging.getLogger("hotline.callback.worker")

STOP_GRACE = 30.0  # seconds calls under way are still followed after a stop
LOGIN_RETRY_MAX = 30.0  # seconds between AMI login attempts while Asterisk is away


def scheduler_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


def make_ami(ctx: AppContext) -> AmiClient:
    s = ctx.settings
    return AmiClient(s.ami_host, s.ami_port, s.ami_username, s.ami_secret, timeout=s.ami_timeout)


async def housekeeping(ctx: AppContext, dialer: Dialer) -> None:
    now = dialer.clock()
    async with ctx.db.transaction() as s:
        expired = await tasks.expire_deadlines(s, now)
        finished = await tasks.finish_campaigns(s, ctx, now)
    settled = await dialer.settle_orphans(now)
    invited = await invitations.invite_due(ctx, now)
    if expired or finished or settled or invited:
        log.info("callback housekeeping", extra={
            "expired": expired, "campaigns_finished": finished, "orphans_settled": settled,
            "invited": invited})


async def run(
    ctx: AppContext,
    stopping: asyncio.Event,
    *,
    ami: Ami | None = None,
    clock: Callable[[], object] | None = None,
) -> None:
    client = ami or make_ami(ctx)
    owned = ami is None
    dialer = Dialer(ctx, client, clock=clock or utcnow)  # type: ignore[arg-type]
    me = scheduler_id()
    calls: set[asyncio.Task[object]] = set()
    stream = client.events("OriginateResponse", "Hangup")
    pump = asyncio.create_task(dialer.pump(stream))
    interval = ctx.settings.callback_poll_interval
    log.info("callback scheduler started", extra={"scheduler_id": me})
    # after a first login the client reconnects by itself; connecting again would open a
    # second session beside it
    logged_in = not owned
    loop = asyncio.get_running_loop()
    next_login, failures = 0.0, 0
    try:
        while not stopping.is_set():
            if not logged_in and loop.time() >= next_login:
                logged_in = await _connect(client, quiet=failures > 0)  # type: ignore[arg-type]
                failures = 0 if logged_in else failures + 1
                next_login = loop.time() + min(LOGIN_RETRY_MAX, interval * 2 ** failures)
            try:
                await housekeeping(ctx, dialer)
                if client.connected:
                    for c in await claim(ctx, scheduler_id=me, now=dialer.clock(),
                                         want=ctx.settings.callback_max_concurrent_calls):
                        task = asyncio.create_task(dialer.dial(c), name=f"callback-{c.attempt_id}")
                        calls.add(task)
                        task.add_done_callback(_reaped(calls))
            except Exception:
                log.exception("callback scheduler round failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval)
    finally:
        if calls:
            log.info("waiting for calls under way", extra={"calls": len(calls)})
            _, still = await asyncio.wait(calls, timeout=STOP_GRACE)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        stream.close()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        if owned:
            await client.close()  # type: ignore[union-attr]
        log.info("callback scheduler stopped")


async def _connect(client: AmiClient, *, quiet: bool) -> bool:
    try:
        await client.connect()
    except AmiError as exc:
        # said once, not every round: the service may run without Asterisk for a while
        log.log(logging.DEBUG if quiet else logging.WARNING,
                "AMI not reachable; no callbacks are dialled until it is",
                extra={"error": str(exc)})
        return False
    log.info("callback scheduler connected to AMI")
    return True


def _reaped(calls: set[asyncio.Task[object]]) -> Callable[[asyncio.Task[object]], None]:
    def done(task: asyncio.Task[object]) -> None:
        calls.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("callback attempt failed", exc_info=task.exception())

    return done
