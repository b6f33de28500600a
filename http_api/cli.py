"""``hotline token create|list|revoke``: manage the API's bearer tokens."""

from __future__ import annotations

import argparse
import sys
from typing import TypeVar

from hotline.clock import format_local
from hotline.settings import Settings
from http_api import tokens
from service.commands import CommandError, with_context
from service.context import AppContext
from storage.audit import CLI_ACTOR, record_audit
from storage.models import ApiToken

T = TypeVar("T")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("token", help="HTTP API bearer tokens")
    tsub = p.add_subparsers(dest="token_command", metavar="ACTION", required=True)

    create = tsub.add_parser("create", help="create a token and print it (shown only once)")
    create.add_argument("--role", required=True, choices=tokens.ROLES)
    create.add_argument("--name", required=True, help="who or what uses it, e.g. 'crm-sync'")
    create.add_argument(
        "--department", action="append", default=[], metavar="CODE",
        help="department code a 'department' token acts for (repeat for several)",
    )
    create.add_argument("--agent-id", help="the 工号 an 'agent' token belongs to")
    create.set_defaults(handler=_create)

    listing = tsub.add_parser("list", help="list tokens (never their secrets)")
    listing.set_defaults(handler=_list)

    revoke = tsub.add_parser("revoke", help="revoke a token by id; it stops working at once")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(handler=_revoke)


def _create(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> tuple[int, str]:
        async with ctx.db.transaction() as session:
            row, secret = await tokens.create_token(
                session, name=args.name, role=args.role,
                departments=args.department, agent_id=args.agent_id,
            )
            await record_audit(
                session, actor=CLI_ACTOR, role="admin", action="token.create",
                subject_type="token", subject_id=row.id,
                details={"name": row.name, "role": row.role, "departments": args.department,
                         "agent_id": args.agent_id},
            )
            return row.id, secret

    try:
        token_id, secret = with_context(settings, work)
    except tokens.TokenError as exc:
        raise CommandError(str(exc)) from exc
    # Only the secret on stdout, so `TOKEN=$(hotline token create ...)` works; the rest is
    # for the human and goes to stderr.
    print(secret)
    print(
        f"created token {token_id} ({args.name!r}, role {args.role}); it is shown only once,"
        " store it now",
        file=sys.stderr,
    )
    return 0


def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> list[ApiToken]:
        async with ctx.db.sessions() as session:
            return await tokens.list_tokens(session)

    rows = with_context(settings, work)
    print(f"{'ID':>5}  {'ROLE':<10}  {'CREATED':<19}  {'REVOKED':<19}  NAME")
    for row in rows:
        revoked = format_local(row.revoked_at, settings.tz) if row.revoked_at else "-"
        created = format_local(row.created_at, settings.tz)
        print(f"{row.id:>5}  {row.role:<10}  {created:<19}  {revoked:<19}  {row.name}")
    return 0


def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> ApiToken | None:
        async with ctx.db.transaction() as session:
            row = await tokens.revoke_token(session, args.id)
            if row is not None:
                await record_audit(
                    session, actor=CLI_ACTOR, role="admin", action="token.revoke",
                    subject_type="token", subject_id=row.id, details={"name": row.name},
                )
            return row

    row = with_context(settings, work)
    if row is None or row.revoked_at is None:
        raise CommandError(f"no token with id {args.id}")
    when = format_local(row.revoked_at, settings.tz)
    print(f"token {row.id} ({row.name!r}) revoked at {when}")
    return 0
