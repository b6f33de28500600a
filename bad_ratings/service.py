"""The 差评 loop's operations, shared by the HTTP API and the CLI: scope checks, the state
machine, the store, in one transaction given by the caller.

Scope (issue 10 "Roles, scope and audit"): a ``department`` actor sees only items of its own
department codes, an ``agent`` only items of its own 工号; anything else is reported as not
found, so a department cannot even learn that another department's item exists.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bad_ratings import machine, store, webhooks
from bad_ratings.deadlines import Policy
from bad_ratings.machine import Action, Command, State
from hotline.levels import Level
from storage.models import BadRatingEvent, BadRatingItem, Call, Case, Rating, RatingSource


class NotFound(LookupError):
    """No such item, or one the actor may not see (the two are never told apart)."""


@dataclass(frozen=True)
class Actor:
    name: str
    role: str
    departments: frozenset[str] = field(default_factory=frozenset)
    agent_id: str | None = None

    def sees(self, row: BadRatingItem) -> bool:
        if self.role == "department":
            return row.department_code is not None and row.department_code in self.departments
        if self.role == "agent":
            return self.agent_id is not None and row.agent_id == self.agent_id
        return True


SYSTEM_ACTOR = Actor(name="system", role=machine.SYSTEM)


def policy_from(settings: object, calendar: object) -> Policy:
    """The loop's policy from the settings (``hotline.settings.Settings``) and calendar."""
    s = settings
    return Policy(
        calendar=calendar,  # type: ignore[arg-type]
        tz=s.tz,  # type: ignore[attr-defined]
        verify_days=s.bad_rating_verify_days,  # type: ignore[attr-defined]
        rectify_days=s.rectification_days,  # type: ignore[attr-defined]
        working_days=s.rectification_days_unit == "working_days",  # type: ignore[attr-defined]
        due_soon_days=s.bad_rating_due_soon_days,  # type: ignore[attr-defined]
        appeal_days=s.bad_rating_appeal_days,  # type: ignore[attr-defined]
    )


async def visible_item(
    session: AsyncSession, actor: Actor, item_id: int, *, lock: bool = False
) -> BadRatingItem:
    row = await store.get_item(session, item_id, lock=lock)
    if row is None or not actor.sees(row):
        raise NotFound(f"no 差评 item {item_id}")
    return row


async def act(
    session: AsyncSession, actor: Actor, item_id: int, cmd: Command, *, policy: Policy,
    now: dt.datetime,
) -> BadRatingItem:
    """Run ``cmd`` on the item as ``actor``: scope, role and state checks, then the write."""
    row = await visible_item(session, actor, item_id, lock=True)
    if cmd.action == Action.APPEAL and actor.role == "agent" and row.agent_id != actor.agent_id:
        raise NotFound(f"no 差评 item {item_id}")
    decision = machine.decide(store.as_machine_item(row), cmd, now, policy)
    await store.apply(session, row, decision, cmd, actor=actor.name, now=now)
    return row


async def list_items(
    session: AsyncSession, actor: Actor, filters: store.Filters, *, policy: Policy,
    now: dt.datetime, limit: int = 100, after_id: int = 0, newest_first: bool = False,
) -> list[BadRatingItem]:
    """One page by id: oldest first after ``after_id``, or newest first below it (0: from
    the newest), so a console pages the newest items without fetching them all."""
    q = store.list_query(filters, policy, now)
    if newest_first:
        if after_id:
            q = q.where(BadRatingItem.id < after_id)
        q = q.order_by(BadRatingItem.id.desc())
    else:
        q = q.where(BadRatingItem.id > after_id).order_by(BadRatingItem.id)
    if actor.role == "department":
        q = q.where(BadRatingItem.department_code.in_(sorted(actor.departments)))
    elif actor.role == "agent":
        q = q.where(BadRatingItem.agent_id == (actor.agent_id or "\x00"))
    return list(await session.scalars(q.limit(limit)))


async def get_with_timeline(
    session: AsyncSession, actor: Actor, item_id: int
) -> tuple[BadRatingItem, list[BadRatingEvent]]:
    row = await visible_item(session, actor, item_id)
    return row, await store.timeline(session, row.id)


# ------------------------------------------------------------------ the rating write path


def subject_key(rating: Rating, case: Case | None) -> str:
    if case is not None:
        return f"case:{case.case_number}"
    return f"call:{rating.project_no}"


