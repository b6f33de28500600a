"""``hotline serve``: every worker in one process, each switchable by a ``serve_*`` setting so it
can also run as a separate process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Awaitable, Callable

from hotline import logs
from hotline.settings import Settings
from service.context import AppContext
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
    """Run the enabled workers until ``stopping`` is set or one of them fails (then all stop:
    a service missing a worker must not look healthy). True when no worker failed."""
    stopping = stopping or asyncio.Event()
    failed = False
    ctx = AppContext.create(settings)
    try:
        tasks = [
            asyncio.create_task(_load(target)(ctx, stopping), name=flag.removeprefix("serve_"))
            for flag, target in WORKERS
            if getattr(settings, flag)
        ]
        log.info("service started", extra={"workers": [t.get_name() for t in tasks]})
        waiter = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        stopping.set()
        for task in done:
            if task is not waiter and task.exception() is not None:
                failed = True
                log.error(
                    "worker failed", exc_info=task.exception(), extra={"worker": task.get_name()}
                )
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await ctx.close()
        log.info("service stopped")
    return not failed


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
        ok = asyncio.run(_main())
    finally:
        if sandbox is not None:
            with contextlib.suppress(Exception):
                sandbox.stop()
    return 0 if ok else 1
