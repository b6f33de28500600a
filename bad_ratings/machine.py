"""The state machine of one 差评 item (差评单): data in, a decision out, no I/O.

    待核实 ─核实 属实─▶ 整改中 ─整改─▶ 已整改 ─回访 scheduled─▶ 回访 ─solved, not 差评─▶ 办结
    待核实 ─核实 误评/恶意─▶ 复核 ─upheld─▶ 整改中;  复核 ─invalid─▶ 无效
    已整改/回访 ─退回 (supervisor)─▶ 整改中
    回访 ─not solved / still 差评─▶ 整改中, round+1
    any state but 复核/无效 ─申诉 (agent, within the limit)─▶ 复核 ─upheld─▶ back where it was
    已整改/回访/办结 ─reopen (reviewer: the 整改 was not real)─▶ 整改中, round+1
    a new 差评 on a closed or invalid item ──▶ 待核实, round+1; on an open one it joins

延期 (request by the department, decision by a supervisor) moves the running due date; 督办
records who escalated and when. Every decision is appended to the item's timeline by the store;
nothing here erases an earlier one. (DOMAIN.md "The 差评 loop"; seeds 000-004; issue 10.)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bad_ratings.deadlines import Policy
from hotline.levels import Level


class State(StrEnum):
    PENDING = "pending_verification"  # 待核实
    IN_REVIEW = "in_review"  # 复核
    RECTIFYING = "rectifying"  # 整改中
    RECTIFIED = "rectified"  # 已整改, 回访 not yet under way
    FOLLOWUP = "followup"  # 回访
    CLOSED = "closed"  # 办结
    INVALID = "invalid"  # 复核 found it 误评 / 恶意: kept for audit, out of the statistics


LABELS: dict[State, str] = {
    State.PENDING: "待核实",
    State.IN_REVIEW: "复核",
    State.RECTIFYING: "整改中",
    State.RECTIFIED: "已整改",
    State.FOLLOWUP: "回访",
    State.CLOSED: "办结",
    State.INVALID: "无效",
}

OPEN_STATES = frozenset(
    {State.PENDING, State.IN_REVIEW, State.RECTIFYING, State.RECTIFIED, State.FOLLOWUP}
)


class Finding(StrEnum):
    GENUINE = "genuine"  # 属实
    MISTAKEN = "mistaken"  # 误评
    MALICIOUS = "malicious"  # 恶意


FINDING_LABELS: dict[Finding, str] = {
    Finding.GENUINE: "属实",
    Finding.MISTAKEN: "误评",
    Finding.MALICIOUS: "恶意",
}


class Action(StrEnum):
    OPEN = "open"
    JOIN = "join"
    ASSIGN = "assign"
    VERIFY = "verify"
    RECTIFY = "rectify"
    REQUEST_EXTENSION = "request_extension"
    DECIDE_EXTENSION = "decide_extension"
    RETURN = "return"
    SUPERVISE = "supervise"
    APPEAL = "appeal"
    REVIEW = "review"
    REOPEN = "reopen"
    START_FOLLOWUP = "start_followup"
    FOLLOWUP_RESULT = "followup_result"


SYSTEM = "system"  # the service itself: a rating saved, a 回访 answered

#: who may do what (``admin`` may do everything). 复核 decisions are the reviewers' alone.
ROLES: dict[Action, frozenset[str]] = {
    Action.OPEN: frozenset({SYSTEM}),
    Action.JOIN: frozenset({SYSTEM}),
    Action.ASSIGN: frozenset({"supervisor", "workorder"}),
    Action.VERIFY: frozenset({"department"}),
    Action.RECTIFY: frozenset({"department"}),
    Action.REQUEST_EXTENSION: frozenset({"department"}),
    Action.DECIDE_EXTENSION: frozenset({"supervisor"}),
    Action.RETURN: frozenset({"supervisor"}),
    Action.SUPERVISE: frozenset({"supervisor"}),
    Action.APPEAL: frozenset({"agent"}),
    Action.REVIEW: frozenset({"reviewer"}),
    Action.REOPEN: frozenset({"reviewer"}),
    Action.START_FOLLOWUP: frozenset({SYSTEM}),
    # a person who called the citizen back by hand records the answer too
    Action.FOLLOWUP_RESULT: frozenset({SYSTEM, "supervisor"}),
}


class Refused(Exception):
    """The command is not allowed; ``code`` is stable (API error code), the message says why.
    This base class is a command missing or misstating what it needs (HTTP 422); the
    subclasses say the role (:class:`Forbidden`) or the item's state (:class:`Conflict`) is
    wrong. Their HTTP status is a row each in http_api/errors.py ``DOMAIN_ERRORS``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Forbidden(Refused):
    """The actor's role may not give this command."""


