"""Pacing caps (DOMAIN.md rule 8, trunk capacity) and the all-or-nothing CSV import."""

from __future__ import annotations

import pytest

from callback_scheduler import csvimport
from callback_scheduler.pacing import Limits, Load, Pacer, Request


def req(campaign: int = 1, trunk: str = "carrier", cap: int | None = None,
        cpm: int = 100) -> Request:
    return Request(campaign_id=campaign, trunk=trunk, campaign_max_concurrent=cap,
                   calls_per_minute=cpm)


def test_overall_cap_counts_calls_already_under_way() -> None:
    load = Load(overall=2)
    load.per_trunk["carrier"] = 2
    pacer = Pacer(Limits(overall=3, per_trunk={"carrier": 10}), load)
    assert pacer.admit(req())
    assert pacer.full
    assert not pacer.admit(req())
    assert pacer.refusal(req()) == "overall simultaneous-call cap reached"


def test_per_trunk_cap() -> None:
    pacer = Pacer(Limits(overall=10, per_trunk={"a": 1, "b": 5}), Load())
    assert pacer.admit(req(trunk="a"))
    assert not pacer.admit(req(trunk="a"))
    assert pacer.admit(req(trunk="b"))
    assert pacer.refusal(req(trunk="zz")) == "trunk 'zz' is not configured"


def test_per_campaign_cap_and_calls_per_minute() -> None:
    pacer = Pacer(Limits(overall=10, per_trunk={"carrier": 10}), Load())
    assert pacer.admit(req(campaign=1, cap=1))
    assert not pacer.admit(req(campaign=1, cap=1))
    assert pacer.admit(req(campaign=2, cpm=2))
    assert pacer.admit(req(campaign=2, cpm=2))
    assert pacer.refusal(req(campaign=2, cpm=2)) == "campaign calls-per-minute reached"
    # a refused call is not counted
    assert pacer.load.overall == 3


# ------------------------------------------------------------------------------ CSV
def test_csv_good_file_with_bom_and_blank_lines() -> None:
    data = "\ufeffcase_number,number\r\nA-1,138 0013 8000\r\n\r\nA-2,\r\n".encode()
    rows = csvimport.parse(data)
    assert [(r.line, r.case_number, r.number) for r in rows] == [
        (2, "A-1", "13800138000"), (4, "A-2", None)]


def test_csv_gb18030_is_accepted() -> None:
    rows = csvimport.parse("case_number,number\n工单-1,13800138000\n".encode("gb18030"))
    assert rows[0].case_number == "工单-1"


def test_csv_every_bad_row_is_reported_with_its_line_and_nothing_is_returned() -> None:
    data = (
        "case_number,linkedid,number\n"
        "A-1,,13800138000\n"  # good
        "A-2,,12ab\n"  # line 3: bad number
        ",,13800138001\n"  # line 4: neither case nor call
        "A-1,,13800138002\n"  # line 5: duplicate
        'A-3,"multi\nline",13800138003\n'  # line 6: both given (spans lines 6-7)
        "A-4,,1,extra\n"  # line 8: too many fields
    )
    with pytest.raises(csvimport.ImportRejected) as err:
        csvimport.parse(data)
    assert [(e.line, e.message) for e in err.value.errors] == [
        (3, "number is not a telephone number"),
        (4, "give exactly one of case_number and linkedid"),
        (5, "duplicate of line 2"),
        (6, "give exactly one of case_number and linkedid"),
        (8, "expected 3 fields, found 4"),
    ]
    assert "12ab" not in str(err.value)  # rule 8: values are not echoed


@pytest.mark.parametrize(
    ("data", "message"),
    [("", "the file is empty"), ("phone\n1\n", "header must name"),
     ("number\n13800138000\n", "needs a case_number or a linkedid"),
     ("case_number\n\n", "no data rows")],
)
def test_csv_bad_files(data: str, message: str) -> None:
    with pytest.raises(csvimport.ImportRejected, match=message):
        csvimport.parse(data)


def test_rule8_csv_without_header_does_not_echo_its_first_row() -> None:
    """Issue 8 defect 9: the 422 quoted the first line, a citizen's full number."""
    with pytest.raises(csvimport.ImportRejected) as err:
        csvimport.parse("GD-2026-0042,13812345678\n")
    assert "13812345678" not in str(err.value)
    assert "header row missing" in str(err.value)
    with pytest.raises(csvimport.ImportRejected, match="unknown 'phone'"):
        csvimport.parse("case_number,phone\nGD-1,13812345678\n")
