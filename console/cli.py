"""``hotline user create|list|reset-password``: console users from the terminal (the
admin's way back in when no admin can log in)."""

from __future__ import annotations

import argparse

from console import passwords, sessions, users
from hotline.clock import format_local
from hotline.settings import Settings
from http_api.tokens import ROLES
from service.commands import CommandError, with_context
from service.context import AppContext
from storage.audit import CLI_ACTOR, record_audit
from storage.models import ConsoleUser


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("user", help="web console users")
    usub = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    create = usub.add_parser("create", help="create a user; prints a random password once")
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--display-name")
    create.add_argument("--department", action="append", default=[],
                        help="department code the user is bound to (repeatable)")
    create.add_argument("--agent", help="the agent's 工号")
    create.set_defaults(handler=_create)
    usub.add_parser("list", help="list users").set_defaults(handler=_list)
    reset = usub.add_parser("reset-password", help="set a new random password, print it once, "
                            "end the user's sessions and lift a lock-out")
    reset.add_argument("name")
    reset.set_defaults(handler=_reset)


def _create(settings: Settings, args: argparse.Namespace) -> int:
    password = passwords.generate_password()

    async def work(ctx: AppContext) -> None:
        async with ctx.db.transaction() as s:
            user = await users.create_user(
                s, username=args.name, password=password, role=args.role,
                display_name=args.display_name, departments=args.department,
                agent_id=args.agent)
            await record_audit(s, actor=CLI_ACTOR, role="admin", action="user.create",
                               subject_type="console_user", subject_id=user.id, details={
                                   "username": user.username, "role": user.role,
                                   "departments": user.departments,
                                   "agent_id": user.agent_id})

    try:
        with_context(settings, work)
    except users.UserError as exc:
        raise CommandError(str(exc)) from exc
    print(f"user {args.name} ({args.role}) created; password (shown only now): {password}")
    return 0


def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> list[ConsoleUser]:
        async with ctx.db.sessions() as s:
            return await users.list_users(s)

    print(f"{'ID':>4}  {'USER':<16} {'ROLE':<11} {'CREATED':<19}  STATE  DEPARTMENTS")
    for u in with_context(settings, work):
        state = "off" if u.disabled_at else "lock" if u.locked_until else "ok"
        print(f"{u.id:>4}  {u.username:<16} {u.role:<11} "
              f"{format_local(u.created_at, settings.tz):<19}  {state:<5}  "
              f"{','.join(u.departments or []) or '-'}")
    return 0


def _reset(settings: Settings, args: argparse.Namespace) -> int:
    password = passwords.generate_password()

    async def work(ctx: AppContext) -> bool:
        async with ctx.db.transaction() as s:
            user = await users.find_user(s, args.name)
            if user is None:
                return False
            await users.set_password(s, user, password)
            await sessions.end_all_for(s, user.id)
            await record_audit(s, actor=CLI_ACTOR, role="admin", action="user.reset_password",
                               subject_type="console_user", subject_id=user.id,
                               details={"username": user.username})
            return True

    if not with_context(settings, work):
        raise CommandError(f"no user {args.name!r}")
    print(f"new password for {args.name} (shown only now): {password}")
    return 0
