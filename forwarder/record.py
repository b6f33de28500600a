"""Turning an outbox payload (the canonical snapshot written by storage.ratings) into the
province's record, as a profile says. Pure functions: no I/O, easy to test field by field."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from gmssl import sm3

from hotline.clock import to_local
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
    if Level(payload["level"]).is_bad and not (payload.get("comment_text") or "").strip():
        return fallback
    return None


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _local_time(value: str | None, profile: Profile) -> str | None:
    if not value:
        return None
    at = dt.datetime.fromisoformat(value)
    return to_local(at, ZoneInfo(profile.timezone)).strftime(profile.date_format)


def _satisfaction(level: Level, profile: Profile) -> int:
    return level.provincial_code if profile.satisfaction == "provincial" else level.gbt_code


def _item_source(source: str, payload: dict[str, Any], profile: Profile) -> Any:
    """The 整改 / 反馈 sources (payload written by bad_ratings.upstream)."""
    match source:
        case "item_id" | "round" | "verification" | "rectification_reply" | "citizen_result":
            return payload.get(source)
        case "rectify_due":
            return payload.get("rectify_due")
        case "rectified_at" | "followup_at":
            return _local_time(payload.get(source), profile)
        case "rectified_on_time":
            due, done = payload.get("rectify_due"), payload.get("rectified_at")
            if not due or not done:
                return None
            day = to_local(dt.datetime.fromisoformat(done), ZoneInfo(profile.timezone)).date()
            return _flag(day <= dt.date.fromisoformat(due))
        case "followup_solved":
            solved = payload.get("followup_solved")
            return None if solved is None else _flag(bool(solved))
        case "followup_satisfaction":
            level = payload.get("followup_level")
            return None if level is None else _satisfaction(Level(level), profile)
    return None


_ITEM_SOURCES = frozenset({
    "item_id", "round", "verification", "rectification_reply", "citizen_result", "rectify_due",
    "rectified_at", "followup_at", "rectified_on_time", "followup_solved",
    "followup_satisfaction",
})


def _computed(
    source: str, payload: dict[str, Any], profile: Profile, extra: Extra, fallback: str
) -> Any:
    if source in _ITEM_SOURCES:
        return _item_source(source, payload, profile)
    level = Level(payload["level"])
    values = profile.values
    match source:
        case "project_no" | "assess_number" | "event" | "kind" | "source":
            return payload.get(source, "rating" if source == "event" else None)
        case "satisfaction":
            return _satisfaction(level, profile)
        case "pf":
            is_default = payload.get("source") == RatingSource.DEFAULT
            return (is_default and values.get("pf_default")) or values.get("pf_telephone")
        case "eval_detail":
            return eval_detail(payload, fallback)
        case "writing_evaluation":
            return payload.get("comment_text")
        case "assess_time":
            rated = dt.datetime.fromisoformat(payload["rated_at"])
            return to_local(rated, ZoneInfo(profile.timezone)).strftime(profile.date_format)
        case "dept_code":
            return payload.get("department_code") or values.get("dept_code")
        case "dept_name":
            code = payload.get("department_code") or values.get("dept_code") or ""
            return extra.dept_name or values.get(f"dept_name.{code}") or values.get("dept_name")
        case "agent_code" | "agent_name":
            return payload.get("agent_id")
        case "case_number":
            return payload.get("case_number")
        case "is_default":
            return _flag(payload.get("source") == RatingSource.DEFAULT)
        case "valid":
            return _flag(bool(payload.get("valid", True)))
        case "invalid_reason":
            return payload.get("invalid_reason")
        case "comment_recording":
            return payload.get("comment_recording")
    phone = extra.evaluator_phone
    if not phone:
        return None
    match source:
        case "evaluator_phone":
            return normalise_number(phone)
        case "evaluator_phone_masked":
            return mask_number(phone)
        case "evaluator_phone_sha256":
            return hashlib.sha256(normalise_number(phone).encode()).hexdigest()
        case "evaluator_phone_sm3":
            return sm3.sm3_hash(list(normalise_number(phone).encode()))
    raise ValueError(f"unknown source {source!r}")  # Profile validation prevents this


def _typed(value: Any, kind: str) -> Any:
    if kind == "int":
        return int(value)
    return str(value)


_INT_BY_DEFAULT = frozenset({
    "satisfaction", "assess_number", "item_id", "round", "followup_satisfaction",
})


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
    kind = profile.records.get(payload.get("event", "rating"))  # type: ignore[call-overload]
    fields = kind.fields if kind is not None else profile.fields
    types = kind.types if kind is not None else profile.types
    for name, source in fields.items():
        if source in EVALUATOR_SOURCES and not with_identity:
            continue
        if source.startswith("="):
            value: Any = source[1:]
        elif source.startswith("values."):
            value = profile.values.get(source.removeprefix("values."))
        else:
            value = _computed(source, payload, profile, extra, fallback_reason)
        if value is None or value == "":
            if profile.omit_empty:
                continue
            record[name] = None if value is None else ""
            continue
        typ = types.get(name) or ("int" if source in _INT_BY_DEFAULT else "str")
        record[name] = _typed(value, typ)
    return record
