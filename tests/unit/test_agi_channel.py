"""The AGI session object (ivr.agi.channel): hang-ups in every form Asterisk delivers them (HANGUP
line before the reply or twice, 511, EOF at any moment), timeouts, and telling a missing sound
file from a hang-up (both answer -1)."""

from __future__ import annotations

import asyncio

import pytest

from ivr.agi import protocol as p
from ivr.agi.channel import AgiChannel, AgiCommandError, AgiTimeout, ChannelHungUp, MediaError
from ivr.agi.simulated import environment_lines, memory_channel


def scripted(*replies: list[str] | None) -> tuple[list[str], object]:
    """A responder answering the n-th command with the n-th reply (None: EOF)."""
    sent: list[str] = []
    queue = list(replies)

    def respond(line: str) -> list[str] | None:
        sent.append(line)
        return queue.pop(0)

    return sent, respond


async def ready(responder: object, **kw: float) -> AgiChannel:
    channel, _ = memory_channel(responder, **kw)  # type: ignore[arg-type]
    await channel.read_environment()
    return channel


async def test_reads_environment_then_gets_a_plain_reply() -> None:
    sent, respond = scripted(["200 result=1 (1700000000.5)"])
    channel = await ready(respond)
    assert channel.env.uniqueid == "1700000000.7"
    assert await channel.get_full_variable("${CHANNEL(linkedid)}") == "1700000000.5"
    assert sent == ["GET FULL VARIABLE ${CHANNEL(linkedid)}"]


async def test_hangup_line_before_511_raises_and_is_remembered() -> None:
    sent, respond = scripted(["HANGUP", "511 Command Not Permitted on a dead channel"])
    channel = await ready(respond)
    with pytest.raises(ChannelHungUp):
        await channel.get_data("hotline/survey-menu", 6000)
    assert channel.hung_up
    # nothing more is sent for commands a dead channel refuses
    with pytest.raises(ChannelHungUp):
        await channel.stream_file("hotline/survey-thanks")
    assert len(sent) == 1


async def test_hangup_twice_then_dead_permitted_command_still_answers() -> None:
    """res_agi sends HANGUP when it notices, and again when the AGI ends; variables can still be
    read and set on the dead channel (a hang-up handler relies on this)."""
    sent, respond = scripted(["200 result=4", "HANGUP"], ["HANGUP", "200 result=1"])
    channel = await ready(respond)
    result = await channel.get_data("hotline/survey-menu", 6000)
    assert result.digits == "4"
    assert not channel.hung_up  # HANGUP after the reply is read with the next command
    await channel.set_variable("SURVEY_RESULT", "4")
    assert channel.hung_up
    assert sent[-1] == "SET VARIABLE SURVEY_RESULT 4"


async def test_eof_at_any_moment_is_a_hangup() -> None:
    _, respond = scripted(None)
    channel = await ready(respond)
    with pytest.raises(ChannelHungUp):
        await channel.get_variable("HOTLINE_AGENT")
    assert channel.hung_up
    with pytest.raises(ChannelHungUp):
        await channel.set_variable("X", "1")  # the session is over for every command


async def test_eof_during_the_environment() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"agi_network: yes\nagi_uniqueid: 1.2\n")
    reader.feed_eof()
    channel = AgiChannel(reader, _NullWriter(), read_timeout=1)
    with pytest.raises(ChannelHungUp):
        await channel.read_environment()


async def test_no_reply_times_out() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data("\n".join(environment_lines()).encode() + b"\n")
    channel = AgiChannel(reader, _NullWriter(), read_timeout=0.05)
    await channel.read_environment()
    with pytest.raises(AgiTimeout):
        await channel.get_variable("X")
    with pytest.raises(ChannelHungUp):  # out of step: the session is not reused
        await channel.get_variable("X")


async def test_a_shorter_deadline_after_a_longer_one_still_times_out_on_time() -> None:
    """The read deadline's one timer per session is moved earlier when a read must end sooner
    than the one before (a GET DATA waits the digit timeout on top of the read timeout)."""
    reader = asyncio.StreamReader()
    reader.feed_data("\n".join(environment_lines()).encode() + b"\n")
    channel = AgiChannel(reader, _NullWriter(), read_timeout=0.05)
    await channel.read_environment()
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, reader.feed_data, b"200 result=2\n")
    assert (await channel.get_data("hotline/survey-menu", 60_000)).digits == "2"
    started = loop.time()
    with pytest.raises(AgiTimeout):
        await channel.get_variable("X")
    assert loop.time() - started < 5  # not the GET DATA's 60 s


