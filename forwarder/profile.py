"""Profiles: how a province wants a rating — field names, codes, date format, transport — as
data (TOML or JSON), never as code. Built-in ones live in ``forwarder/profiles/``; a site
points ``forwarder_profile_file`` at its own. See forwarder/README.md for the format.

A field of the province's record is ``name = "source"``, where the source is one of
:data:`SOURCES` (computed from the stored rating), ``values.<key>`` (a constant from the
profile's ``[values]``, overlaid by the setting ``forwarder_values``) or ``=text`` (a literal).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hotline.settings import Settings

BUILTIN_DIR = Path(__file__).with_name("profiles")

#: computed sources a field can name; the ``evaluator_*`` ones are the citizen's identity
#: (DOMAIN.md rule 8) and are looked up only when a profile names them
SOURCES: dict[str, str] = {
    "project_no": "办件编号 / 工单号 (CALL-<linkedid> for 一次一评)",
    "assess_number": "1 first evaluation, 2 additional",
    "satisfaction": "the level in the profile's satisfaction coding",
    "pf": "channel: values.pf_default for a default rating, else values.pf_telephone",
    "eval_detail": "comma-separated reason codes; a 差评 without reason or text gets the "
    "setting bad_rating_fallback_reason",
    "writing_evaluation": "the comment text",
    "assess_time": "rating time in the profile's date_format and timezone",
    "dept_code": "the rating's department, else values.dept_code",
    "dept_name": "the case's department name, else values['dept_name.<code>'], else "
    "values.dept_name",
    "agent_code": "the agent's 工号",
    "agent_name": "the agent's name as known to the service (its 工号)",
    "case_number": "the 工单号 the rating belongs to",
    "is_default": "1 for a default rating (not a real vote), else 0",
    "valid": "1, or 0 once 复核 found the rating invalid",
    "invalid_reason": "why 复核 found it invalid",
    "event": "rating or invalidation",
    "kind": "per_call (一次一评) or per_case (一事一评)",
    "source": "keypad, callback, default or manual",
    "comment_recording": "file name of the recorded voice comment",
    # 整改 and 反馈 records (a profile's [records.rectification] / [records.feedback])
    "item_id": "the 差评 item's number",
    "round": "the item's 整改 round the record belongs to (1, 2 …)",
    "verification": "the department's 核实 finding: genuine, mistaken or malicious",
    "rectification_reply": "the department's 整改 reply",
    "citizen_result": "the short result told to the citizen in the 回访",
    "rectified_at": "when the 整改 reply was given, in the profile's date_format and timezone",
    "rectify_due": "the 整改 due date in force (after an approved 延期), yyyy-MM-dd",
    "rectified_on_time": "1 when the 整改 came by its due date, else 0",
    "followup_solved": "反馈: 1 solved, 0 not solved, empty when not asked",
    "followup_satisfaction": "反馈: satisfaction with the 整改 in the profile's coding",
    "followup_at": "when the 回访 answer came, in the profile's date_format and timezone",
    "evaluator_phone": "the caller's number in clear",
    "evaluator_phone_masked": "the caller's number masked (138****5678)",
    "evaluator_phone_sha256": "SHA-256 hex of the caller's number",
    "evaluator_phone_sm3": "SM3 hex of the caller's number",
}
EVALUATOR_SOURCES = frozenset(s for s in SOURCES if s.startswith("evaluator_"))

#: the record kinds a profile may add to the rating and its invalidation (seed 002 第十条
#: "整改及反馈情况同步报送省政务服务平台"): queued by the 差评 loop only when the active profile
#: defines them
RECORD_KINDS = ("rectification", "feedback")


def _check_sources(fields: dict[str, str]) -> None:
    for field, source in fields.items():
        if source.startswith("=") or source.startswith("values."):
            continue
        if source not in SOURCES:
            raise ValueError(f"field {field!r}: unknown source {source!r}")


class ProfileError(ValueError):
    """A profile cannot be loaded or is inconsistent; the message says which and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransportConfig(_Strict):
    kind: Literal["json_hmac", "sm2_envelope"] = "json_hmac"
    #: (projectNo, assessNumber) travels in this header on every request ("" = none)
    idempotency_header: str = "Idempotency-Key"
    timestamp: Literal["ms", "s"] = "ms"
    # json_hmac: HMAC-SHA256(secret, timestamp + separator + body)
    timestamp_header: str = "X-Timestamp"
    signature_header: str = "X-Signature"
    signature_separator: str = ""
    signature_encoding: Literal["hex", "base64"] = "hex"
    app_id_header: str = ""  # sends the setting forwarder_app_mark; "" = no such header
    # sm2_envelope: {appMark, time, sign, params}
    envelope_fields: dict[str, str] = Field(
        default_factory=lambda: {
            "app_mark": "appMark", "time": "time", "sign": "sign", "params": "params"
        }
    )
    sign_der: bool = False  # ASN.1 DER signature instead of raw r||s
    sign_encoding: Literal["hex", "base64"] = "hex"
    cipher_mode: Literal["C1C3C2", "C1C2C3"] = "C1C3C2"
    cipher_c1_prefix: bool = True
    cipher_encoding: Literal["hex", "base64"] = "base64"

    @model_validator(mode="after")
    def _envelope_complete(self) -> TransportConfig:
        missing = {"app_mark", "time", "sign", "params"} - set(self.envelope_fields)
        if missing:
            raise ValueError(f"envelope_fields lacks {sorted(missing)}")
        return self


class ResponseConfig(_Strict):
    """When the receiver has acknowledged a record."""

    #: dotted path of a code in the JSON answer ("" = a 2xx status is the acknowledgement)
    code_field: str = ""
    ok_codes: list[str] = Field(default_factory=lambda: ["0", "200"])
    retry_codes: list[str] = Field(default_factory=list)  # "busy, try later" answers
    message_field: str = "msg"  # dotted path of the receiver's reason
    # "I already have this record" answers, counted as delivered (issue 8, defect 14): a
    # resend after a lost acknowledgement must not be dead-lettered, or it blocks its case
    #: HTTP statuses (409 Conflict is the usual one)
    duplicate_statuses: list[int] = Field(default_factory=list)
    #: values of ``code_field``
    duplicate_codes: list[str] = Field(default_factory=list)
    #: texts that, found in the ``message_field`` of any answer, mean a duplicate ("重复")
    duplicate_messages: list[str] = Field(default_factory=list)


class InvalidationConfig(_Strict):
    """How a 复核 invalidation (event "invalidation") travels."""

    #: resend: the record again, with valid = 0 and the reason, to the same endpoint or ``path``;
    #: skip: not pushed (the province runs its own 复核; the pull feed still carries it)
    mode: Literal["resend", "skip"] = "resend"
    path: str = ""  # appended to forwarder_endpoint ("/invalidate"); "" = the endpoint itself
    key_suffix: str = ":invalidation"  # keeps the idempotency key apart from the rating's


class RecordKind(_Strict):
    """A further record kind (``[records.rectification]``, ``[records.feedback]``): its own
    fields, sent to ``forwarder_endpoint`` + ``path``, keyed per 差评 item and round."""

    fields: dict[str, str]
    types: dict[str, Literal["int", "str"]] = Field(default_factory=dict)
    path: str = ""  # appended to forwarder_endpoint ("/rectification"); "" = the endpoint

    @model_validator(mode="after")
    def _sources_known(self) -> RecordKind:
        _check_sources(self.fields)
        if "project_no" not in set(self.fields.values()):
            raise ValueError("no field carries 'project_no'")
        unknown_types = set(self.types) - set(self.fields)
        if unknown_types:
            raise ValueError(f"types for fields that do not exist: {sorted(unknown_types)}")
        return self


class Profile(_Strict):
    name: str
    description: str = ""
    date_format: str = "%Y-%m-%d %H:%M:%S"
    timezone: str = "Asia/Shanghai"
    satisfaction: Literal["provincial", "gbt"] = "provincial"
    #: values that must be non-empty before the forwarder starts (data_source, area_code ...)
    required_values: list[str] = Field(default_factory=list)
    values: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, str]
    #: field -> "int" | "str"; fields not listed: satisfaction and assess_number ints, rest str
    types: dict[str, Literal["int", "str"]] = Field(default_factory=dict)
    omit_empty: bool = True
    transport: TransportConfig = Field(default_factory=TransportConfig)
    response: ResponseConfig = Field(default_factory=ResponseConfig)
    invalidation: InvalidationConfig = Field(default_factory=InvalidationConfig)
    #: optional 整改 / 反馈 records (none in the shipped default: the province must want them)
    records: dict[Literal["rectification", "feedback"], RecordKind] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sources_known(self) -> Profile:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        _check_sources(self.fields)
        named = set(self.fields.values())
        for needed in ("project_no", "assess_number", "satisfaction", "eval_detail"):
            if needed not in named:
                # the key, the vote and a 差评's reason must reach the province
                raise ValueError(f"no field carries {needed!r}")
        unknown_types = set(self.types) - set(self.fields)
        if unknown_types:
            raise ValueError(f"types for fields that do not exist: {sorted(unknown_types)}")
        return self

    @property
    def needs_evaluator(self) -> bool:
        every = [*self.fields.values(), *(s for k in self.records.values()
                                          for s in k.fields.values())]
        return any(source in EVALUATOR_SOURCES for source in every)

    def path_for(self, event: str) -> str:
        """What is appended to forwarder_endpoint for a record of this event."""
        if event == "rating":
            return ""
        if event in self.records:
            return self.records[event].path
        return self.invalidation.path

    def skips(self, event: str) -> bool:
        """Whether records of this event are not pushed at all."""
        if event == "rating" or event in self.records:
            return False
        return self.invalidation.mode == "skip"

    def with_values(self, overrides: dict[str, str]) -> Profile:
        return self.model_copy(update={"values": {**self.values, **overrides}})

    def missing_values(self) -> list[str]:
        return [key for key in self.required_values if not self.values.get(key)]


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def load_file(path: Path) -> Profile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"profile {path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"profile {path}: not valid {path.suffix[1:] or 'TOML'}: {exc}") from exc
    data.setdefault("name", path.stem)
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        )
        raise ProfileError(f"profile {path}: {problems}") from exc


def load(settings: Settings) -> Profile:
    """The profile the settings choose, with the site's ``forwarder_values`` applied."""
    if settings.forwarder_profile_file is not None:
        profile = load_file(settings.forwarder_profile_file.expanduser())
    else:
        name = settings.forwarder_profile
        path = BUILTIN_DIR / f"{name}.toml"
        if "/" in name or not path.is_file():
            raise ProfileError(
                f"no built-in profile {name!r} (setting forwarder_profile); built-in: "
                + ", ".join(builtin_names())
            )
        profile = load_file(path)
    return profile.with_values(settings.forwarder_values)
