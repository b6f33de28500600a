"""The dialplan contract (issue 9): every channel variable the dialplan files and the product
code exchange is named once, in hotline/channel_vars.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from hotline import channel_vars

ROOT = Path(__file__).resolve().parents[2]
CONF_FILES = [*sorted((ROOT / "ivr" / "dialplans").glob("*.conf")),
              ROOT / "asterisk_conf" / "extensions.conf"]
PRODUCT = ["ami", "callback_scheduler", "forwarder", "http_api", "ivr", "sandbox", "service",
           "storage"]
_VARIABLE = re.compile(r"\b(?:HOTLINE_[A-Z_]+|CALLBACK_[A-Z_]+|SURVEY_RESULT)\b")


def _contract() -> set[str]:
    return {
        value for name, value in vars(channel_vars).items()
        if name.isupper() and not name.startswith("AGI_ERROR_") and isinstance(value, str)
    }


def test_every_variable_in_the_dialplans_is_in_the_contract() -> None:
    used = {m for conf in CONF_FILES for m in _VARIABLE.findall(conf.read_text("utf-8"))}
    assert used, "the dialplan files name no variable: the pattern is wrong"
    assert used - _contract() == set()


def test_every_dialplan_file_points_to_the_contract() -> None:
    for conf in CONF_FILES:
        text = conf.read_text("utf-8")
        if _VARIABLE.search(text):
            assert "hotline/channel_vars.py" in text, conf.name


def test_the_product_code_names_no_contract_variable_outside_the_contract() -> None:
    contract = _contract()
    offenders = []
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Constant) and node.value in contract:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert offenders == []