async def test_replies_slower_than_the_first_deadline_but_each_in_time_are_read() -> None:
    """A session outlives its first read deadline: the timer waits again for the current one."""
    reader = asyncio.StreamReader()
    reader.feed_data("\n".join(environment_lines()).encode() + b"\n")
    channel = AgiChannel(reader, _NullWriter(), read_timeout=0.1)
    await channel.read_environment()
    loop = asyncio.get_running_loop()
    for _ in range(4):  # 4 × 0.06 s: past the first read's deadline, every reply in time
        loop.call_later(0.06, reader.feed_data, b"200 result=1 (v)\n")
        assert await channel.get_full_variable("${X}") == "v"
    await channel.close()


async def test_510_and_520_are_command_errors_not_hangups() -> None:
    _, respond = scripted(
        ["510 Invalid or unknown command"],
        ["520-Invalid command syntax.  Proper usage follows:", " Usage: GET DATA <file>",
         "520 End of proper usage."],
        ["200 result=1"],
    )
    channel = await ready(respond)
    with pytest.raises(AgiCommandError) as unknown:
        await channel.execute(p.Command("FROB"))
    assert unknown.value.reply.code == 510
    with pytest.raises(AgiCommandError) as usage:
        await channel.execute(p.Command("GET DATA"))
    assert usage.value.reply.code == 520 and "Usage: GET DATA" in (usage.value.reply.data or "")
    await channel.set_variable("X", "1")  # the stream is still in step
    assert not channel.hung_up


async def test_get_data_minus_one_on_live_channel_is_a_missing_prompt() -> None:
    """GET DATA answers -1 for a missing file as for a hang-up; CHANNEL STATUS tells them apart."""
    sent, respond = scripted(["200 result=-1"], ["200 result=6"])
    channel = await ready(respond)
    with pytest.raises(MediaError):
        await channel.get_data("hotline/nope", 6000)
    assert sent[1] == "CHANNEL STATUS"
    assert not channel.hung_up


async def test_get_data_minus_one_then_hangup_is_a_hangup() -> None:
    _, respond = scripted(["200 result=-1"], ["HANGUP", "511 Command Not Permitted"])
    channel = await ready(respond)
    with pytest.raises(ChannelHungUp):
        await channel.get_data("hotline/survey-menu", 6000)
    assert channel.hung_up


async def test_get_data_minus_one_with_hangup_already_seen_does_not_probe() -> None:
    sent, respond = scripted(["HANGUP", "200 result=-1"])
    channel = await ready(respond)
    with pytest.raises(ChannelHungUp):
        await channel.get_data("hotline/survey-menu", 6000)
    assert sent == ["GET DATA hotline/survey-menu 6000 1"]


async def test_stream_file_reports_the_barge_in_key() -> None:
    _, respond = scripted(["200 result=52 endpos=4000"], ["200 result=0 endpos=16000"])
    channel = await ready(respond)
    assert (await channel.stream_file("hotline/survey-intro", p.ALL_KEYS)).digit == "4"
    assert (await channel.stream_file("hotline/survey-intro", p.ALL_KEYS)).digit is None


async def test_record_hangup_is_returned_with_the_length_not_raised() -> None:
    _, respond = scripted(["200 result=-1 (hangup) endpos=24000", "HANGUP"])
    channel = await ready(respond)
    result = await channel.record_file("hotline/recordings/x", "wav", "#", 60)
    assert result.end is p.RecordEnd.HANGUP and result.endpos == 24000
    assert channel.hung_up


async def test_record_failure_on_live_channel_is_reported() -> None:
    _, respond = scripted(["200 result=-1 (writefile)"])
    channel = await ready(respond)
    result = await channel.record_file("/nonexistent/x", "wav", "#", 60)
    assert result.end is p.RecordEnd.FAILED


async def test_is_alive() -> None:
    _, respond = scripted(["200 result=6"], ["511 Command Not Permitted"])
    channel = await ready(respond)
    assert await channel.is_alive()
    assert not await channel.is_alive()
    assert not await channel.is_alive()  # remembered, nothing sent


async def test_variable_not_set_is_none_and_empty_value_is_empty() -> None:
    _, respond = scripted(["200 result=0"], ["200 result=1 ()"])
    channel = await ready(respond)
    assert await channel.get_variable("HOTLINE_CASE_ID") is None
    assert await channel.get_variable("HOTLINE_CASE_ID") == ""


class _NullWriter:
    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass
