"""Profiles as data and the record they make from a stored rating, field by field."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from forwarder.profile import Profile, ProfileError, builtin_names, load, load_file
from forwarder.record import Extra, _time_format, build_record, idempotency_key
from hotline.clock import PUSH_FORMAT, to_local
from tests.conftest import make_settings

RATED = dt.datetime(2026, 1, 31, 16, 0, 0, tzinfo=dt.UTC)  # 2026-02-01 00:00:00 in Beijing
VALUES = {"data_source": "321", "area_code": "330100"}


def payload(**overrides: Any) -> dict[str, Any]:
    base = {
        "event": "rating", "rating_id": 7, "project_no": "GD2026000123", "assess_number": 1,
        "kind": "per_case", "source": "callback", "level": 2, "reason_codes": [],
        "comment_text": None, "comment_recording": None, "case_number": "GD2026000123",
        "agent_id": "A7", "department_code": "D01", "rated_at": RATED.isoformat(),
        "valid": True, "invalid_reason": None,
    }
    return base | overrides


def profile(tmp_path: Path, name: str = "default", **overrides: Any) -> Profile:
    return load(make_settings(tmp_path, forwarder_profile=name, forwarder_values=VALUES,
                              **overrides))


def test_builtin_profiles_load() -> None:
    assert {"default", "sm2_envelope", "zhejiang"} <= set(builtin_names())


def test_default_profile_record(tmp_path: Path) -> None:
    record = build_record(payload(), profile(tmp_path), Extra(dept_name="市住建局"),
                          fallback_reason="9")
    assert record == {
        "projectNo": "GD2026000123", "assessNumber": 1, "pf": "6", "satisfaction": 4,
        "assessTime": "2026-02-01 00:00:00", "deptCode": "D01", "proDepart": "市住建局",
        "areaCode": "330100", "handleUserName": "A7", "handleUserPageCode": "A7",
        "dataSource": "321", "userProp": "1", "isDefault": "0", "isValid": "1",
    }


@pytest.mark.parametrize(("level", "code"), [(1, 5), (2, 4), (3, 3), (4, 2), (5, 1)])
def test_satisfaction_codings(tmp_path: Path, level: int, code: int) -> None:
    prov = profile(tmp_path)
    gbt = prov.model_copy(update={"satisfaction": "gbt"})
    assert build_record(payload(level=level), prov, Extra(), fallback_reason="9")[
        "satisfaction"] == code
    assert build_record(payload(level=level), gbt, Extra(), fallback_reason="9")[
        "satisfaction"] == level


def test_bad_rating_reasons(tmp_path: Path) -> None:
    p = profile(tmp_path)

    def rec(**kw: Any) -> dict[str, Any]:
        return build_record(payload(**kw), p, Extra(), fallback_reason="9")

    assert rec(level=5, reason_codes=["1", "3"])["evalDetail"] == "1,3"
    assert rec(level=4)["evalDetail"] == "9"  # skipped the menu: the configured fallback
    with_text = rec(level=4, comment_text="态度差")
    assert with_text["writingEvaluation"] == "态度差" and "evalDetail" not in with_text
    assert rec(level=4, comment_text="   ")["evalDetail"] == "9"
    assert "evalDetail" not in rec(level=1)


def test_default_rating_and_zhejiang_channel_codes(tmp_path: Path) -> None:
    default = payload(source="default", level=3)
    assert build_record(default, profile(tmp_path), Extra(), fallback_reason="9")[
        "isDefault"] == "1"
    zj = load(make_settings(tmp_path, forwarder_profile="zhejiang",
                            forwarder_values=VALUES | {"pf_telephone": "8"}))
    assert build_record(default, zj, Extra(), fallback_reason="9")["pf"] == "7"
    assert build_record(payload(), zj, Extra(), fallback_reason="9")["pf"] == "8"
    assert load(make_settings(tmp_path, forwarder_profile="zhejiang")).missing_values() == [
        "pf_telephone", "data_source", "area_code"
    ]


def test_department_name_falls_back_to_values(tmp_path: Path) -> None:
    p = profile(tmp_path).with_values({"dept_name.D01": "市住建局", "dept_name": "12345中心"})
    assert build_record(payload(), p, Extra(), fallback_reason="9")["proDepart"] == "市住建局"
    other = payload(department_code="D09")
    assert build_record(other, p, Extra(), fallback_reason="9")["proDepart"] == "12345中心"


def test_identity_fields_only_when_asked(tmp_path: Path) -> None:
    base = profile(tmp_path)
    p = base.model_copy(update={"fields": base.fields | {
        "mobile": "evaluator_phone", "userName": "evaluator_phone_masked",
        "certKey": "evaluator_phone_sha256", "certKeySm3": "evaluator_phone_sm3",
    }})
    assert p.needs_evaluator and not base.needs_evaluator
    extra = Extra(evaluator_phone="+86 138-1234-5678")
    record = build_record(payload(), p, extra, fallback_reason="9")
    assert record["mobile"] == "+8613812345678"
    assert record["userName"] == "+86*******5678"
    assert len(record["certKey"]) == len(record["certKeySm3"]) == 64
    assert record["certKey"] != record["certKeySm3"]
    hidden = build_record(payload(), p, extra, fallback_reason="9", with_identity=False)
    assert not {"mobile", "userName", "certKey", "certKeySm3"} & set(hidden)
    # no number known: the fields are left out rather than sent empty
    assert "mobile" not in build_record(payload(), p, Extra(), fallback_reason="9")


def test_types_literals_and_empty_values(tmp_path: Path) -> None:
    base = profile(tmp_path)
    p = base.model_copy(update={
        "fields": base.fields | {"channel": "=12345", "recording": "comment_recording"},
        "types": {"pf": "int", "assessNumber": "str"},
        "omit_empty": False,
    })
    record = build_record(payload(), p, Extra(), fallback_reason="9")
    assert record["pf"] == 6 and record["assessNumber"] == "1"
    assert record["channel"] == "12345"
    assert record["recording"] is None and record["taskCode"] == ""


def test_idempotency_keys(tmp_path: Path) -> None:
    p = profile(tmp_path)
    assert idempotency_key(payload(), p) == "GD2026000123:1"
    assert idempotency_key(payload(event="invalidation", assess_number=2), p) == (
        "GD2026000123:2:invalidation"
    )


def test_custom_profile_file_json_and_toml(tmp_path: Path) -> None:
    data = {
        "name": "site", "fields": {
            "bjbh": "project_no", "pjcs": "assess_number", "myd": "satisfaction",
            "pjxq": "eval_detail", "pjsj": "assess_time",
        },
        "date_format": "%Y%m%d%H%M%S",
    }
    path = tmp_path / "site.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    p = load(make_settings(tmp_path, forwarder_profile_file=path))
    assert build_record(payload(level=5), p, Extra(), fallback_reason="9") == {
        "bjbh": "GD2026000123", "pjcs": 1, "myd": 1, "pjxq": "9", "pjsj": "20260201000000",
    }
    toml = tmp_path / "site.toml"
    toml.write_text('name = "t"\n[fields]\nprojectNo = "project_no"\nn = "assess_number"\n'
                    's = "satisfaction"\nd = "eval_detail"\n', encoding="utf-8")
    assert load_file(toml).fields["projectNo"] == "project_no"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fields": {"projectNo": "project_number"}}, "unknown source"),
        ({"fields": {"projectNo": "project_no", "n": "assess_number", "s": "satisfaction"}},
         "eval_detail"),
        ({"timezone": "Mars/Base"}, "time zone"),
        ({"transport": {"kind": "carrier_pigeon"}}, "transport.kind"),
        ({"types": {"nope": "int"}}, "types for fields"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_profile_mistakes_are_named(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    data = {"name": "x", "fields": {"p": "project_no", "n": "assess_number",
                                    "s": "satisfaction", "d": "eval_detail"}} | change
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ProfileError, match=message):
        load_file(path)


def test_unknown_builtin_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"no built-in profile 'guangdong'.*default"):
        load(make_settings(tmp_path, forwarder_profile="guangdong"))
    with pytest.raises(ProfileError, match="cannot read"):
        load(make_settings(tmp_path, forwarder_profile_file=tmp_path / "missing.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("fields = [", encoding="utf-8")
    with pytest.raises(ProfileError, match="not valid"):
        load_file(broken)


def _with_records(tmp_path: Path, records: dict[str, Any], **extra: Any) -> Profile:
    data = profile(tmp_path).model_dump(mode="json") | {"records": records} | extra
    path = tmp_path / "site.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return load_file(path)


def test_loop_record_kinds_are_off_by_default_and_keyed_per_item_and_round(
    tmp_path: Path,
) -> None:
    """Seed 002 第十条 (整改及反馈情况同步报送): a kind goes only where the profile defines it,
    with its own fields, path and a key per 差评 item and round (a 退回 reply: a revision)."""
    for name in builtin_names():
        assert profile(tmp_path, name).records == {}
    p = _with_records(tmp_path, {
        "rectification": {"path": "/zg", "fields": {
            "projectNo": "project_no", "content": "rectification_reply", "due": "rectify_due",
            "done": "rectified_at", "onTime": "rectified_on_time"}},
        "feedback": {"fields": {"projectNo": "project_no", "solved": "followup_solved",
                                "satisfaction": "followup_satisfaction"}},
    }, invalidation={"mode": "skip", "path": "/inv", "key_suffix": ":invalidation"})
    item = {"item_id": 9, "round": 2, "revision": 1, "rectification_reply": "已整改",
            "rectify_due": "2026-02-01", "rectified_at": RATED.isoformat(),
            "followup_solved": False, "followup_level": 1}
    zg = payload(event="rectification", **item)
    assert idempotency_key(zg, p) == "GD2026000123:1:rectification:9:2"
    assert idempotency_key(zg | {"revision": 2}, p) == "GD2026000123:1:rectification:9:2.2"
    assert build_record(zg, p, Extra(), fallback_reason="9") == {
        "projectNo": "GD2026000123", "content": "已整改", "due": "2026-02-01",
        "done": "2026-02-01 00:00:00", "onTime": "1"}
    fk = build_record(payload(event="feedback", **item), p, Extra(), fallback_reason="9")
    assert fk == {"projectNo": "GD2026000123", "solved": "0", "satisfaction": 5}
    assert (p.path_for("rectification"), p.path_for("feedback"), p.path_for("invalidation"),
            p.path_for("rating")) == ("/zg", "", "/inv", "")
    # the invalidations are skipped here; the loop records are not
    assert (p.skips("invalidation"), p.skips("rectification"), p.skips("rating")) == (
        True, False, False)


def test_a_loop_record_kind_with_an_unknown_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="unknown source 'rectify_text'"):
        _with_records(tmp_path, {"rectification": {"fields": {
            "projectNo": "project_no", "x": "rectify_text"}}})
    with pytest.raises(ProfileError, match="project_no"):
        _with_records(tmp_path, {"feedback": {"fields": {"x": "followup_solved"}}})


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York", "UTC"])
@pytest.mark.parametrize("stored", [
    "2026-01-31T16:00:00+00:00",  # midnight in Beijing
    "2026-03-08T06:59:59.999999+00:00",  # the second before New York's clocks go forward
    "2026-03-08T07:00:00.5+00:00",
    "2026-11-01T05:30:00+00:00",  # New York's repeated hour
    "2026-06-30T23:59:59",  # naive: stored UTC
])
def test_the_usual_date_format_is_strftimes(zone: str, stored: str) -> None:
    """``yyyy-MM-dd HH:mm:ss`` is cut from the ISO form (issue 13): the same text as
    strftime gives, also across daylight saving changes and for a naive stored time."""
    want = to_local(dt.datetime.fromisoformat(stored), ZoneInfo(zone)).strftime(PUSH_FORMAT)
    assert _time_format(zone, PUSH_FORMAT)(stored) == want
    assert _time_format(zone, "%Y%m%d%H%M%S")(stored) == want.replace("-", "").replace(
        " ", "").replace(":", "")
