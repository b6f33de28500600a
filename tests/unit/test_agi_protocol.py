"""The AGI wire protocol (ivr.agi.protocol): every reply format of res/res_agi.c in Asterisk 22
that the survey meets, the environment block, and quoting that parse_args reads back intact."""

from __future__ import annotations

import pytest

from ivr.agi import protocol as p
from ivr.agi.simulated import environment_lines, split_args

# ----------------------------------------------------------------------------- environment


def test_fastagi_environment_with_args_and_script() -> None:
    env = p.parse_environment(
        environment_lines(route="survey?lang=zh", args=["first arg", ""], extra={"accountcode": ""})
    )
    assert env.network
    assert env.route == "survey"
    assert env.query == {"lang": "zh"}
    assert env.uniqueid == "1700000000.7"
    assert env.callerid == "13800138000"
    assert env.args == ("first arg", "")
    assert env.values["accountcode"] == ""


def test_unknown_placeholders_read_as_none() -> None:
    """res_agi writes "unknown" for an absent caller id; it is not a number."""
    env = p.parse_environment(environment_lines(callerid="unknown"))
    assert env.callerid is None
    assert env.get("rdnis") is None


def test_route_strips_slashes_and_missing_script_is_empty() -> None:
    assert p.parse_environment(environment_lines(route="/survey/")).route == "survey"
    classic = p.parse_environment(environment_lines(route=None))
    assert classic.route == "" and not classic.network


def test_environment_value_keeps_inner_spaces_and_colons() -> None:
    env = p.parse_environment(["agi_channel: Local/s@ctx-0001;1", "agi_arg_1:  two  spaces", ""])
    assert env.channel == "Local/s@ctx-0001;1"
    assert env.args == (" two  spaces",)


def test_environment_requires_the_blank_line_and_agi_names() -> None:
    with pytest.raises(p.AgiProtocolError):
        p.parse_environment(["agi_channel: x"])
    with pytest.raises(p.AgiProtocolError):
        p.parse_environment(["GET DATA x", ""])


def test_hangup_during_environment_is_remembered() -> None:
    parser = p.EnvironmentParser()
    for line in ["agi_uniqueid: 1.1", "HANGUP", ""]:
        parser.feed(line)
    assert parser.hangup_seen and parser.result().uniqueid == "1.1"


# ----------------------------------------------------------------------------- replies


@pytest.mark.parametrize(
    ("line", "code", "result", "data", "endpos"),
    [
        ("200 result=0", 200, "0", None, None),
        ("200 result=1 (1700000000.5)", 200, "1", "1700000000.5", None),
        ("200 result=53 endpos=12000", 200, "53", None, 12000),
        ("200 result=-1 endpos=0", 200, "-1", None, 0),
        ("200 result= (timeout)", 200, "", "timeout", None),
        ("200 result=", 200, "", None, None),
        ("200 result=-1", 200, "-1", None, None),
        ("200 result=35 (dtmf) endpos=40000", 200, "35", "dtmf", 40000),
        ("200 result=0 (timeout) endpos=480000", 200, "0", "timeout", 480000),
        ("200 result=-1 (hangup) endpos=24000", 200, "-1", "hangup", 24000),
        ("200 result=-1 (writefile)", 200, "-1", "writefile", None),
        ("200 result=1 (value (with) parens)", 200, "1", "value (with) parens", None),
        ("510 Invalid or unknown command", 510, "", "Invalid or unknown command", None),
        (
            "511 Command Not Permitted on a dead channel or intercept routine", 511, "",
            "Command Not Permitted on a dead channel or intercept routine", None,
        ),
        ("520 Invalid command syntax.  Proper usage not available.", 520, "", None, None),
    ],
)
def test_reply_lines(
    line: str, code: int, result: str, data: str | None, endpos: int | None
) -> None:
    reply = p.parse_reply(line + "\n")
    assert (reply.code, reply.result, reply.data, reply.endpos) == (code, result, data, endpos)


def test_multiline_520_usage_block() -> None:
    parser = p.ReplyParser()
    lines = [
        "520-Invalid command syntax.  Proper usage follows:",
        " Usage: GET DATA <file to be streamed> [timeout] [maxdigits]",
        "",
        "520 End of proper usage.",
    ]
    events = [parser.feed(line) for line in lines]
    assert events[:3] == [None, None, None]
    last = events[3]
    assert isinstance(last, p.Reply) and last.code == 520
    assert "Usage: GET DATA" in (last.data or "")


def test_hangup_line_may_come_before_the_reply_and_twice() -> None:
    parser = p.ReplyParser()
    assert parser.feed("HANGUP\n") is p.HANGUP
    assert parser.feed("HANGUP\n") is p.HANGUP
    reply = parser.feed("511 Command Not Permitted on a dead channel or intercept routine\n")
    assert isinstance(reply, p.Reply) and reply.code == 511


