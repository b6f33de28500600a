"""Citizens' numbers are confidential (DOMAIN.md rule 8): encrypted at rest, masked in logs."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from pathlib import Path

import pytest

from hotline.logs import JsonFormatter, TextFormatter, redact
from hotline.privacy import PhoneVault, mask_number, normalise_number


def test_rule8_number_is_stored_encrypted_hashed_and_masked(tmp_path: Path) -> None:
    vault = PhoneVault.from_key_file(tmp_path / "phone.key")
    p = vault.protect("138-0013-8000")
    assert "13800138000" not in p.encrypted
    assert p.masked == "138****8000"
    assert vault.reveal(p.encrypted) == "13800138000"
    assert p.digest == vault.digest("13800138000") == vault.digest(" 138 0013 8000 ")
    assert len(p.digest) == 64


def test_rule8_key_file_is_private_and_reused(tmp_path: Path) -> None:
    key = tmp_path / "phone.key"
    a = PhoneVault.from_key_file(key)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    b = PhoneVault.from_key_file(key)
    assert b.reveal(a.protect("02512345678").encrypted) == "02512345678"
    other = PhoneVault(os.urandom(32))
    with pytest.raises(ValueError):
        other.reveal(a.protect("02512345678").encrypted)
    assert other.digest("02512345678") != a.digest("02512345678")


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13800138000", "138****8000"),
        ("12345", "*2345"),
        # issue 8 defect 9: an 8-digit landline kept 7 digits (651*3456); now its middle half
        ("65123456", "65****56"),
        ("6512345", "6****45"),
        ("0755-6512-3456", "075*****3456"),
        ("110", "***"),
        ("", ""),
        ("+8613800138000", "+86*******8000"),
    ],
)
def test_mask_number(raw: str, masked: str) -> None:
    assert mask_number(raw) == masked


def test_normalise_keeps_leading_plus() -> None:
    assert normalise_number(" +86 138-0013-8000") == "+8613800138000"


def test_rule8_logs_never_carry_a_full_number_or_identity() -> None:
    text = "caller 13800138000 id 11010519491231002X dialled 12345"
    out = redact(text)
    assert "13800138000" not in out and "138****8000" in out
    assert "11010519491231002X" not in out
    assert "12345" in out  # the hotline's own short number is not personal data
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "call from %s", ("13912345678",), None
    )
    record.caller = "13912345678"
    line = json.loads(JsonFormatter().format(record))
    assert "13912345678" not in json.dumps(line)
    assert line["caller"] == "139****5678"


# Issue 8 defect 9 (DOMAIN.md rule 8): each of these carried a full number into the log.
@pytest.mark.parametrize(
    "text",
    [
        "电话13812345678",
        "caller 138-1234-5678 rang",
        "caller 138 1234 5678 rang",
        "tel_13812345678",
        "a13812345678",
        "number is 13812345678.",
        "+86 138 1234 5678",
        "008613812345678",
        "GET /api/v1/x?number=13812345678&b=1",
        "/api/v1/numbers/13812345678/calls",
        "landline 0755-65123456",
        "landline (0755) 6512-3456",
        "landline 075565123456",
        "local 65123456 or 6512-3456",
        "固话65123456。",
    ],
)
def test_rule8_redaction_catches_numbers_however_written(text: str) -> None:
    out = redact(text)
    compact = re.sub(r"[\s\-()]", "", out)
    assert "13812345678" not in compact and "65123456" not in compact, out
    assert "*" in out


@pytest.mark.parametrize(
    "text",
    [
        "call 1795303917.0 queued",  # an Asterisk linkedid
        "case GD-2026-0042 closed",
        "at 2026-10-01T09:00:00+08:00",
        "dialled 12345",
        "took 1700000000123 ms",
        "ip 127.0.0.1:5038",
    ],
)
def test_redaction_leaves_what_is_not_a_number(text: str) -> None:
    assert redact(text) == text


def test_rule8_nested_fields_are_redacted() -> None:
    """aiohttp's access log puts headers in a nested ``request_header`` dict (issue 8 defect 9)."""
    from multidict import CIMultiDict

    record = logging.LogRecord("aiohttp.access", logging.INFO, __file__, 1, "%s", ("x",), None)
    record.request_header = CIMultiDict(
        {"Referer": "http://127.0.0.1/?tel=13812345678", "User-Agent": "bot 电话13912345678"}
    )
    record.path = "/calls/13712345678"
    record.numbers = ["13612345678", {"deep": ("13512345678",)}]
    record.as_int = 13412345678
    record.count = 3
    line = JsonFormatter().format(record)
    for full in ("13812345678", "13912345678", "13712345678", "13612345678", "13512345678",
                 "13412345678"):
        assert full not in line
    entry = json.loads(line)
    assert entry["request_header"]["Referer"] == "http://127.0.0.1/?tel=138****5678"
    assert entry["count"] == 3
    text_line = TextFormatter("%(message)s").format(record)
    assert "13812345678" not in text_line and "13412345678" not in text_line
