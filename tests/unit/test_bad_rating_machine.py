"""The 差评 item's state machine (bad_ratings.machine): every transition and every refusal
(DOMAIN.md "The 差评 loop"; rule 6 复核/申诉; issue 10), and its deadlines on the official
calendar (rule 4: 15 working days; 国庆 and a 调休 weekend)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from bad_ratings.deadlines import DueStatus, Policy
from bad_ratings.machine import (
    ROLES,
    Action,
    Command,
    Finding,
    Item,
    Refused,
    State,
    decide,
    open_item,
)
from hotline.levels import Level
from hotline.workdays import WorkdayCalendar

TZ = ZoneInfo("Asia/Shanghai")
POLICY = Policy(calendar=WorkdayCalendar(), tz=TZ)


def at(y: int, m: int, d: int, h: int = 10) -> dt.datetime:
    return dt.datetime(y, m, d, h, tzinfo=TZ)


NOW = at(2026, 3, 2)  # a Monday, no holiday near


def item(state: State, **kw: object) -> Item:
    base = Item(state=state, round=1, department_code="D1", opened_at=NOW,
                verify_due=dt.date(2026, 3, 4), rectify_due=dt.date(2026, 3, 23))
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def run(it: Item, action: Action, role: str, now: dt.datetime = NOW, **kw: object):  # type: ignore[no-untyped-def]
    return decide(it, Command(action, role, **kw), now, POLICY)  # type: ignore[arg-type]


def refused(code: str, it: Item, action: Action, role: str, **kw: object) -> None:
    with pytest.raises(Refused) as exc:
        run(it, action, role, **kw)
    assert exc.value.code == code, exc.value


# ------------------------------------------------------------------ opening and deadlines


def test_rule4_open_sets_verify_and_15_working_day_rectify_due_across_national_day() -> None:
    # 2025-09-30 (Tue) + 15 working days: Oct 1-8 off, the 调休 Saturday Oct 11 on -> Oct 28
    d = open_item(at(2025, 9, 30), POLICY)
    assert d.to_state == State.PENDING
    assert d.changes["rectify_due"] == dt.date(2025, 10, 28)
    # 2 working days for 核实: Oct 9 and Oct 10 (after the holiday)
    assert d.changes["verify_due"] == dt.date(2025, 10, 10)
    assert d.events == ["bad_rating.opened"]


def test_rule4_tiaoxiu_weekend_counts_as_working_day() -> None:
    # 2026-02-13 (Fri) + 1 working day is the 调休 Saturday 2026-02-14 (hotline.workdays)
    policy = dataclasses.replace(POLICY, verify_days=1)
    assert open_item(at(2026, 2, 13), policy).changes["verify_due"] == dt.date(2026, 2, 14)


def test_seed002_natural_day_option() -> None:
    policy = dataclasses.replace(POLICY, working_days=False)
    assert open_item(at(2025, 9, 30), policy).changes["rectify_due"] == dt.date(2025, 10, 15)


def test_due_soon_and_overdue_are_computed_on_working_days() -> None:
    due = dt.date(2025, 10, 10)  # a Friday after 国庆
    # from 09-26: 09-28 (调休 Sunday), 09-29, 09-30, 10-09, 10-10 = 5 working days left
    assert POLICY.due_status(due, at(2025, 9, 26)) == DueStatus.ON_TIME
    # from 09-30, ten calendar days but only 2 working days (10-09, 10-10) are left
    assert POLICY.due_status(due, at(2025, 9, 30)) == DueStatus.DUE_SOON
    assert POLICY.due_status(due, at(2025, 10, 8)) == DueStatus.DUE_SOON
    assert POLICY.due_status(due, at(2025, 10, 10, 23)) == DueStatus.DUE_SOON
    assert POLICY.due_status(due, at(2025, 10, 11)) == DueStatus.OVERDUE
    assert POLICY.due_status(None, NOW) is None


# ------------------------------------------------------------------ 核实 and 整改


def test_verify_genuine_goes_to_rectification() -> None:
    d = run(item(State.PENDING), Action.VERIFY, "department", finding=Finding.GENUINE,
            note="属实, 窗口人员态度问题")
    assert d.to_state == State.RECTIFYING
    assert d.changes["verification"] == "genuine"


@pytest.mark.parametrize("finding", [Finding.MISTAKEN, Finding.MALICIOUS])
def test_rule6_mistaken_or_malicious_finding_goes_to_review(finding: Finding) -> None:
    d = run(item(State.PENDING), Action.VERIFY, "department", finding=finding, note="x")
    assert d.to_state == State.IN_REVIEW
    assert d.changes["review_origin"] == "verification"
    assert not d.invalidate_rating  # the department alone cannot invalidate a 差评


def test_verify_refusals() -> None:
    refused("finding_required", item(State.PENDING), Action.VERIFY, "department", note="x")
    refused("note_required", item(State.PENDING), Action.VERIFY, "department",
            finding=Finding.GENUINE)
    refused("wrong_state", item(State.RECTIFYING), Action.VERIFY, "department",
            finding=Finding.GENUINE, note="x")
    refused("forbidden", item(State.PENDING), Action.VERIFY, "supervisor",
            finding=Finding.GENUINE, note="x")


def test_rectify_needs_reply_and_citizen_result() -> None:
    d = run(item(State.RECTIFYING), Action.RECTIFY, "department", note="已培训",
            citizen_result="已对窗口人员批评教育")
    assert d.to_state == State.RECTIFIED
    assert d.changes["citizen_result"] == "已对窗口人员批评教育"
    refused("reply_required", item(State.RECTIFYING), Action.RECTIFY, "department",
            citizen_result="x")
    refused("citizen_result_required", item(State.RECTIFYING), Action.RECTIFY, "department",
            note="x")
    refused("citizen_result_too_long", item(State.RECTIFYING), Action.RECTIFY, "department",
            note="x", citizen_result="长" * 201)
    refused("wrong_state", item(State.PENDING), Action.RECTIFY, "department", note="x",
            citizen_result="y")
    refused("forbidden", item(State.RECTIFYING), Action.RECTIFY, "agent", note="x",
            citizen_result="y")


# ------------------------------------------------------------------ 延期, 退回, 督办, assign


def test_extension_request_then_approve_moves_the_running_deadline() -> None:
    it = item(State.RECTIFYING)
    d = run(it, Action.REQUEST_EXTENSION, "department", note="需采购设备",
            due=dt.date(2026, 4, 10))
    assert d.changes["extension_status"] == "requested"
    asked = dataclasses.replace(it, extension_status="requested",
                                extension_due=dt.date(2026, 4, 10))
    refused("extension_pending", asked, Action.REQUEST_EXTENSION, "department", note="x",
            due=dt.date(2026, 4, 20))
    ok = run(asked, Action.DECIDE_EXTENSION, "supervisor", approve=True)
    assert ok.changes == {"extension_status": "approved", "rectify_due": dt.date(2026, 4, 10)}
    no = run(asked, Action.DECIDE_EXTENSION, "supervisor", approve=False, note="理由不足")
    assert no.changes == {"extension_status": "refused"}
    refused("reason_required", asked, Action.DECIDE_EXTENSION, "supervisor", approve=False)
    refused("forbidden", asked, Action.DECIDE_EXTENSION, "department", approve=True)


def test_extension_in_verification_moves_verify_due() -> None:
    asked = item(State.PENDING, extension_status="requested", extension_due=dt.date(2026, 3, 9))
    d = run(asked, Action.DECIDE_EXTENSION, "supervisor", approve=True)
    assert d.changes["verify_due"] == dt.date(2026, 3, 9)


def test_extension_refusals() -> None:
    it = item(State.RECTIFYING)
    refused("reason_required", it, Action.REQUEST_EXTENSION, "department",
            due=dt.date(2026, 4, 1))
    refused("due_required", it, Action.REQUEST_EXTENSION, "department", note="x")
    refused("due_not_later", it, Action.REQUEST_EXTENSION, "department", note="x",
            due=dt.date(2026, 3, 20))
    refused("wrong_state", item(State.RECTIFIED), Action.REQUEST_EXTENSION, "department",
            note="x", due=dt.date(2026, 5, 1))
    refused("no_extension_request", it, Action.DECIDE_EXTENSION, "supervisor", approve=True)
    refused("forbidden", it, Action.REQUEST_EXTENSION, "agent", note="x",
            due=dt.date(2026, 5, 1))


@pytest.mark.parametrize("state", [State.RECTIFIED, State.FOLLOWUP])
def test_return_sends_the_reply_back_and_cancels_the_followup(state: State) -> None:
    d = run(item(state), Action.RETURN, "supervisor", note="整改不到位")
    assert d.to_state == State.RECTIFYING and d.cancel_followup
    refused("reason_required", item(state), Action.RETURN, "supervisor")
    refused("forbidden", item(state), Action.RETURN, "department", note="x")


def test_return_refused_outside_a_reply() -> None:
    refused("wrong_state", item(State.PENDING), Action.RETURN, "supervisor", note="x")


def test_supervise_keeps_state_and_notifies() -> None:
    d = run(item(State.RECTIFYING), Action.SUPERVISE, "supervisor", note="请加快")
    assert d.to_state == State.RECTIFYING and d.events == ["bad_rating.supervised"]
    refused("wrong_state", item(State.CLOSED), Action.SUPERVISE, "supervisor")
    refused("forbidden", item(State.RECTIFYING), Action.SUPERVISE, "department")


def test_assign_from_the_unassigned_queue() -> None:
    d = run(item(State.PENDING, department_code=None), Action.ASSIGN, "supervisor",
            department_code="D2")
    assert d.changes == {"department_code": "D2"} and d.to_state == State.PENDING
    assert run(item(State.PENDING), Action.ASSIGN, "workorder", department_code="D3")
    refused("department_required", item(State.PENDING), Action.ASSIGN, "supervisor")
    refused("no_change", item(State.PENDING), Action.ASSIGN, "supervisor", department_code="D1")
    refused("forbidden", item(State.PENDING), Action.ASSIGN, "department", department_code="D2")
    refused("wrong_state", item(State.CLOSED), Action.ASSIGN, "supervisor", department_code="D2")


# ------------------------------------------------------------------ 申诉 and 复核 (rule 6)


def test_rule6_appeal_goes_to_review_and_upheld_returns_where_it_was() -> None:
    it = item(State.RECTIFYING)
    d = run(it, Action.APPEAL, "agent", note="来电人未说明诉求")
    assert d.to_state == State.IN_REVIEW
    reviewing = item(State.IN_REVIEW, review_origin="appeal",
                     review_return_state=State.RECTIFYING)
    back = run(reviewing, Action.REVIEW, "reviewer", invalid=False, note="差评成立")
    assert back.to_state == State.RECTIFYING and not back.invalidate_rating


def test_rule6_appeal_past_the_limit_is_refused() -> None:
    # the 差评 on Mon 2026-03-02; 5 working days later is Mon 2026-03-09
    assert run(item(State.PENDING), Action.APPEAL, "agent", now=at(2026, 3, 9, 23), note="x")
    refused_late = item(State.PENDING)
    with pytest.raises(Refused) as exc:
        run(refused_late, Action.APPEAL, "agent", now=at(2026, 3, 10), note="x")
    assert exc.value.code == "appeal_too_late"


def test_appeal_refusals() -> None:
    refused("reason_required", item(State.PENDING), Action.APPEAL, "agent")
    refused("wrong_state", item(State.IN_REVIEW), Action.APPEAL, "agent", note="x")
    refused("wrong_state", item(State.INVALID), Action.APPEAL, "agent", note="x")
    refused("forbidden", item(State.PENDING), Action.APPEAL, "department", note="x")


@pytest.mark.parametrize("finding", [Finding.MISTAKEN, Finding.MALICIOUS])
def test_rule6_review_invalid_invalidates_and_cancels_followup(finding: Finding) -> None:
    reviewing = item(State.IN_REVIEW, review_origin="verification",
                     review_return_state=State.RECTIFYING)
    d = run(reviewing, Action.REVIEW, "reviewer", invalid=True, finding=finding,
            note="来电人多次恶意评价")
    assert d.to_state == State.INVALID
    assert d.invalidate_rating and d.cancel_followup


def test_rule6_review_upheld_after_department_finding_means_rectify() -> None:
    reviewing = item(State.IN_REVIEW, review_origin="verification",
                     review_return_state=State.RECTIFYING)
    d = run(reviewing, Action.REVIEW, "reviewer", invalid=False, note="差评属实")
    assert d.to_state == State.RECTIFYING and d.changes["verification"] == "genuine"


def test_review_refusals() -> None:
    reviewing = item(State.IN_REVIEW, review_origin="appeal", review_return_state=State.PENDING)
    refused("decision_required", reviewing, Action.REVIEW, "reviewer", note="x")
    refused("reason_required", reviewing, Action.REVIEW, "reviewer", invalid=False)
    refused("finding_required", reviewing, Action.REVIEW, "reviewer", invalid=True, note="x")
    refused("finding_required", reviewing, Action.REVIEW, "reviewer", invalid=True, note="x",
            finding=Finding.GENUINE)
    refused("forbidden", reviewing, Action.REVIEW, "supervisor", invalid=False, note="x")
    refused("wrong_state", item(State.PENDING), Action.REVIEW, "reviewer", invalid=False,
            note="x")


@pytest.mark.parametrize("state", [State.RECTIFIED, State.FOLLOWUP, State.CLOSED])
def test_seed003_reopen_starts_a_new_rectification_round(state: State) -> None:
    d = run(item(state), Action.REOPEN, "reviewer", now=at(2025, 9, 30), note="整改不实")
    assert d.to_state == State.RECTIFYING and d.new_round and d.cancel_followup
    assert d.changes["round"] == 2
    assert d.changes["rectify_due"] == dt.date(2025, 10, 28)  # 15 working days over 国庆
    refused("reason_required", item(state), Action.REOPEN, "reviewer")
    refused("forbidden", item(state), Action.REOPEN, "supervisor", note="x")


def test_reopen_refused_while_still_rectifying() -> None:
    refused("wrong_state", item(State.RECTIFYING), Action.REOPEN, "reviewer", note="x")


# ------------------------------------------------------------------ 回访 and rounds


def test_followup_satisfied_and_solved_closes() -> None:
    d = run(item(State.FOLLOWUP), Action.FOLLOWUP_RESULT, "system", solved=True,
            level=Level.SATISFIED)
    assert d.to_state == State.CLOSED
    assert d.changes["followup_solved"] is True and d.changes["followup_level"] == 2
    assert d.events == ["bad_rating.followup_result"]


@pytest.mark.parametrize(("solved", "level"), [(False, Level.SATISFIED),
                                               (True, Level.VERY_DISSATISFIED)])
def test_followup_not_solved_or_still_bad_opens_a_new_round(solved: bool, level: Level) -> None:
    d = run(item(State.FOLLOWUP), Action.FOLLOWUP_RESULT, "system", solved=solved, level=level)
    assert d.to_state == State.RECTIFYING and d.new_round and d.changes["round"] == 2
    assert d.changes["followup_solved"] is solved and d.changes["followup_level"] == int(level)


def test_followup_refusals() -> None:
    refused("satisfaction_required", item(State.FOLLOWUP), Action.FOLLOWUP_RESULT, "system",
            solved=True)
    refused("wrong_state", item(State.RECTIFYING), Action.FOLLOWUP_RESULT, "system",
            solved=True, level=Level.SATISFIED)
    refused("forbidden", item(State.FOLLOWUP), Action.FOLLOWUP_RESULT, "department",
            solved=True, level=Level.SATISFIED)
    assert run(item(State.RECTIFIED), Action.START_FOLLOWUP, "system").to_state == State.FOLLOWUP
    refused("forbidden", item(State.RECTIFIED), Action.START_FOLLOWUP, "supervisor")


def test_a_new_bad_rating_joins_an_open_item_and_reopens_a_closed_one() -> None:
    assert run(item(State.RECTIFYING), Action.JOIN, "system").to_state == State.RECTIFYING
    d = run(item(State.CLOSED), Action.JOIN, "system")
    assert d.to_state == State.PENDING and d.new_round and d.changes["round"] == 2
    assert d.events == ["bad_rating.opened"]


def test_open_is_not_a_command_and_admin_passes_every_role_check() -> None:
    refused("wrong_state", item(State.PENDING), Action.OPEN, "system")
    assert run(item(State.PENDING), Action.VERIFY, "admin", finding=Finding.GENUINE, note="x")
    assert set(ROLES) == set(Action)
