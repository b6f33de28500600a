"""Turning an outbox payload (the canonical snapshot written by storage.ratings) into the
province's record, as a profile says. Pure functions: no I/O, easy to test field by field."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from gmssl import sm3

from hotline.clock import PUSH_FORMAT, to_local
from hotline.levels import Level
from hotline.privacy import mask_number, normalise_number
from storage.models import RatingSource

from .profile import EVALUATOR_SOURCES, RECORD_KINDS, Profile


@dataclass(frozen=True)
class Extra:
    """What the snapshot does not hold, looked up at send time (forwarder.lookup)."""

    dept_name: str | None = None
    #: the evaluator's number in clear; only present when the profile sends identity fields
    evaluator_phone: str | None = None


def idempotency_key(payload: dict[str, Any], profile: Profile) -> str:
    """(projectNo, assessNumber), kept apart for an invalidation of the same rating; a 整改 or
    反馈 record is keyed per 差评 item and round (and the reply's revision after a 退回)."""
    key = f"{payload['project_no']}:{payload['assess_number']}"
    event = payload.get("event", "rating")
    if event in RECORD_KINDS:
        key += f":{event}:{payload['item_id']}:{payload['round']}"
        if int(payload.get("revision") or 1) > 1:
            key += f".{payload['revision']}"
    elif event != "rating":
        key += profile.invalidation.key_suffix
    return key


def eval_detail(payload: dict[str, Any], fallback: str) -> str | None:
    """The reason codes; a 差评 must carry a reason or a text (DOMAIN.md rule 4), so one
    without either gets the configured fallback code."""
    codes = [c for c in payload.get("reason_codes") or [] if c]
    if codes:
        return ",".join(codes)
    if _level(payload).is_bad and not (payload.get("comment_text") or "").strip():
        return fallback
    return None


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _local_time(value: str | None, profile: Profile) -> str | None:
    if not value:
        return None
    return _time_format(profile.timezone, profile.date_format)(value)


@lru_cache(maxsize=16)
def _time_format(timezone: str, date_format: str) -> Callable[[str], str]:
    """Stored ISO time → the profile's local time text. ``yyyy-MM-dd HH:mm:ss``, the usual
    format, is the first 19 characters of the ISO form: a fifth of strftime's cost (issue
    13: a record has one or three times, thousands of records a second)."""
    tz = ZoneInfo(timezone)
    iso = date_format == PUSH_FORMAT

    def local_text(value: str) -> str:
        at = dt.datetime.fromisoformat(value)
        local = (at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)).astimezone(tz)
        if iso and 1000 <= local.year:
            return local.isoformat(" ", "seconds")[:19]
        return local.strftime(date_format)

    return local_text


def _satisfaction(level: Level, profile: Profile) -> int:
    return level.provincial_code if profile.satisfaction == "provincial" else level.gbt_code


#: the levels by their number: looked up, not constructed, per record
_LEVELS = {int(level): level for level in Level}


def _level(payload: dict[str, Any]) -> Level:
    value = payload["level"]
    return _LEVELS.get(value) or Level(value)  # Level() says what is wrong with a bad one


def _rectified_on_time(p: dict[str, Any], profile: Profile) -> str | None:
    due, done = p.get("rectify_due"), p.get("rectified_at")
    if not due or not done:
        return None
    day = to_local(dt.datetime.fromisoformat(done), ZoneInfo(profile.timezone)).date()
    return _flag(day <= dt.date.fromisoformat(due))


def _dept_name(p: dict[str, Any], profile: Profile, extra: Extra) -> Any:
    values = profile.values
    code = p.get("department_code") or values.get("dept_code") or ""
    return extra.dept_name or values.get(f"dept_name.{code}") or values.get("dept_name")


def _pf(p: dict[str, Any], profile: Profile) -> Any:
    values = profile.values
    is_default = p.get("source") == RatingSource.DEFAULT
    return (is_default and values.get("pf_default")) or values.get("pf_telephone")


def _phone(transform: Callable[[str], str]) -> Getter:
    """An identity source: nothing without the evaluator's number."""
    return lambda p, profile, extra, fallback: (
        transform(extra.evaluator_phone) if extra.evaluator_phone else None
    )


def _payload_field(name: str) -> Getter:
    return lambda p, profile, extra, fallback: p.get(name)


def _sha256(phone: str) -> str:
    return hashlib.sha256(normalise_number(phone).encode()).hexdigest()


def _sm3(phone: str) -> str:
    return str(sm3.sm3_hash(list(normalise_number(phone).encode())))


Getter = Callable[[dict[str, Any], Profile, Extra, str], Any]

