"""``hotline serve``: every worker in one process, each switchable by a ``serve_*`` setting so it
can also run as a separate process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import logging
import signal
from collections.abc import Awaitable, Callable

from hotline import clock, event_loop, logs
from hotline.calendar_coverage import coverage
from hotline.settings import Settings
from service.commands import CommandError
from service.context import AppContext
from service.supervisor import WorkerState, supervise
from storage import migrate

log = logging.getLogger("hotline.service")

Worker = Callable[[AppContext, asyncio.Event], Awaitable[None]]

#: (setting that enables it, "module:function"); each runs until the event is set.
WORKERS: list[tuple[str, str]] = [
    ("serve_http", "http_api.app:run"),
    ("serve_fastagi", "service.agi:run"),
    ("serve_default_ratings", "ivr.defaults:run"),
    ("serve_forwarder", "forwarder.worker:run"),
    ("serve_scheduler", "callback_scheduler.worker:run"),
    ("serve_bad_ratings", "bad_ratings.worker:run"),
    ("serve_reports", "reports.documents:run"),
    ("serve_call_ledger", "ivr.call_ledger:run"),
]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the service (FastAGI, HTTP API, forwarder, scheduler)")
    p.add_argument(
        "--asterisk",
        action="store_true",
        help="also start the sandboxed Asterisk 22 (built on first use) and stop it on exit",
    )
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations at start")
    p.set_defaults(handler=_serve)


def _load(target: str) -> Worker:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


async def serve(settings: Settings, stopping: asyncio.Event | None = None) -> bool:
    """Run the enabled workers until ``stopping`` is set. A worker that fails is restarted with
    backoff (service.supervisor); only one that cannot start at all stops them all. True when
    none had to stop the service."""
    stopping = stopping or asyncio.Event()
    failed = False
    ctx = AppContext.create(settings)
    _warn_if_calendar_short(ctx)
    try:
        tasks = []
        for flag, target in WORKERS:
            if not getattr(settings, flag):
                continue
            name = flag.removeprefix("serve_")
            state = ctx.workers[name] = WorkerState(name)
            worker = _load(target)
            tasks.append(asyncio.create_task(
                supervise(state, functools.partial(worker, ctx, stopping), stopping), name=name
            ))
        log.info("service started", extra={"workers": [t.get_name() for t in tasks]})
        waiter = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        stopping.set()
        failed = any(t is not waiter and t.exception() is not None for t in done)
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await ctx.close()
        log.info("service stopped")
    return not failed


def _warn_if_calendar_short(ctx: AppContext) -> None:
    """A calendar that ends before today's longest deadline counts holidays as working days
    (issue 8 defect 7): say so at start, loudly; readiness reports it too."""
    today = clock.local_today(ctx.settings.tz)
    problem = coverage(ctx.settings, ctx.workdays, today).problem
    if problem:
        log.warning("working-day calendar too short", extra={"problem": problem})


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    logs.configure(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_migrate:
        migrate.upgrade(settings.effective_database_url)
    sandbox = None
    if args.asterisk:
        from ivr.prompts import build_prompts
        from sandbox.instance import AsteriskSandbox

        # The embedded default renders missing prompts itself (site recordings are kept);
        # a production `serve` only checks them.
        build_prompts(settings)
        sandbox = AsteriskSandbox.from_settings(settings)
        sandbox.ensure_built()
        sandbox.start()

    async def _main() -> bool:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        return await serve(settings, stopping)

    try:
        ok = event_loop.run(_main(), settings.event_loop)
    except event_loop.EventLoopUnavailable as exc:
        raise CommandError(str(exc)) from exc
    finally:
        if sandbox is not None:
            with contextlib.suppress(Exception):
                sandbox.stop()
    return 0 if ok else 1
