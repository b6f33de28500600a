"""``hotline campaign ...`` and ``hotline callback ...``: campaigns and the manual list for a
supervisor at the server's console. Numbers are shown masked, except by ``callback reveal``
(one task, logged) for a manual call (DOMAIN.md rule 8)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from callback_scheduler import campaigns as camp
from callback_scheduler import csvimport, tasks
from callback_scheduler.results import Answer
from callback_scheduler.rules import CampaignKind
from hotline.clock import format_local, utcnow
from hotline.levels import Level
from hotline.progress import Progress, bar
from hotline.settings import Settings
from service.commands import CommandError, with_context
from service.context import AppContext
from storage.audit import CLI_ACTOR, record_audit

T = TypeVar("T")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _register_campaign(sub)
    _register_callback(sub)


def _register_campaign(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("campaign", help="回访 / 邀评 campaigns")
    cs = p.add_subparsers(dest="campaign_command", metavar="ACTION", required=True)

    create = cs.add_parser("create", help="create a draft campaign, optionally filled by a "
                           "filter or a CSV file")
    create.add_argument("--name", required=True)
    create.add_argument("--kind", required=True, choices=[k.value for k in CampaignKind])
    create.add_argument("--priority", type=int, default=0)
    rules = create.add_argument_group("rules (default: the callback_* settings)")
    rules.add_argument("--window", action="append", metavar="HH:MM-HH:MM",
                       help="a daily call window, Beijing time; repeat for several")
    rules.add_argument("--any-day", action="store_true",
                       help="call on weekends and holidays too (default: working days only)")
    rules.add_argument("--start-date", metavar="YYYY-MM-DD")
    rules.add_argument("--end-date", metavar="YYYY-MM-DD")
    rules.add_argument("--max-attempts", type=int)
    rules.add_argument("--retry", action="append", metavar="OUTCOME=MINUTES",
                       help="retry delay for an outcome (busy, no_answer, congestion, failed, "
                       "answered_no_rating, unknown); repeat")
    rules.add_argument("--calls-per-minute", type=int)
    rules.add_argument("--max-concurrent", type=int)
    rules.add_argument("--caller-id")
    rules.add_argument("--trunk")
    rules.add_argument("--deadline-working-days", type=int)
    flt = create.add_argument_group("fill by filter")
    flt.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD",
                     help="cases closed (or, with --not-rated, calls made) on or after")
    flt.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    flt.add_argument("--department", metavar="CODE")
    flt.add_argument("--levels", metavar="4,5", help="cases rated at these levels")
    flt.add_argument("--not-rated", action="store_true", help="calls not rated (电话邀评)")
    create.add_argument("--csv", type=Path, help="fill from a CSV file (see `campaign import`)")
    create.add_argument("--start", action="store_true", help="start it at once")
    create.add_argument("--by", default="cli", help="who creates it (kept with the campaign)")
    create.set_defaults(handler=_create)

    cs.add_parser("list", help="all campaigns with their progress").set_defaults(handler=_list)
    for action, text in (("start", "start or resume"), ("pause", "pause: no new dials from now"),
                         ("cancel", "cancel: open tasks are dropped, calls under way end")):
        a = cs.add_parser(action, help=text)
        a.add_argument("id", type=int)
        a.set_defaults(handler=_change, action=action)
    status = cs.add_parser("status", help="one campaign's progress and 回访率")
    status.add_argument("id", type=int)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)
    imp = cs.add_parser(
        "import", help="add tasks from a CSV file: columns case_number or linkedid, and "
        "optionally number; any bad row rejects the whole file")
    imp.add_argument("id", type=int)
    imp.add_argument("file", type=Path)
    imp.set_defaults(handler=_import)


def _register_callback(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("callback", help="the manual follow-up list and do-not-call list")
    cs = p.add_subparsers(dest="callback_command", metavar="ACTION", required=True)
    ml = cs.add_parser("manual-list", help="citizens the dialer could not reach")
    ml.add_argument("--campaign", type=int)
    ml.add_argument("--json", action="store_true")
    ml.set_defaults(handler=_manual_list)
    rec = cs.add_parser("record-manual", help="record the result of a manual call")
    rec.add_argument("task", type=int)
    reached = rec.add_mutually_exclusive_group(required=True)
    reached.add_argument("--reached", action="store_true", dest="reached", default=None)
    reached.add_argument("--not-reached", action="store_false", dest="reached")
    rec.add_argument("--level", type=int, choices=range(1, 6),
                     help="1 非常满意 … 5 非常不满意")
    solved = rec.add_mutually_exclusive_group()
    solved.add_argument("--resolved", action="store_true", default=None, dest="resolved")
    solved.add_argument("--unresolved", action="store_false", dest="resolved")
    rec.add_argument("--reason", action="append", default=[], metavar="CODE",
                     help="evalDetail reason code of a 差评; repeat")
    rec.add_argument("--comment", help="what the citizen said")
    rec.add_argument("--note", help="a note for the file")
    rec.add_argument("--by", required=True, help="who made the call")
    rec.set_defaults(handler=_record_manual)
    rev = cs.add_parser("reveal", help="show one task's number, for a manual call (logged)")
    rev.add_argument("task", type=int)
    rev.add_argument("--by", required=True, help="who asks")
    rev.add_argument("--reason", required=True, help="why the number is needed (audited)")
    rev.set_defaults(handler=_reveal)
    dnc = cs.add_parser("do-not-call", help="put a number on the do-not-call list")
    dnc.add_argument("number")
    dnc.set_defaults(handler=_do_not_call)


# ------------------------------------------------------------------------- plumbing
def _run(settings: Settings, work: Callable[[AppContext], Awaitable[T]]) -> T:
    """The campaign rules' refusals become plain messages."""
    try:
        return with_context(settings, work)
    except (camp.CampaignError, tasks.ManualError, csvimport.ImportRejected) as exc:
        raise CommandError(str(exc)) from exc
    except (camp.CampaignNotFound, LookupError) as exc:
        raise CommandError(str(exc.args[0] if exc.args else exc)) from exc


