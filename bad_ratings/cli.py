"""``hotline bad-rating …``: the 差评 loop at the server's console, with the same checks as the
HTTP API. The operator names who acts (``--actor``, recorded in the audit log) and in which
role (``--role``, default admin; ``--department`` limits a department role to its codes), so
a console action is checked and audited like the same call over HTTP."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from bad_ratings import followup, service, store
from bad_ratings.machine import LABELS, Action, Command, Finding, Refused, State
from hotline.clock import format_local, utcnow
from hotline.settings import Settings
from http_api.tokens import ROLES
from service.commands import CommandError, with_context
from service.context import AppContext
from storage.audit import list_audit

_ACTIONS: dict[str, Action] = {
    "assign": Action.ASSIGN, "verify": Action.VERIFY, "rectify": Action.RECTIFY,
    "extend": Action.REQUEST_EXTENSION, "decide-extension": Action.DECIDE_EXTENSION,
    "return": Action.RETURN, "supervise": Action.SUPERVISE, "appeal": Action.APPEAL,
    "review": Action.REVIEW, "reopen": Action.REOPEN,
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bad-rating", help="差评 items: list, show, and every step of the loop")
    bsub = p.add_subparsers(dest="bad_rating_command", metavar="ACTION", required=True)

    def who(q: argparse.ArgumentParser) -> None:
        q.add_argument("--actor", required=True, help="who acts (kept in the audit log)")
        q.add_argument("--role", default="admin", choices=ROLES)
        q.add_argument("--department", action="append", default=[], metavar="CODE",
                       help="with --role department: the codes acted for")
        q.add_argument("--agent-id", help="with --role agent: the 工号")

    ls = bsub.add_parser("list", help="items, filtered")
    ls.add_argument("--state", choices=[s.value for s in State])
    ls.add_argument("--department-code", dest="filter_department")
    ls.add_argument("--unassigned", action="store_true")
    ls.add_argument("--overdue", action="store_true")
    ls.add_argument("--agent")
    ls.set_defaults(handler=_list, actor="cli", role="admin", department=[], agent_id=None)

    show = bsub.add_parser("show", help="one item and its timeline")
    show.add_argument("id", type=int)
    show.set_defaults(handler=_show, actor="cli", role="admin", department=[], agent_id=None)

    audit = bsub.add_parser("audit", help="the audit log, oldest first")
    audit.add_argument("--subject-type")
    audit.add_argument("--subject-id")
    audit.add_argument("--limit", type=int, default=100)
    audit.set_defaults(handler=_audit)

    for name, action in _ACTIONS.items():
        q = bsub.add_parser(name, help=f"{action.value} an item")
        q.add_argument("id", type=int)
        who(q)
        if action in (Action.ASSIGN,):
            q.add_argument("--to", required=True, dest="department_code")
        if action == Action.VERIFY:
            q.add_argument("--finding", required=True, choices=[f.value for f in Finding])
        if action == Action.RECTIFY:
            q.add_argument("--citizen-result", required=True)
        if action == Action.REQUEST_EXTENSION:
            q.add_argument("--due", required=True, type=dt.date.fromisoformat)
        if action == Action.DECIDE_EXTENSION:
            q.add_argument("--approve", action=argparse.BooleanOptionalAction, required=True)
        if action == Action.REVIEW:
            q.add_argument("--decision", required=True, choices=["upheld", "invalid"])
            q.add_argument("--finding", choices=["mistaken", "malicious"])
        q.add_argument("--note", help="explanation, reply or reason (required where the API "
                       "requires one)")
        q.set_defaults(handler=_act, action=action)


def _actor(args: argparse.Namespace) -> service.Actor:
    return service.Actor(name=f"cli:{args.actor}", role=args.role,
                         departments=frozenset(args.department), agent_id=args.agent_id)


def _row(ctx: AppContext, row: Any, now: dt.datetime) -> str:
    status = store.due_status(row, ctx.bad_rating_policy, now)
    due = store.running_due(row)
    return (f"{row.id:>6}  {LABELS[State(row.state)]:<4}  r{row.round}  "
            f"{row.department_code or '(unassigned)':<14}  {row.case_number or row.project_no:<24}"
            f"  due {due.isoformat() if due else '-':<10}  {status.value if status else ''}")


def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> list[str]:
        now = utcnow()
        filters = store.Filters(state=args.state, department=args.filter_department,
                                unassigned=args.unassigned or None,
                                overdue=True if args.overdue else None, agent=args.agent)
        async with ctx.db.sessions() as s:
            rows = await service.list_items(s, _actor(args), filters,
                                            policy=ctx.bad_rating_policy, now=now, limit=1000)
        return [_row(ctx, r, now) for r in rows]

    for line in with_context(settings, work):
        print(line)
    return 0


def _show(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> list[str]:
        async with ctx.db.sessions() as s:
            try:
                row, events = await service.get_with_timeline(s, _actor(args), args.id)
            except service.NotFound as exc:
                raise CommandError(str(exc)) from exc
            lines = [_row(ctx, row, utcnow())]
            if row.citizen_result:
                lines.append(f"        result for the citizen: {row.citizen_result}")
            for e in events:
                when = format_local(e.at, settings.tz)
                lines.append(f"        {when}  r{e.round}  {e.action:<16} {e.actor} ({e.role})"
                             f"  {e.from_state or ''} → {e.to_state or ''}  {e.note or ''}")
            return lines

    for line in with_context(settings, work):
        print(line)
    return 0


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> list[str]:
        async with ctx.db.sessions() as s:
            rows = await list_audit(s, limit=args.limit, subject_type=args.subject_type,
                                    subject_id=args.subject_id)
        return [f"{r.id:>6}  {format_local(r.at, settings.tz)}  {r.actor} ({r.role})  "
                f"{r.action}  {r.subject_type}:{r.subject_id}  "
                f"{json.dumps(r.details, ensure_ascii=False)}" for r in rows]

    for line in with_context(settings, work):
        print(line)
    return 0


def _act(settings: Settings, args: argparse.Namespace) -> int:
    action: Action = args.action
    invalid = None if action != Action.REVIEW else args.decision == "invalid"
    finding = getattr(args, "finding", None)
    cmd = Command(
        action, args.role, note=args.note, finding=Finding(finding) if finding else None,
        citizen_result=getattr(args, "citizen_result", None), due=getattr(args, "due", None),
        approve=getattr(args, "approve", None), invalid=invalid,
        department_code=getattr(args, "department_code", None),
    )

    async def work(ctx: AppContext) -> str:
        try:
            async with ctx.db.transaction() as s:
                row = await service.act(s, _actor(args), args.id, cmd,
                                        policy=ctx.bad_rating_policy, now=utcnow())
                await followup.after_act(s, ctx, row, utcnow())
                return _row(ctx, row, utcnow())
        except (service.NotFound, Refused) as exc:
            raise CommandError(str(exc)) from exc

    print(with_context(settings, work))
    return 0