class Conflict(Refused):
    """The item is not in a state where this command makes sense (or nothing would change)."""


_CONFLICT_CODES = frozenset({"wrong_state", "extension_pending", "no_extension_request",
                             "no_change", "appeal_too_late"})


def refusal(code: str, message: str) -> Refused:
    """The refusal of that code, as the class that gives its kind."""
    if code == "forbidden":
        return Forbidden(code, message)
    if code in _CONFLICT_CODES:
        return Conflict(code, message)
    return Refused(code, message)


@dataclass(frozen=True)
class Item:
    """What the machine needs to know about an item."""

    state: State
    round: int
    department_code: str | None
    opened_at: dt.datetime  # when this round's 差评 was given (the 申诉 limit counts from it)
    verify_due: dt.date | None = None
    rectify_due: dt.date | None = None
    extension_status: str | None = None
    extension_due: dt.date | None = None
    review_origin: str | None = None
    review_return_state: State | None = None


@dataclass(frozen=True)
class Command:
    action: Action
    role: str
    note: str | None = None  # explanation, reason, reply: what the person wrote
    finding: Finding | None = None
    citizen_result: str | None = None
    due: dt.date | None = None
    approve: bool | None = None
    invalid: bool | None = None  # 复核: True = the 差评 is invalid (finding says which)
    department_code: str | None = None
    solved: bool | None = None
    level: Level | None = None  # the 回访's satisfaction with the 整改


@dataclass
class Decision:
    """What to do: the new state, field changes, and effects for the adapters."""

    to_state: State
    changes: dict[str, Any] = field(default_factory=dict)
    #: webhook events to emit ("bad_rating.opened", "bad_rating.supervised", ...)
    events: list[str] = field(default_factory=list)
    invalidate_rating: bool = False  # mark the 差评 invalid, push the invalidation
    cancel_followup: bool = False  # cancel the pending 回访
    new_round: bool = False


EXTENSION_REQUESTED = "requested"
EXTENSION_APPROVED = "approved"
EXTENSION_REFUSED = "refused"


def _need(value: Any, code: str, message: str) -> None:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise refusal(code, message)


def _in(item: Item, action: Action, *states: State) -> None:
    if item.state not in states:
        raise refusal(
            "wrong_state",
            f"cannot {action.value} an item that is {LABELS[item.state]} ({item.state.value})",
        )


def _role(action: Action, role: str) -> None:
    if role != "admin" and role not in ROLES[action]:
        allowed = ", ".join(sorted(ROLES[action]))
        raise refusal("forbidden", f"role {role!r} may not {action.value}; needs: {allowed}")


def _new_round(item: Item, now: dt.datetime, policy: Policy, to: State) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "round": item.round + 1,
        "round_started_at": now,
        "extension_status": None,
        "extension_due": None,
        "followup_solved": None,
        "followup_level": None,
        # the new round's 整改 is not done yet: the 台账 and 整改率 read the latest round's
        # (the earlier round's stays on the timeline)
        "rectified_at": None,
        "closed_at": None,
    }
    if to == State.PENDING:
        changes |= {"verify_due": policy.verify_due(now), "rectify_due": policy.rectify_due(now),
                    "verification": None, "rectification_reply": None, "citizen_result": None}
    else:
        changes["rectify_due"] = policy.rectify_due(now)
    return changes