def _rules(args: argparse.Namespace) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    simple = {
        "windows": args.window, "start_date": args.start_date, "end_date": args.end_date,
        "max_attempts": args.max_attempts, "calls_per_minute": args.calls_per_minute,
        "max_concurrent": args.max_concurrent, "caller_id": args.caller_id,
        "trunk": args.trunk, "deadline_working_days": args.deadline_working_days,
    }
    rules.update({k: v for k, v in simple.items() if v is not None})
    if args.any_day:
        rules["working_days_only"] = False
    if args.retry:
        retry = {}
        for item in args.retry:
            outcome, _, minutes = item.partition("=")
            if not minutes.isdigit():
                raise CommandError(f"--retry {item!r}: write OUTCOME=MINUTES")
            retry[outcome.strip()] = int(minutes)
        rules["retry_minutes"] = retry
    return rules


def _filter(args: argparse.Namespace) -> camp.CampaignFilter | None:
    given = any([args.date_from, args.date_to, args.department, args.levels, args.not_rated])
    if not given:
        return None
    try:
        levels = [int(x) for x in args.levels.split(",")] if args.levels else None
        return camp.CampaignFilter(
            date_from=args.date_from, date_to=args.date_to, department_code=args.department,
            levels=levels, not_rated=args.not_rated,
        )
    except (ValueError, ValidationError) as exc:
        raise CommandError(f"filter: {exc}") from exc


def _print_added(result: camp.AddResult) -> None:
    print(f"added {result.added} task(s); already in the campaign {result.already_in_campaign}, "
          f"without a number {result.no_number}, on the do-not-call list {result.do_not_call}, "
          f"already open in a campaign {result.already_open}")


def _print_summary(s: camp.Summary) -> None:
    rate = "-" if s.callback_rate is None else f"{s.callback_rate:.1%}"
    tasks_text = ", ".join(f"{k} {v}" for k, v in sorted(s.tasks.items())) or "no tasks"
    print(f"#{s.campaign_id} {s.name} [{s.kind}] {s.status}  priority {s.priority}")
    print(f"  tasks: {tasks_text}; reached {s.reached}, rated {s.rated}, 回访率 {rate}")
    open_ = s.tasks.get("pending", 0) + s.tasks.get("dialing", 0)
    print(f"  progress {bar(s.total - open_, s.total)}")
    if s.outcomes:
        print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(s.outcomes.items())))


def _summary_json(s: camp.Summary) -> dict[str, Any]:
    return {"id": s.campaign_id, "name": s.name, "kind": s.kind, "status": s.status,
            "priority": s.priority, "rules": s.rules, "tasks": s.tasks, "outcomes": s.outcomes,
            "total": s.total, "reached": s.reached, "rated": s.rated,
            "callback_rate": s.callback_rate}


async def _audit(s: AsyncSession, action: str, subject_type: str, subject_id: int | None,
                 details: dict[str, Any]) -> None:
    """A supervisor's decision at the console is audited like the API's (same actions), in
    the transaction of the change."""
    await record_audit(s, actor=CLI_ACTOR, role="admin", action=action,
                       subject_type=subject_type, subject_id=subject_id, details=details)


