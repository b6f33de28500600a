"""Citizens' numbers are confidential (DOMAIN.md rule 8): encrypted at rest, masked in logs."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from hotline.logs import JsonFormatter, redact
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