#: how each computed source (profile.SOURCES) is read from a payload: looked up once per
#: profile, not matched per field of every record (issue 13: thousands of records a second)
_GETTERS: dict[str, Getter] = {
    **{name: _payload_field(name) for name in (
        "project_no", "assess_number", "kind", "source", "item_id", "round", "verification",
        "rectification_reply", "citizen_result", "rectify_due", "case_number",
        "invalid_reason", "comment_recording",
    )},
    "event": lambda p, profile, extra, fallback: p.get("event", "rating"),
    "rectified_at": lambda p, profile, extra, fallback: _local_time(p.get("rectified_at"),
                                                                    profile),
    "followup_at": lambda p, profile, extra, fallback: _local_time(p.get("followup_at"), profile),
    "rectified_on_time": lambda p, profile, extra, fallback: _rectified_on_time(p, profile),
    "followup_solved": lambda p, profile, extra, fallback: (
        None if p.get("followup_solved") is None else _flag(bool(p["followup_solved"]))
    ),
    "followup_satisfaction": lambda p, profile, extra, fallback: (
        None if p.get("followup_level") is None
        else _satisfaction(_LEVELS.get(p["followup_level"]) or Level(p["followup_level"]),
                           profile)
    ),
    "satisfaction": lambda p, profile, extra, fallback: _satisfaction(_level(p), profile),
    "pf": lambda p, profile, extra, fallback: _pf(p, profile),
    "eval_detail": lambda p, profile, extra, fallback: eval_detail(p, fallback),
    "writing_evaluation": lambda p, profile, extra, fallback: p.get("comment_text"),
    "assess_time": lambda p, profile, extra, fallback: _local_time(p["rated_at"], profile),
    "dept_code": lambda p, profile, extra, fallback: (
        p.get("department_code") or profile.values.get("dept_code")
    ),
    "dept_name": lambda p, profile, extra, fallback: _dept_name(p, profile, extra),
    "agent_code": lambda p, profile, extra, fallback: p.get("agent_id"),
    "agent_name": lambda p, profile, extra, fallback: p.get("agent_id"),
    "is_default": lambda p, profile, extra, fallback: _flag(
        p.get("source") == RatingSource.DEFAULT
    ),
    "valid": lambda p, profile, extra, fallback: _flag(bool(p.get("valid", True))),
    "evaluator_phone": _phone(normalise_number),
    "evaluator_phone_masked": _phone(mask_number),
    "evaluator_phone_sha256": _phone(_sha256),
    "evaluator_phone_sm3": _phone(_sm3),
}


_INT_BY_DEFAULT = frozenset({
    "satisfaction", "assess_number", "item_id", "round", "followup_satisfaction",
})


class _Field(NamedTuple):
    name: str
    convert: Callable[[Any], Any]  # int or str: the field's type
    identity: bool  # an evaluator_* source (DOMAIN.md rule 8)
    get: Getter | None  # None: the constant ``value``
    value: Any = None


def _plan(profile: Profile, event: str) -> tuple[_Field, ...]:
    """The fields of ``event``'s record under ``profile``, each with how to get its value."""
    kind = profile.records.get(event)  # type: ignore[call-overload]
    fields = kind.fields if kind is not None else profile.fields
    types = kind.types if kind is not None else profile.types
    plan = []
    for name, source in fields.items():
        typ = types.get(name) or ("int" if source in _INT_BY_DEFAULT else "str")
        convert = int if typ == "int" else str
        if source.startswith("="):
            plan.append(_Field(name, convert, False, None, source[1:]))
        elif source.startswith("values."):
            plan.append(_Field(name, convert, False, None,
                               profile.values.get(source.removeprefix("values."))))
        elif source in _GETTERS:
            plan.append(_Field(name, convert, source in EVALUATOR_SOURCES, _GETTERS[source]))
        else:
            raise ValueError(f"unknown source {source!r}")  # Profile validation prevents this
    return tuple(plan)


#: plans by (id of the profile, event); the profile is kept with them, so the id stays its own
_PLANS: dict[tuple[int, str], tuple[Profile, tuple[_Field, ...]]] = {}


def _plan_of(profile: Profile, event: str) -> tuple[_Field, ...]:
    found = _PLANS.get((id(profile), event))
    if found is not None and found[0] is profile:
        return found[1]
    plan = _plan(profile, event)
    if len(_PLANS) >= 64:  # a process has a profile or two; tests make many
        _PLANS.clear()
    _PLANS[(id(profile), event)] = (profile, plan)
    return plan


def build_record(
    payload: dict[str, Any],
    profile: Profile,
    extra: Extra,
    *,
    fallback_reason: str,
    with_identity: bool = True,
) -> dict[str, Any]:
    """The province's record for one outbox payload. ``with_identity=False`` leaves the
    evaluator's identity fields out (the pull feed, previews). A 整改 or 反馈 payload is laid
    out by its record kind's own fields."""
    record: dict[str, Any] = {}
    omit_empty = profile.omit_empty
    for name, convert, identity, get, value in _plan_of(profile, payload.get("event", "rating")):
        if identity and not with_identity:
            continue
        if get is not None:
            value = get(payload, profile, extra, fallback_reason)
        if value is None or value == "":
            if omit_empty:
                continue
            record[name] = None if value is None else ""
            continue
        record[name] = convert(value)
    return record