# ------------------------------------------------------------------------- commands
def _create(settings: Settings, args: argparse.Namespace) -> int:
    rules, flt = _rules(args), _filter(args)
    data = args.csv.read_bytes() if args.csv else None

    async def work(ctx: AppContext) -> int:
        now = utcnow()
        async with ctx.db.transaction() as s:
            c = await camp.create_campaign(s, ctx, name=args.name, kind=args.kind, rules=rules,
                                           created_by=args.by, now=now, priority=args.priority)
            print(f"campaign #{c.id} created ({c.status})")
            added = None
            if flt is not None:
                added = await camp.add_by_filter(s, ctx, c.id, flt, now)
                _print_added(added)
            await _audit(s, "campaign.create", "campaign", c.id, {
                "name": c.name, "kind": c.kind, "priority": c.priority, "by": args.by,
                "added": None if added is None else added.added})
            if data is not None:
                imported = await camp.import_csv(s, ctx, c.id, data, now)
                _print_added(imported)
                await _audit(s, "campaign.import", "campaign", c.id,
                             {"bytes": len(data), "added": imported.added})
            if args.start:
                await camp.change_status(s, ctx, c.id, "start", now)
                await _audit(s, "campaign.start", "campaign", c.id, {})
                print(f"campaign #{c.id} running")
            return 0

    return _run(settings, work)


def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> int:
        async with ctx.db.sessions() as s:
            for summary in await camp.list_campaigns(s):
                _print_summary(summary)
        return 0

    return _run(settings, work)


def _change(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> int:
        async with ctx.db.transaction() as s:
            c = await camp.change_status(s, ctx, args.id, args.action, utcnow())
            await _audit(s, f"campaign.{args.action}", "campaign", c.id, {})
        print(f"campaign #{c.id} {c.status}")
        return 0

    return _run(settings, work)


def _status(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> int:
        async with ctx.db.sessions() as s:
            summary = await camp.summary(s, args.id)
        if args.json:
            print(json.dumps(_summary_json(summary), ensure_ascii=False, indent=2))
        else:
            _print_summary(summary)
        return 0

    return _run(settings, work)


def _import(settings: Settings, args: argparse.Namespace) -> int:
    data = args.file.read_bytes()
    progress = Progress(f"import {args.file.name}")
    rows = max(data.count(b"\n") - 1, 0)

    async def work(ctx: AppContext) -> int:
        progress.stage(f"checking about {rows} rows against the database")
        async with ctx.db.transaction() as s:
            result = await camp.import_csv(s, ctx, args.id, data, utcnow())
            await _audit(s, "campaign.import", "campaign", args.id,
                         {"bytes": len(data), "added": result.added})
            progress.stage("writing the tasks")
        progress.finish("committed")
        _print_added(result)
        return 0

    try:
        return _run(settings, work)
    except CommandError as exc:
        cause = exc.__cause__
        if isinstance(cause, csvimport.ImportRejected):
            print(f"hotline: {args.file}: nothing imported", file=sys.stderr)
            for err in cause.errors:
                print(f"  {args.file}:{err.line}: {err.message}", file=sys.stderr)
            return 1
        raise


def _manual_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> int:
        async with ctx.db.sessions() as s:
            items = await tasks.manual_list(s, campaign_id=args.campaign)
        tz = ctx.settings.tz
        if args.json:
            print(json.dumps([
                {**vars(i), "deadline_at": i.deadline_at.isoformat() if i.deadline_at else None}
                for i in items], ensure_ascii=False, indent=2))
            return 0
        if not items:
            print("the manual follow-up list is empty")
        for i in items:
            due = format_local(i.deadline_at, tz) if i.deadline_at else "-"
            print(f"task {i.task_id}  {i.number_masked}  case {i.case_number or '-'} "
                  f"{i.department_name or ''}  [{i.campaign_name}]  attempts {i.attempts_made}"
                  f"  why {i.why} (last: {i.last_outcome or '-'})  deadline {due}")
        return 0

    return _run(settings, work)


def _record_manual(settings: Settings, args: argparse.Namespace) -> int:
    answer = None
    if args.level is not None:
        answer = Answer(level=Level(args.level), resolved=args.resolved,
                        reason_codes=tuple(args.reason), comment_text=args.comment)
    elif args.reason or args.comment or args.resolved is not None:
        raise CommandError("--resolved/--reason/--comment need --level")

    async def work(ctx: AppContext) -> int:
        async with ctx.db.transaction() as s:
            task = await tasks.record_manual(s, ctx, args.task, reached=args.reached,
                                             answer=answer, note=args.note, by=args.by,
                                             now=utcnow())
        print(f"task {task.id}: {task.status} ({task.outcome})")
        return 0

    return _run(settings, work)


def _reveal(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> int:
        async with ctx.db.transaction() as s:
            print(await tasks.reveal_number(s, ctx, args.task, f"cli:{args.by}",
                                            reason=args.reason, role="admin"))
        return 0

    return _run(settings, work)


def _do_not_call(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: AppContext) -> int:
        protected = ctx.vault.protect(args.number)
        async with ctx.db.transaction() as s:
            added = await camp.add_do_not_call(s, protected, "supervisor", utcnow())
            # masked only: the audit log never holds a full number (DOMAIN.md rule 8)
            await _audit(s, "do_not_call.add", "do_not_call", None,
                         {"number_masked": protected.masked, "added": added})
        print(f"{protected.masked} {'added to' if added else 'already on'} the do-not-call list")
        return 0

    return _run(settings, work)
