"""Test calls through the sandbox, shared by ``hotline call`` and the integration tests: a
simulated agent in the 12345 queue, a simulated citizen calling 12345 (through the carrier over
PJSIP, or as a Local channel on the hotline itself), and the outcome the service stored.

Simulated agents are queue members ``Local/<script>@sim-agent/n`` with the agent's 工号 as
member name (ivr/dialplans/sandbox-sim.conf): ``talk<N>`` answers, talks N seconds and hangs up;
``key<N>`` presses the *8 hand-off code after N seconds; ``hold<N>`` stays up to N seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select

from ami.client import AmiClient, AmiError
from sandbox.carrier import CITIZEN_CONTEXT, Carrier, Press
from storage.db import Database
from storage.models import Call, Rating, SurveyStatus

QUEUE = "hotline"
AGENT_CONTEXT = "sim-agent"
#: where a Local-channel caller enters (what from-carrier does for a call over the trunk)
INBOUND_CONTEXT = "hotline-inbound"
#: survey statuses after which nothing more happens to the call
FINAL = (SurveyStatus.RATED, SurveyStatus.NOT_RATED, SurveyStatus.DEFAULTED)
Via = Literal["carrier", "local"]


def talk(seconds: int) -> str:
    return f"talk{seconds}"


def key_handoff(seconds: int) -> str:
    return f"key{seconds}"


def hold(seconds: int) -> str:
    return f"hold{seconds}"


def agent_interface(script: str) -> str:
    # /n: the member half stays in the bridge (its DYNAMIC_FEATURES carry the *8 code)
    return f"Local/{script}@{AGENT_CONTEXT}/n"


@contextlib.asynccontextmanager
async def simulated_agent(ami: AmiClient, agent_id: str, script: str) -> AsyncIterator[str]:
    """A queue member acting as agent ``agent_id`` for the duration of the block."""
    interface = agent_interface(script)
    remove = {"Action": "QueueRemove", "Queue": QUEUE, "Interface": interface}
    await ami.send(remove, check=False)  # a leftover of an interrupted run
    await ami.send({"Action": "QueueAdd", "Queue": QUEUE, "Interface": interface,
                    "MemberName": agent_id})
    try:
        yield interface
    finally:
        with contextlib.suppress(AmiError):
            await ami.send(remove, check=False)


def survey_presses(keys: Sequence[str], *, first_after: int, gap: int = 3) -> list[Press]:
    """The citizen's presses: the first ``first_after`` seconds after the answer (into the
    survey's intro: the survey accepts a key while any prompt plays), then one every ``gap``
    seconds (each lands while the next menu is playing)."""
    return [Press(key, first_after if i == 0 else gap) for i, key in enumerate(keys)]


def random_caller_id() -> str:
    """A caller number that tells this test call apart from any other in the sandbox."""
    return "1380013" + "".join(secrets.choice("0123456789") for _ in range(4))


@dataclass(frozen=True)
class PlacedCall:
    linkedid: str
    uniqueid: str  # the caller's leg on the hotline
    caller_id: str


async def place_call(
    hotline_ami: AmiClient,
    citizen: str,
    *,
    via: Via = "carrier",
    carrier: Carrier | None = None,
    carrier_ami: AmiClient | None = None,
    caller_id: str | None = None,
) -> PlacedCall:
    """Call 12345 as the citizen ``citizen`` (a number of sandbox.carrier's scheme) and return
    once the call waits in the queue (its ``QueueCallerJoin`` gives the hotline's linkedid).
    Bound the wait with ``asyncio.timeout``."""
    caller_id = caller_id or random_caller_id()
    with hotline_ami.events("QueueCallerJoin") as joins:
        if via == "carrier":
            if carrier is None or carrier_ami is None:
                raise ValueError("a call via the carrier needs the carrier and its AMI client")
            await carrier.call_hotline(carrier_ami, citizen, caller_id=caller_id)
        else:
            # the ;2 half plays the citizen, the ;1 half is the caller's leg on the hotline
            await hotline_ami.send({
                "Action": "Originate", "Channel": f"Local/{citizen}@{CITIZEN_CONTEXT}/n",
                "Context": INBOUND_CONTEXT, "Exten": "s", "Priority": 1,
                "CallerID": f"<{caller_id}>", "Async": True,
            })
        async for event in joins:
            if event.get("CallerIDNum") == caller_id and event.get("Linkedid"):
                return PlacedCall(event["Linkedid"], event.get("Uniqueid") or "", caller_id)
    raise RuntimeError("the AMI event stream ended before the call reached the queue")


async def wait_gone(ami: AmiClient, linkedid: str, *, poll: float = 0.25) -> None:
    """Until no channel of the call is left (bound the wait with ``asyncio.timeout``): the
    rating is final before the caller has heard the thanks and hung up."""
    while True:
        channels = await ami.send_list({"Action": "CoreShowChannels"})
        if not any(c.get("Linkedid") == linkedid for c in channels):
            return
        await asyncio.sleep(poll)


@dataclass(frozen=True)
class Outcome:
    call: Call | None
    rating: Rating | None


async def stored_outcome(db: Database, linkedid: str) -> Outcome:
    async with db.sessions() as session:
        call = await session.scalar(select(Call).where(Call.linkedid == linkedid))
        rating = None
        if call is not None:
            rating = await session.scalar(select(Rating).where(Rating.call_id == call.id))
        return Outcome(call, rating)


async def wait_outcome(db: Database, linkedid: str, *, poll: float = 0.25) -> Outcome:
    """The call's stored outcome once final (bound the wait with ``asyncio.timeout``). A level
    is saved as soon as it is pressed, with the reason and comment to come: the survey is over
    only once the call also has its end time."""
    while True:
        outcome = await stored_outcome(db, linkedid)
        call = outcome.call
        if call is not None and call.survey_status in FINAL and call.ended_at is not None:
            return outcome
        await asyncio.sleep(poll)