async def on_rating_saved(
    session: AsyncSession, rating: Rating, *, policy: Policy, now: dt.datetime
) -> BadRatingItem | None:
    """Open or join the 差评 item of a valid 差评, in the rating's transaction (issue 10 "Every
    valid 差评 … opens exactly one 差评 item"). Idempotent: a survey saves its rating after
    every step, and only the first save of a rating counts."""
    if not rating.valid or not Level(rating.level).is_bad or rating.source == RatingSource.DEFAULT:
        return None
    case = await session.get(Case, rating.case_id) if rating.case_id is not None else None
    call = await session.get(Call, rating.call_id) if rating.call_id is not None else None
    key = subject_key(rating, case)
    row = await session.scalar(
        select(BadRatingItem).where(BadRatingItem.subject_key == key).with_for_update()
    )
    if row is None:
        row = BadRatingItem(
            subject_key=key, project_no=rating.project_no, case_id=rating.case_id,
            call_id=rating.call_id, case_number=case.case_number if case else None,
            department_code=rating.department_code or (case.department_code if case else None)
            or (call.department_code if call else None),
            agent_id=rating.agent_id or (call.agent_id if call else None),
            state=State.PENDING.value, round=1,
            first_rating_id=rating.id, latest_rating_id=rating.id, supervise_count=0,
        )
        decision = machine.open_item(rating.rated_at or now, policy)
        session.add(row)
        await session.flush()
        cmd = Command(Action.OPEN, machine.SYSTEM)
        await store.apply(session, row, decision, cmd, actor=SYSTEM_ACTOR.name, now=now,
                          rating_id=rating.id, data={"level": rating.level,
                                                     "source": rating.source})
        return row
    if await is_linked(session, row, rating.id):
        return row
    if rating.source == RatingSource.CALLBACK and row.state in (State.RECTIFIED, State.FOLLOWUP):
        # the answer of this item's own 回访: handled by followup_result, not a new 差评
        return row
    decision = machine.decide(store.as_machine_item(row), Command(Action.JOIN, machine.SYSTEM),
                              now, policy)
    row.latest_rating_id = rating.id
    if rating.agent_id and row.agent_id is None:
        row.agent_id = rating.agent_id
    await store.apply(session, row, decision, Command(Action.JOIN, machine.SYSTEM),
                      actor=SYSTEM_ACTOR.name, now=now, rating_id=rating.id,
                      data={"level": rating.level, "source": rating.source})
    return row


async def is_linked(session: AsyncSession, row: BadRatingItem, rating_id: int) -> bool:
    if rating_id in (row.first_rating_id, row.latest_rating_id, row.followup_rating_id):
        return True
    found = await session.scalar(
        select(BadRatingEvent.id).where(BadRatingEvent.item_id == row.id,
                                        BadRatingEvent.rating_id == rating_id).limit(1)
    )
    return found is not None


async def followup_result(
    session: AsyncSession, item_id: int, *, solved: bool | None, level: Level,
    rating_id: int | None, policy: Policy, now: dt.datetime, actor: Actor = SYSTEM_ACTOR,
) -> BadRatingItem:
    """The 回访 after 整改 answered: solved? and satisfaction with the 整改 (both stored);
    not solved or still a 差评 starts a new 整改 round."""
    row = await visible_item(session, actor, item_id, lock=True)
    cmd = Command(Action.FOLLOWUP_RESULT, actor.role, solved=solved, level=level)
    decision = machine.decide(store.as_machine_item(row), cmd, now, policy)
    if rating_id is not None:
        row.followup_rating_id = rating_id
    await store.apply(session, row, decision, cmd, actor=actor.name, now=now,
                      rating_id=rating_id, data={"solved": solved, "level": int(level)})
    return row


async def start_followup(
    session: AsyncSession, row: BadRatingItem, *, policy: Policy, now: dt.datetime
) -> None:
    cmd = Command(Action.START_FOLLOWUP, machine.SYSTEM)
    decision = machine.decide(store.as_machine_item(row), cmd, now, policy)
    await store.apply(session, row, decision, cmd, actor=SYSTEM_ACTOR.name, now=now)


async def watch_deadlines(session: AsyncSession, *, policy: Policy, now: dt.datetime) -> int:
    """Emit 即将超期 / 超期 once per item, round and due date (webhook dedupe)."""
    emitted = 0
    for row in await store.open_items_due(session):
        status = store.due_status(row, policy, now)
        if status is None or status.value == "on_time":
            continue
        event = webhooks.OVERDUE if status.value == "overdue" else webhooks.DUE_SOON
        due = store.running_due(row)
        key = f"{event}:{row.id}:{row.round}:{row.state}:{due}"
        await webhooks.emit(session, event, key, store.item_payload(row, now),
                            subject_id=row.id, now=now)
        emitted += 1
    return emitted
