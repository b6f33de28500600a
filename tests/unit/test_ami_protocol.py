"""The AMI wire format: parsing (incremental, banner, repeated keys, colons in values, Command
output) and encoding (repeated headers, and refusing header injection)."""

from __future__ import annotations

import pytest

from ami.protocol import Event, Message, Parser, ProtocolError, Response, encode

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def test_banner_then_messages_in_one_chunk() -> None:
    parser = Parser()
    data = BANNER + (
        b"Response: Success\r\nActionID: a.1\r\nMessage: Authentication accepted\r\n\r\n"
        b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
    )
    first, second = parser.feed(data)
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert isinstance(first, Response) and first.ok and first.action_id == "a.1"
    assert first.message == "Authentication accepted"
    assert isinstance(second, Event) and second.name == "FullyBooted"
    assert second["status"] == "Fully Booted"  # keys compare case-insensitively
    assert not parser.pending


def test_split_at_every_byte_boundary() -> None:
    data = BANNER + b"Event: Hangup\r\nChannel: Local/s@x-0001;1\r\nCause: 16\r\n\r\n"
    for cut in range(1, len(data)):
        parser = Parser()
        messages = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert [m.as_dict() for m in messages] == [
            {"Event": "Hangup", "Channel": "Local/s@x-0001;1", "Cause": "16"}
        ], cut


def test_values_keep_colons_and_spaces() -> None:
    (msg,) = Parser(expect_banner=False).feed(
        b"Event: VarSet\r\nValue: agi://127.0.0.1:4573/survey\r\nData:  two leading\r\n"
        b"Empty:\r\n\r\n"
    )
    assert msg["Value"] == "agi://127.0.0.1:4573/survey"
    assert msg["Data"] == " two leading"  # only the separator's one space is removed
    assert msg["Empty"] == ""


def test_command_output_lines() -> None:
    (msg,) = Parser(expect_banner=False).feed(
        b"Response: Success\r\nActionID: 7\r\nMessage: Command output follows\r\n"
        b"Output: Channel              Location  State\r\nOutput: 0 active channels\r\n"
        b"Output: \r\n\r\n"
    )
    assert isinstance(msg, Response)
    assert msg.output == ["Channel              Location  State", "0 active channels", ""]


def test_legacy_follows_output() -> None:
    (msg,) = Parser(expect_banner=False).feed(
        b"Response: Follows\r\nPrivilege: Command\r\n"
        b"Channel  Location   State\r\nSIP/1-01  s@default:1  Up\r\n--END COMMAND--\r\n\r\n"
    )
    assert isinstance(msg, Response) and msg.ok
    assert msg.output == ["Channel  Location   State", "SIP/1-01  s@default:1  Up"]


def test_repeated_keys_and_bare_lf() -> None:
    (msg,) = Parser(expect_banner=False).feed(
        b"Event: Newchannel\nChanVariable: A=1\nChanVariable: B=2\n\n"
    )
    assert msg.get_all("ChanVariable") == ["A=1", "B=2"]
    assert msg.get("chanvariable") == "A=1"
    assert "Missing" not in msg and msg.get("Missing") is None


def test_blank_lines_between_messages_are_ignored_and_unknown_kind_kept() -> None:
    messages = Parser(expect_banner=False).feed(b"\r\n\r\nPong: 1\r\n\r\n")
    assert messages == [Message((("Pong", "1"),))]


def test_no_banner_is_fine() -> None:
    parser = Parser()
    (msg,) = parser.feed(b"Event: X\r\n\r\n")
    assert parser.banner is None and isinstance(msg, Event)


def test_event_list_markers() -> None:
    start, item, done = Parser(expect_banner=False).feed(
        b"Response: Success\r\nEventList: start\r\nActionID: 1\r\n\r\n"
        b"Event: CoreShowChannel\r\nActionID: 1\r\n\r\n"
        b"Event: CoreShowChannelsComplete\r\nEventList: Complete\r\nListItems: 1\r\n\r\n"
    )
    assert (start.event_list, item.event_list, done.event_list) == ("start", None, "complete")


def test_encode_repeats_lists_and_formats_scalars() -> None:
    data = encode({
        "Action": "Originate", "Channel": "Local/s@x", "Priority": 1, "Async": True,
        "Variable": ["A=1", "B=x:y"], "Account": None,
    })
    assert data == (
        b"Action: Originate\r\nChannel: Local/s@x\r\nPriority: 1\r\nAsync: true\r\n"
        b"Variable: A=1\r\nVariable: B=x:y\r\n\r\n"
    )
    (back,) = Parser(expect_banner=False).feed(data)
    assert back.get_all("Variable") == ["A=1", "B=x:y"]


def test_encode_utf8() -> None:
    data = encode({"Action": "Setvar", "Value": "非常满意"})
    assert "非常满意".encode() in data


@pytest.mark.parametrize(
    "action",
    [
        {"Action": "Originate", "CallerID": "13800000000\r\nAction: Command"},
        {"Action": "Setvar", "Value": "a\nb"},
        {"Action": "Setvar", "Variable": ["ok", "bad\r"]},
        {"Action": "Ping", "Bad:Key": "1"},
        {"Action": "Ping", "": "1"},
        {"Channel": "Local/s@x"},  # no Action
    ],
)
def test_encode_refuses_injection_and_malformed(action: dict[str, str]) -> None:
    with pytest.raises(ProtocolError):
        encode(action)
