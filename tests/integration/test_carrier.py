"""The carrier simulator as the 回访 dialer sees it: the hotline dials citizens' numbers over the
PJSIP trunk and each number behaves as its digits say (sandbox/carrier.py). Checks, on real
Asterisk, the AMI outcome of each behaviour (OriginateResponse Reason and the Hangup cause)
and that a citizen's keys arrive as DTMF on the hotline's channel; plus the numbering scheme's
encoder and decoder without Asterisk."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

import pytest

from ami.client import AmiClient
from ami.protocol import Event
from sandbox.carrier import (
    Behaviour,
    Carrier,
    HangUp,
    Pause,
    Press,
    keys_number,
    number,
    parse_number,
)
from sandbox.instance import AsteriskSandbox

# ----------------------------------------------------------------------------- the scheme


@pytest.mark.parametrize("steps", [
    [Press("4", 5), Press("2", 3)],
    [Press("1", 0), Press("9", 8)],
    [Press("3", 9)], [Press("3", 11)], [Press("3", 12)], [Press("5", 30)],
    [Press("*", 1), Press("#", 1), Press("*", 6)],
    [Pause(4), Pause(13), HangUp()],
])
def test_numbers_decode_to_the_steps_they_encode(steps: list[Press | Pause | HangUp]) -> None:
    parsed = parse_number(keys_number(steps))
    assert parsed.behaviour is Behaviour.KEYS

    def timeline(items: tuple[Press | Pause | HangUp, ...] | list[Press | Pause | HangUp]
                 ) -> list[tuple[int, str]]:
        """(second, what) of each key or hang-up: pauses may be split differently."""
        now, out = 0, []
        for item in items:
            if isinstance(item, Pause):
                now += item.seconds
            elif isinstance(item, Press):
                now += item.after
                out.append((now, item.key))
            else:
                out.append((now, "hangup"))
        return out

    assert timeline(parsed.steps) == timeline(steps)


def test_scheme_examples_from_the_documentation() -> None:
    assert keys_number([Press("2", 5), Press("4", 3)]) == "139015234"
    assert number(Behaviour.BUSY) == "13902"
    assert number(Behaviour.BUSY, tag="930042") == "13902930042"
    assert parse_number("13902930042").behaviour is Behaviour.BUSY
    assert keys_number(["1"], tag="77") == "13901119377"  # 93: end of script, then a tag
    assert parse_number("13901119377").steps == (Press("1", 1),)
    late = parse_number(keys_number(["1"], ring_seconds=3))
    assert (late.behaviour, late.ring_seconds, late.steps) == (
        Behaviour.LATE_ANSWER, 3, (Press("1", 1),))


def test_numbers_stay_telephone_numbers() -> None:
    with pytest.raises(ValueError, match="at most 20"):
        keys_number([Press("1", 1)] * 8)
    with pytest.raises(ValueError):
        keys_number([Press("*", 3)])  # * and # come 1 s or 5+ s after the step before
    with pytest.raises(ValueError):
        keys_number([Press("A")])
    with pytest.raises(ValueError):
        parse_number("12345")


# ----------------------------------------------------------------------------- on Asterisk


@dataclass
class Attempt:
    response: Event
    hangup: Event | None


async def _dial(ami: AmiClient, citizen: str, *, ring_ms: int = 4000,
                context: str | None = None) -> Attempt:
    """Originate from the hotline to ``citizen`` over the trunk, as the dialer does."""
    channel_id = f"carrier-test-{secrets.token_hex(4)}"
    target = ({"Context": context, "Exten": "s", "Priority": 1} if context
              else {"Application": "Wait", "Data": "2"})
    with ami.events("OriginateResponse") as responses, ami.events("Hangup") as hangups:
        await ami.send({"Action": "Originate", "Channel": f"PJSIP/{citizen}@carrier",
                        "ChannelId": channel_id, "Timeout": ring_ms, "Async": True,
                        "CallerID": "<12345>", "ActionID": channel_id, **target})
        async with asyncio.timeout(ring_ms / 1000 + 15):
            response = await anext(e async for e in responses if e.action_id == channel_id)
            hangup = await anext(e async for e in hangups if e.get("Uniqueid") == channel_id)
    return Attempt(response, hangup)


@pytest.mark.asterisk
@pytest.mark.parametrize(("behaviour", "reason", "cause"), [
    # chan_pjsip queues no BUSY/CONGESTION control frame for a 486/503, so the Reason stays 0
    # ("other") for those; the Hangup event's Q.850 cause tells them apart
    (Behaviour.BUSY, "0", "17"),
    (Behaviour.NO_ANSWER, "3", "19"),
    (Behaviour.CONGESTION, "0", "34"),
    (Behaviour.UNALLOCATED, "0", "1"),
    (Behaviour.HANG_UP, "4", "16"),
    (Behaviour.SILENT, "4", None),  # answered and silent; our side hangs up after Wait(2)
])
async def test_each_behaviour_gives_the_dialer_its_outcome(
    asterisk: AsteriskSandbox, carrier: Carrier, ami: AmiClient,
    behaviour: Behaviour, reason: str, cause: str | None,
) -> None:
    attempt = await _dial(ami, number(behaviour, tag=secrets.choice("0123456789")),
                          ring_ms=2500)
    assert attempt.response["Reason"] == reason, attempt.response
    assert attempt.response["Response"] == ("Success" if reason == "4" else "Failure")
    assert attempt.hangup is not None
    if cause is not None:
        assert attempt.hangup["Cause"] == cause, attempt.hangup


@pytest.mark.asterisk
async def test_late_answer_rings_first(
    asterisk: AsteriskSandbox, carrier: Carrier, ami: AmiClient
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    attempt = await _dial(ami, keys_number([], ring_seconds=2), ring_ms=10000)
    assert attempt.response["Reason"] == "4"
    assert loop.time() - started >= 2


@pytest.mark.asterisk
async def test_citizen_keys_arrive_on_the_hotline_as_dtmf(
    asterisk: AsteriskSandbox, carrier: Carrier, ami: AmiClient
) -> None:
    """The answered call runs the sandbox's probe AGI (sandbox-test.conf) on the hotline's
    channel, which collects what the citizen keys until the citizen hangs up."""
    settings = asterisk.settings
    assert settings is not None
    digits: list[str] = []
    done = asyncio.Event()

    async def probe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await reader.readline()).strip():  # the AGI environment
                pass
            while True:
                writer.write(b"WAIT FOR DIGIT 3000\n")
                await writer.drain()
                reply = (await reader.readline()).decode().strip()
                if not reply.startswith("200 result="):  # HANGUP, 511 or EOF
                    return
                code = int(reply.split("=", 1)[1].split()[0])
                if code < 0:
                    return
                if code > 0:
                    digits.append(chr(code))
        finally:
            writer.close()
            done.set()

    server = await asyncio.start_server(probe, settings.fastagi_host, settings.fastagi_port)
    try:
        citizen = keys_number([Press("4", 1), Press("2", 0), Press("#", 1), Press("*", 1),
                               Press("0", 0), HangUp()])
        attempt = await _dial(ami, citizen, context="sandbox-test")
        async with asyncio.timeout(10):
            await done.wait()
    finally:
        server.close()
        await server.wait_closed()
    assert attempt.response["Reason"] == "4"
    assert "".join(digits) == "42#*0"
