"""Requests as the receiver checks them (HMAC header, SM2 envelope), what an answer means,
Retry-After, and the backoff schedule."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import random
from pathlib import Path

import pytest

from forwarder import sm2, transport
from forwarder.outcome import Dead, Delivered, Retry, backoff, classify, retry_after_seconds
from forwarder.profile import ProfileError, ResponseConfig, load
from tests.conftest import make_settings

RECORD = {"projectNo": "GD1", "assessNumber": 1, "satisfaction": 5, "proDepart": "市住建局"}


def test_hmac_request(tmp_path: Path) -> None:
    profile = load(make_settings(tmp_path))
    secrets = transport.Secrets(hmac_secret="k3y")
    req = transport.build(RECORD, "GD1:1", profile, secrets, now=1767225600.123)
    assert req.body == (
        '{"projectNo":"GD1","assessNumber":1,"satisfaction":5,"proDepart":"市住建局"}'.encode()
    )
    assert req.headers["X-Timestamp"] == "1767225600123"
    assert req.headers["Idempotency-Key"] == "GD1:1"
    expected = hmac.new(b"k3y", b"1767225600123" + req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Signature"] == expected
    assert "k3y" not in repr(secrets)


def test_hmac_options(tmp_path: Path) -> None:
    base = load(make_settings(tmp_path))
    cfg = base.transport.model_copy(update={
        "timestamp": "s", "signature_encoding": "base64", "signature_separator": "\n",
        "timestamp_header": "X-Ca-Timestamp", "signature_header": "X-Ca-Signature",
        "app_id_header": "X-Ca-Key", "idempotency_header": "",
    })
    profile = base.model_copy(update={"transport": cfg})
    req = transport.build(RECORD, "GD1:1", profile,
                          transport.Secrets(hmac_secret="s", app_mark="APP1"), now=100.9)
    digest = hmac.new(b"s", b"100\n" + req.body, hashlib.sha256).digest()
    assert req.headers["X-Ca-Signature"] == base64.b64encode(digest).decode()
    assert req.headers["X-Ca-Key"] == "APP1"
    assert "Idempotency-Key" not in req.headers


def test_sm2_envelope_request(tmp_path: Path) -> None:
    ours, theirs = sm2.generate_keypair(), sm2.generate_keypair()
    profile = load(make_settings(tmp_path, forwarder_profile="sm2_envelope"))
    secrets = transport.Secrets(app_mark="M1", app_word="W1", sm2_private_key=ours[0],
                                sm2_receiver_public_key=theirs[1])
    req = transport.build(RECORD, "GD1:1", profile, secrets, now=1767225600.0)
    envelope = json.loads(req.body)
    assert set(envelope) == {"appMark", "time", "sign", "params"}
    assert (envelope["appMark"], envelope["time"]) == ("M1", "1767225600000")
    assert sm2.verify(envelope["sign"], b"1767225600000M1W1", ours[1])
    assert json.loads(sm2.decrypt(envelope["params"], theirs[0])) == RECORD
    assert req.headers["Idempotency-Key"] == "GD1:1"


def test_missing_secrets_are_named(tmp_path: Path) -> None:
    hmac_profile = load(make_settings(tmp_path))
    with pytest.raises(ProfileError, match="forwarder_hmac_secret"):
        transport.check(hmac_profile, transport.Secrets())
    sm2_profile = load(make_settings(tmp_path, forwarder_profile="sm2_envelope"))
    with pytest.raises(ProfileError, match="forwarder_app_mark"):
        transport.check(sm2_profile, transport.Secrets())
    with pytest.raises(ProfileError, match="SM2 key"):
        transport.check(sm2_profile, transport.Secrets(
            app_mark="m", app_word="w", sm2_private_key="12", sm2_receiver_public_key="34"))


PLAIN = ResponseConfig()
CODED = ResponseConfig(code_field="result.code", ok_codes=["0"], retry_codes=["BUSY"],
                       message_field="result.msg", duplicate_statuses=[409])


@pytest.mark.parametrize(
    ("cfg", "status", "headers", "body", "expected"),
    [
        (PLAIN, 200, {}, "", Delivered()),
        (PLAIN, 201, {}, "whatever", Delivered()),
        (PLAIN, 500, {}, "oops", Retry("HTTP 500: oops")),
        (PLAIN, 503, {"Retry-After": "7"}, "", Retry("HTTP 503", 7.0)),
        (PLAIN, 429, {"Retry-After": "2"}, '{"msg": "too fast"}', Retry("HTTP 429: too fast", 2)),
        (PLAIN, 408, {}, "", Retry("HTTP 408")),
        (PLAIN, 400, {}, '{"msg": "areaCode 无效"}', Dead("HTTP 400: areaCode 无效")),
        (PLAIN, 422, {}, "line1\n  line2", Dead("HTTP 422: line1 line2")),
        (PLAIN, 409, {}, "dup", Dead("HTTP 409: dup")),
        (PLAIN, 302, {}, "", Retry("HTTP 302")),
        (CODED, 409, {}, "dup", Delivered()),
        (CODED, 200, {}, '{"result": {"code": 0}}', Delivered()),
        (CODED, 200, {}, '{"result": {"code": "BUSY", "msg": "忙"}}', Retry("HTTP 200: 忙")),
        (CODED, 200, {}, '{"result": {"code": "E9", "msg": "签名错误"}}',
         Dead("HTTP 200: 签名错误 (code E9)")),
        (CODED, 200, {}, "<html>", Retry("HTTP 200: answer without a readable code: <html>")),
    ],
)
def test_classify(
    cfg: ResponseConfig, status: int, headers: dict[str, str], body: str, expected: object
) -> None:
    assert classify(status, headers, body, cfg) == expected


def test_reasons_are_redacted_and_short() -> None:
    outcome = classify(400, {}, "caller 13812345678 id 11010519491231002X " + "x" * 900, PLAIN)
    assert isinstance(outcome, Dead)
    assert "13812345678" not in outcome.reason and "11010519491231002X" not in outcome.reason
    assert len(outcome.reason) < 600


def test_retry_after_forms() -> None:
    now = dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30
    assert retry_after_seconds("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    for failures, full in [(1, 2), (2, 4), (3, 8), (10, 600), (40, 600)]:
        delays = [backoff(failures, 2.0, 600.0, rng) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1
