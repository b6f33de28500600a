"""The agent's hand-off of a live caller to the survey over AMI (a thin adapter; the HTTP API in
``http_api/calls.py`` decides what to answer).

Which channel is the caller's: a call (one ``linkedid``) has several channels - the caller's
leg, the agent's (a Local pair for a queue member, then the agent's phone) and maybe more
after transfers. The inbound dialplan marks the caller's leg with ``HOTLINE_CALLER_LEG=1``
(ivr/dialplans/inbound.conf), a variable without a leading underscore so no other channel
inherits it. The leg whose uniqueid *is* the linkedid (the call's first channel) is asked
first, since that is the caller's in every call the hotline receives; asking the mark rather
than trusting that rule keeps a call that reached 12345 through a transfer correct.

The hand-off sets ``HOTLINE_CASE_ID`` / ``HOTLINE_DEPT`` on the caller's channel first (the
survey reads them) and then redirects it to ``hotline-handoff,api,1`` (ivr/dialplans/
handoff.conf), which fills in the agent and queue and enters ``hotline-survey``. A Redirect
pulls the caller out of the queue's bridge; the agent's leg then ends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ami.client import AmiActionError, AmiClient
from hotline import channel_vars as cv

log = logging.getLogger("hotline.ivr.handoff")

CALLER_MARK = cv.HOTLINE_CALLER_LEG
VAR_CASE = cv.HOTLINE_CASE_ID
VAR_DEPT = cv.HOTLINE_DEPT
HANDOFF_CONTEXT = "hotline-handoff"
API_EXTEN = "api"
#: where a caller already on the way to (or in) the survey is
SURVEY_CONTEXTS = frozenset({HANDOFF_CONTEXT, "hotline-survey"})


class HandoffError(Exception):
    """Base of the outcomes a hand-off cannot proceed with."""


class NoLiveCall(HandoffError):
    """No channel of this linkedid exists (never existed, or every leg has hung up)."""


class CallerGone(HandoffError):
    """Legs of the call remain (the agent's), but the caller's has hung up."""


class AlreadyInSurvey(HandoffError):
    """The caller is already being handed to, or taking, the survey."""


@dataclass(frozen=True)
class CallerLeg:
    channel: str
    uniqueid: str
    linkedid: str
    context: str

    @property
    def in_survey(self) -> bool:
        return self.context in SURVEY_CONTEXTS


async def find_caller(ami: AmiClient, linkedid: str) -> CallerLeg:
    """The caller's live channel in the call ``linkedid`` (NoLiveCall / CallerGone)."""
    legs = [c for c in await ami.send_list({"Action": "CoreShowChannels"})
            if c.get("Linkedid") == linkedid and c.get("Channel")]
    if not legs:
        raise NoLiveCall(linkedid)
    legs.sort(key=lambda leg: leg.get("Uniqueid") != linkedid)  # the call's first channel first
    for leg in legs:
        mark = await ami.send(
            {"Action": "Getvar", "Channel": leg["Channel"], "Variable": CALLER_MARK}, check=False
        )
        if mark.ok and mark.get("Value") == "1":
            return CallerLeg(leg["Channel"], leg.get("Uniqueid") or "", linkedid,
                             leg.get("Context") or "")
    raise CallerGone(linkedid)


async def set_variables(ami: AmiClient, caller: CallerLeg, values: Mapping[str, str]) -> None:
    """Setvar each value on the caller's channel; CallerGone if it hung up meanwhile."""
    for name, value in values.items():
        try:
            await ami.send({"Action": "Setvar", "Channel": caller.channel,
                            "Variable": name, "Value": value})
        except AmiActionError as exc:  # "Channel not found": the caller hung up since
            raise CallerGone(caller.linkedid) from exc


def case_variables(case_number: str | None, department: str | None) -> dict[str, str]:
    values = {}
    if case_number:
        values[VAR_CASE] = case_number
    if department:
        values[VAR_DEPT] = department
    return values


async def hand_off(
    ami: AmiClient, linkedid: str, *, case_number: str | None = None,
    department: str | None = None,
) -> CallerLeg:
    """Move the caller of ``linkedid`` into the survey (NoLiveCall, CallerGone,
    AlreadyInSurvey). AMI errors other than "no such channel" propagate (AmiError)."""
    caller = await find_caller(ami, linkedid)
    if caller.in_survey:
        raise AlreadyInSurvey(linkedid)
    await set_variables(ami, caller, case_variables(case_number, department))
    try:
        await ami.send({"Action": "Redirect", "Channel": caller.channel,
                        "Context": HANDOFF_CONTEXT, "Exten": API_EXTEN, "Priority": 1})
    except AmiActionError as exc:
        raise CallerGone(linkedid) from exc
    log.info("caller handed to the survey", extra={"linkedid": linkedid,
                                                   "channel": caller.channel})
    return caller


async def attach_case(
    ami: AmiClient, linkedid: str, case_number: str, department: str | None = None
) -> CallerLeg:
    """Set the case number (and department) on the live caller's channel, for the survey."""
    caller = await find_caller(ami, linkedid)
    await set_variables(ami, caller, case_variables(case_number, department))
    return caller