def open_item(now: dt.datetime, policy: Policy) -> Decision:
    """A first 差评: 待核实, with both due dates counted from it."""
    return Decision(
        State.PENDING,
        {"round": 1, "opened_at": now, "round_started_at": now,
         "verify_due": policy.verify_due(now), "rectify_due": policy.rectify_due(now)},
        events=["bad_rating.opened"],
    )


def decide(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    """The decision for ``cmd`` on ``item``, or :class:`Refused`."""
    _role(cmd.action, cmd.role)
    handler = _HANDLERS.get(cmd.action)
    if handler is None:  # OPEN: a new item has no state yet (open_item)
        raise refusal("wrong_state", f"{cmd.action.value} is not a command on an item")
    return handler(item, cmd, now, policy)


def _join(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    if item.state in OPEN_STATES:
        return Decision(item.state)  # joins the open item: recorded on its timeline
    changes = _new_round(item, now, policy, State.PENDING) | {"opened_at": now}
    return Decision(State.PENDING, changes, events=["bad_rating.opened"], new_round=True)


def _assign(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    if item.state not in OPEN_STATES:
        _in(item, cmd.action, *OPEN_STATES)
    _need(cmd.department_code, "department_required", "name the department to assign it to")
    if cmd.department_code == item.department_code:
        raise refusal("no_change", f"already assigned to {cmd.department_code}")
    return Decision(item.state, {"department_code": cmd.department_code},
                    events=["bad_rating.assigned"])


def _verify(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    _in(item, cmd.action, State.PENDING)
    _need(cmd.finding, "finding_required", "give the finding: genuine, mistaken or malicious")
    _need(cmd.note, "note_required", "explain the finding (核实说明)")
    changes: dict[str, Any] = {"verification": cmd.finding.value if cmd.finding else None,
                               "verification_note": cmd.note, "verified_at": now,
                               "extension_status": None, "extension_due": None}
    if cmd.finding == Finding.GENUINE:
        return Decision(State.RECTIFYING, changes)
    # 误评/恶意 are not the department's to decide alone: a reviewer rules (rule 6)
    changes |= {"review_origin": "verification", "review_return_state": State.RECTIFYING.value}
    return Decision(State.IN_REVIEW, changes)


def _rectify(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    _in(item, cmd.action, State.RECTIFYING)
    _need(cmd.note, "reply_required", "give the 整改 reply")
    _need(cmd.citizen_result, "citizen_result_required",
          "give the short result the 回访 reads to the citizen")
    if cmd.citizen_result and len(cmd.citizen_result) > 200:
        raise refusal("citizen_result_too_long", "the result for the citizen is read aloud: "
                      "keep it to 200 characters")
    return Decision(State.RECTIFIED, {"rectification_reply": cmd.note,
                                      "citizen_result": cmd.citizen_result, "rectified_at": now,
                                      "extension_status": None, "extension_due": None})


def _running_due(item: Item) -> tuple[str, dt.date | None]:
    if item.state == State.PENDING:
        return "verify_due", item.verify_due
    return "rectify_due", item.rectify_due


def _request_extension(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    _in(item, cmd.action, State.PENDING, State.RECTIFYING)
    if item.extension_status == EXTENSION_REQUESTED:
        raise refusal("extension_pending", "an extension request is already waiting")
    _need(cmd.note, "reason_required", "give the reason the deadline cannot be met")
    _need(cmd.due, "due_required", "give the new deadline")
    _, current = _running_due(item)
    if cmd.due is not None and current is not None and cmd.due <= current:
        raise refusal("due_not_later", f"the new deadline must be after {current.isoformat()}")
    if cmd.due is not None and cmd.due <= policy.local_date(now):
        raise refusal("due_not_later", "the new deadline must be in the future")
    return Decision(item.state, {"extension_status": EXTENSION_REQUESTED,
                                 "extension_due": cmd.due, "extension_reason": cmd.note})


def _decide_extension(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    _in(item, cmd.action, State.PENDING, State.RECTIFYING)
    if item.extension_status != EXTENSION_REQUESTED:
        raise refusal("no_extension_request", "there is no extension request to decide")
    _need(cmd.approve, "decision_required", "approve or refuse")
    if cmd.approve:
        name, _ = _running_due(item)
        return Decision(item.state, {"extension_status": EXTENSION_APPROVED,
                                     name: item.extension_due})
    _need(cmd.note, "reason_required", "give the reason for refusing")
    return Decision(item.state, {"extension_status": EXTENSION_REFUSED})


def _return(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    _in(item, cmd.action, State.RECTIFIED, State.FOLLOWUP)
    _need(cmd.note, "reason_required", "say why the reply is returned")
    return Decision(State.RECTIFYING, {"rectified_at": None}, cancel_followup=True)


def _supervise(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    _in(item, cmd.action, *OPEN_STATES)
    return Decision(item.state, {"supervised_at": now}, events=["bad_rating.supervised"])


def _appeal(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    _in(item, cmd.action, State.PENDING, State.RECTIFYING, State.RECTIFIED, State.FOLLOWUP,
        State.CLOSED)
    _need(cmd.note, "reason_required", "give the grounds of the 申诉")
    if not policy.appeal_open(item.opened_at, now):
        raise refusal("appeal_too_late", f"a 申诉 must be filed within {policy.appeal_days} "
                      "working days of the 差评")
    return Decision(State.IN_REVIEW, {"review_origin": "appeal",
                                      "review_return_state": item.state.value})


def _review(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    _in(item, cmd.action, State.IN_REVIEW)
    _need(cmd.invalid, "decision_required", "decide: upheld or invalid")
    _need(cmd.note, "reason_required", "give the reason of the 复核 decision")
    cleared = {"review_origin": None, "review_return_state": None}
    if cmd.invalid:
        _need(cmd.finding, "finding_required", "say whether it is mistaken or malicious")
        if cmd.finding == Finding.GENUINE:
            raise refusal("finding_required", "an invalid 差评 is mistaken or malicious")
        return Decision(State.INVALID, cleared | {"closed_at": now}, invalidate_rating=True,
                        cancel_followup=True)
    back = item.review_return_state or State.RECTIFYING
    changes = dict(cleared)
    if item.review_origin == "verification":
        # the 差评 stands against the department's finding: it must now rectify
        changes["verification"] = Finding.GENUINE.value
    return Decision(State(back), changes)


def _reopen(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    _in(item, cmd.action, State.RECTIFIED, State.FOLLOWUP, State.CLOSED)
    _need(cmd.note, "reason_required", "say why the 整改 was not real")
    return Decision(State.RECTIFYING, _new_round(item, now, policy, State.RECTIFYING),
                    cancel_followup=True, new_round=True)


def _start_followup(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    _in(item, cmd.action, State.RECTIFIED)
    return Decision(State.FOLLOWUP)


def _followup_result(item: Item, cmd: Command, now: dt.datetime, policy: Policy) -> Decision:
    _in(item, cmd.action, State.RECTIFIED, State.FOLLOWUP)
    _need(cmd.level, "satisfaction_required", "give the citizen's satisfaction")
    result: dict[str, Any] = {"followup_solved": cmd.solved, "followup_at": now,
                              "followup_level": int(cmd.level) if cmd.level else None}
    events = ["bad_rating.followup_result"]
    if cmd.solved is False or (cmd.level is not None and cmd.level.is_bad):
        # not solved or still a 差评: another 整改 round, then another 回访 (issue 10)
        changes = _new_round(item, now, policy, State.RECTIFYING) | result
        return Decision(State.RECTIFYING, changes, events=events, new_round=True)
    return Decision(State.CLOSED, result | {"closed_at": now}, events=events)


_HANDLERS = {
    Action.JOIN: _join,
    Action.ASSIGN: _assign,
    Action.VERIFY: _verify,
    Action.RECTIFY: _rectify,
    Action.REQUEST_EXTENSION: _request_extension,
    Action.DECIDE_EXTENSION: _decide_extension,
    Action.RETURN: _return,
    Action.SUPERVISE: _supervise,
    Action.APPEAL: _appeal,
    Action.REVIEW: _review,
    Action.REOPEN: _reopen,
    Action.START_FOLLOWUP: _start_followup,
    Action.FOLLOWUP_RESULT: _followup_result,
}