def test_garbage_is_a_protocol_error() -> None:
    with pytest.raises(p.AgiProtocolError):
        p.ReplyParser().feed("hello there")
    with pytest.raises(p.AgiProtocolError):
        p.ReplyParser().feed("200 something odd")


# ----------------------------------------------------------------------------- typed results


@pytest.mark.parametrize(
    ("line", "kind", "digits"),
    [
        ("200 result=4", p.GetDataKind.DIGITS, "4"),
        ("200 result=*", p.GetDataKind.DIGITS, "*"),
        ("200 result= (timeout)", p.GetDataKind.TIMEOUT, ""),
        ("200 result=12 (timeout)", p.GetDataKind.DIGITS, "12"),
        ("200 result=", p.GetDataKind.DIGITS, "#"),  # '#' ends input: empty, no (timeout)
        ("200 result=-1", p.GetDataKind.FAILED, ""),
    ],
)
def test_get_data_results(line: str, kind: p.GetDataKind, digits: str) -> None:
    assert p.interpret_get_data(p.parse_reply(line)) == p.GetDataResult(kind, digits)


def test_stream_file_results() -> None:
    assert p.interpret_stream_file(p.parse_reply("200 result=0 endpos=16000")) == p.StreamResult(
        endpos=16000
    )
    assert p.interpret_stream_file(p.parse_reply("200 result=50 endpos=800")).digit == "2"
    assert p.interpret_stream_file(p.parse_reply("200 result=-1 endpos=0")).failed


@pytest.mark.parametrize(
    ("line", "end", "endpos", "digit"),
    [
        ("200 result=35 (dtmf) endpos=40000", p.RecordEnd.KEY, 40000, "#"),
        ("200 result=0 (timeout) endpos=480000", p.RecordEnd.TIMEOUT, 480000, None),
        ("200 result=-1 (hangup) endpos=24000", p.RecordEnd.HANGUP, 24000, None),
        ("200 result=-1 (writefile)", p.RecordEnd.FAILED, 0, None),
        ("200 result=35 (randomerror) endpos=0", p.RecordEnd.KEY, 0, "#"),
        ("200 result=-1 (randomerror) endpos=0", p.RecordEnd.FAILED, 0, None),
        ("200 result=-1 (waitfor) endpos=800", p.RecordEnd.FAILED, 800, None),
    ],
)
def test_record_file_results(line: str, end: p.RecordEnd, endpos: int, digit: str | None) -> None:
    result = p.interpret_record_file(p.parse_reply(line))
    assert (result.end, result.endpos, result.digit) == (end, endpos, digit)


# ----------------------------------------------------------------------------- commands


@pytest.mark.parametrize(
    "value",
    ["plain", "", "two words", 'say "hi"', "back\\slash", "tab\there", "${CHANNEL(linkedid)}",
     "中文 提示", "trailing\\", '"'],
)
def test_quoting_survives_asterisks_parse_args(value: str) -> None:
    line = p.set_variable("X", value).line()
    assert split_args(line) == ["SET", "VARIABLE", "X", value]


def test_line_breaks_cannot_be_sent() -> None:
    with pytest.raises(ValueError):
        p.quote_arg("a\nb")


def test_command_lines() -> None:
    assert p.get_data("hotline/m", 6000, 1).line() == "GET DATA hotline/m 6000 1"
    assert p.stream_file("hotline/x", "0123456789*#").line() == "STREAM FILE hotline/x 0123456789*#"
    assert p.stream_file("hotline/x").line() == 'STREAM FILE hotline/x ""'
    assert p.record_file("hotline/recordings/1", "wav", "#", 60000, silence_seconds=5).line() == (
        "RECORD FILE hotline/recordings/1 wav # 60000 0 BEEP s=5"
    )
    assert p.record_file("r", "wav", "#", 1000, beep=False).line() == "RECORD FILE r wav # 1000 0"
    assert p.set_variable("SURVEY_RESULT", "4").line() == "SET VARIABLE SURVEY_RESULT 4"
    assert p.get_variable("HOTLINE_AGENT").line() == "GET VARIABLE HOTLINE_AGENT"
    assert p.get_full_variable("${CHANNEL(linkedid)}").line() == (
        "GET FULL VARIABLE ${CHANNEL(linkedid)}"
    )
    assert p.say_digits("123").line() == 'SAY DIGITS 123 ""'
    assert p.verbose("survey started\nnow", 3).line() == 'VERBOSE "survey started now" 3'
    assert p.exec_app("Playback", "hotline/x,noanswer").line() == "EXEC Playback hotline/x,noanswer"
    assert p.channel_status().encode() == b"CHANNEL STATUS\n"
