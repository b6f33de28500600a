"""``hotline forwarder run|keygen|preview`` and ``hotline outbox status|dead|retry``."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import TypeVar

from hotline import event_loop, logs
from hotline.clock import format_local
from hotline.settings import Settings
from service.commands import CommandError, with_context
from service.context import AppContext
from storage import outbox
from storage.audit import CLI_ACTOR
from storage.models import OutboxEntry

from . import lookup, sm2
from .profile import ProfileError
from .profile import load as load_profile
from .record import Extra, build_record, idempotency_key

T = TypeVar("T")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    fwd = sub.add_parser("forwarder", help="push ratings to the provincial aggregation system")
    fsub = fwd.add_subparsers(dest="forwarder_command", metavar="ACTION", required=True)
    fsub.add_parser("run", help="run the forwarder alone (without `hotline serve`)").set_defaults(
        handler=_run
    )
    fsub.add_parser(
        "keygen", help="make an SM2 key pair for the sm2_envelope transport"
    ).set_defaults(handler=_keygen)
    preview = fsub.add_parser(
        "preview", help="print the record an outbox entry becomes (identity fields left out)"
    )
    preview.add_argument("id", type=int)
    preview.set_defaults(handler=_preview)

    box = sub.add_parser("outbox", help="the delivery queue to the aggregation system")
    bsub = box.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    status = bsub.add_parser("status", help="pending, in-flight, delivered, dead counts")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)
    dead = bsub.add_parser("dead", help="list dead-lettered entries with the receiver's reason")
    dead.add_argument("--limit", type=int, default=100)
    dead.set_defaults(handler=_dead)
    retry = bsub.add_parser("retry", help="re-queue dead-lettered entries after a fix")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="outbox entry ids")
    retry.add_argument("--all-dead", action="store_true", help="every dead-lettered entry")
    retry.set_defaults(handler=_retry)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from .worker import run

    logs.configure(settings.log_level, settings.log_format)

    async def _main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        ctx = AppContext.create(settings)
        try:
            await run(ctx, stopping)
        finally:
            await ctx.close()

    try:
        event_loop.run(_main(), settings.event_loop)
    except (ProfileError, event_loop.EventLoopUnavailable) as exc:
        raise CommandError(str(exc)) from exc
    return 0


def _keygen(settings: Settings, args: argparse.Namespace) -> int:
    private, public = sm2.generate_keypair()
    print("# keep the private key secret: setting forwarder_sm2_private_key")
    print(f"private_key = {private}")
    print("# give the public key to the province (with the 04 prefix if they ask for it)")
    print(f"public_key  = 04{public}")
    return 0


def _preview(settings: Settings, args: argparse.Namespace) -> int:
    try:
        profile = load_profile(settings)
    except ProfileError as exc:
        raise CommandError(str(exc)) from exc

    async def work(ctx: AppContext) -> dict[str, object]:
        async with ctx.db.sessions() as session:
            entry = await session.get(OutboxEntry, args.id)
        if entry is None:
            raise CommandError(f"no outbox entry {args.id}")
        extra = (await lookup.extras(ctx.db, None, [entry.payload], with_identity=False)).get(
            entry.payload["rating_id"]
        )
        record = build_record(
            entry.payload, profile, extra or Extra(),
            fallback_reason=settings.bad_rating_fallback_reason, with_identity=False,
        )
        return {"key": idempotency_key(entry.payload, profile), "status": entry.status,
                "record": record}

    print(json.dumps(with_context(settings, work), ensure_ascii=False, indent=2))
    return 0


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _status(settings: Settings, args: argparse.Namespace) -> int:
    figures = with_context(settings, lambda ctx: outbox.counts(ctx.db))
    if args.json:
        print(json.dumps(figures.as_dict()))
        return 0
    print(f"pending     {figures.pending}  (held while being completed: {figures.held})")
    print(f"in flight   {figures.inflight}")
    print(f"delivered   {figures.delivered}")
    print(f"dead-letter {figures.dead}")
    print(f"oldest pending: {_age(figures.oldest_pending_age_seconds)}")
    return 0


def _dead(settings: Settings, args: argparse.Namespace) -> int:
    entries = with_context(settings, lambda ctx: outbox.dead_entries(ctx.db, args.limit))
    if not entries:
        print("no dead-lettered entries")
        return 0
    for e in entries:
        print(f"{e.id}\t{e.project_no}:{e.assess_number}\t{e.event}\t"
              f"attempts={e.attempts}\t{format_local(e.created_at)}\t{e.last_error or ''}")
    return 0


def _retry(settings: Settings, args: argparse.Namespace) -> int:
    if bool(args.ids) == args.all_dead:
        raise CommandError("give outbox entry ids or --all-dead (one of the two)")
    if args.all_dead:
        count = with_context(
            settings, lambda ctx: outbox.retry_all_dead(ctx.db, actor=CLI_ACTOR, role="admin")
        )
        print(f"re-queued {count} dead-lettered entries")
        return 0
    result = with_context(
        settings, lambda ctx: outbox.retry(ctx.db, args.ids, actor=CLI_ACTOR, role="admin")
    )
    if result.requeued:
        print("re-queued " + " ".join(map(str, result.requeued)))
    for entry_id, status in result.skipped.items():
        print(f"{entry_id}: not re-queued, it is {status}")
    for entry_id in result.not_found:
        print(f"{entry_id}: no such outbox entry")
    return 0 if not (result.skipped or result.not_found) else 1
