"""The AMI hand-off adapter (ivr/handoff.py) against a scripted AMI: which leg is the caller's,
what is sent in which order, and how each way of failing is reported."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from ami.client import AmiActionError
from ami.protocol import Event, Response
from ivr import handoff


def _event(**headers: str) -> Event:
    return Event(tuple(headers.items()))


def _response(ok: bool = True, **headers: str) -> Response:
    status = "Success" if ok else "Error"
    return Response((("Response", status), *headers.items()))


@dataclass
class FakeAmi:
    """Channels by name: (uniqueid, linkedid, context, variables)."""

    channels: dict[str, tuple[str, str, str, dict[str, str]]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    vanish_on: str | None = None  # the action at which the caller hangs up

    async def send_list(self, action: Mapping[str, Any]) -> list[Event]:
        assert action["Action"] == "CoreShowChannels"
        return [_event(Channel=name, Uniqueid=u, Linkedid=lk, Context=ctx)
                for name, (u, lk, ctx, _) in self.channels.items()]

    async def send(self, action: Mapping[str, Any], *, check: bool = True) -> Response:
        self.sent.append(dict(action))
        if action["Action"] == self.vanish_on:
            self.channels.clear()
        known = self.channels.get(action.get("Channel", ""))
        if known is None:
            reply = _response(False, Message="No such channel")
        elif action["Action"] == "Getvar":
            reply = _response(Variable=action["Variable"],
                              Value=known[3].get(action["Variable"], ""))
        else:
            if action["Action"] == "Setvar":
                known[3][action["Variable"]] = action["Value"]
            reply = _response()
        if check and not reply.ok:
            raise AmiActionError(reply)
        return reply


LINKEDID = "1700000000.10"


def _call(caller_context: str = "hotline-inbound") -> FakeAmi:
    return FakeAmi(channels={
        # the agent's legs first in the listing: the order must not matter
        "Local/A1001@hotline-agents-00000001;1": ("1700000000.11", LINKEDID, "hotline-agents",
                                                  {}),
        "Local/A1001@hotline-agents-00000001;2": ("1700000000.12", LINKEDID, "hotline-agents",
                                                  {}),
        "PJSIP/carrier-00000007": ("1700000000.10", LINKEDID, caller_context,
                                   {handoff.CALLER_MARK: "1"}),
        "PJSIP/carrier-00000008": ("1700000000.20", "1700000000.20", "hotline-inbound",
                                   {handoff.CALLER_MARK: "1"}),  # another call
    })


async def test_finds_the_marked_caller_leg_asking_the_first_channel_first() -> None:
    ami = _call()
    caller = await handoff.find_caller(ami, LINKEDID)  # type: ignore[arg-type]
    assert caller == handoff.CallerLeg("PJSIP/carrier-00000007", "1700000000.10", LINKEDID,
                                       "hotline-inbound")
    assert [a["Channel"] for a in ami.sent] == ["PJSIP/carrier-00000007"]  # one Getvar


async def test_a_transferred_in_caller_is_found_by_its_mark() -> None:
    ami = _call()
    # the call's first channel is someone else's; the marked leg is still the caller
    name = "PJSIP/carrier-00000007"
    _, _, ctx, variables = ami.channels.pop(name)
    ami.channels["PJSIP/carrier-00000009"] = ("1700000000.13", LINKEDID, ctx, variables)
    caller = await handoff.find_caller(ami, LINKEDID)  # type: ignore[arg-type]
    assert caller.channel == "PJSIP/carrier-00000009"


async def test_no_channel_is_no_live_call_and_unmarked_legs_mean_caller_gone() -> None:
    with pytest.raises(handoff.NoLiveCall):
        await handoff.find_caller(_call(), "1699999999.1")  # type: ignore[arg-type]
    ami = _call()
    del ami.channels["PJSIP/carrier-00000007"]  # only the agent's legs are left
    with pytest.raises(handoff.CallerGone):
        await handoff.find_caller(ami, LINKEDID)  # type: ignore[arg-type]


async def test_hand_off_sets_case_variables_then_redirects() -> None:
    ami = _call()
    await handoff.hand_off(ami, LINKEDID, case_number="GD1", department="1144")  # type: ignore[arg-type]
    actions = [(a["Action"], a.get("Variable"), a.get("Value")) for a in ami.sent]
    assert actions == [
        ("Getvar", handoff.CALLER_MARK, None),
        ("Setvar", handoff.VAR_CASE, "GD1"),
        ("Setvar", handoff.VAR_DEPT, "1144"),
        ("Redirect", None, None),
    ]
    redirect = ami.sent[-1]
    assert (redirect["Channel"], redirect["Context"], redirect["Exten"], redirect["Priority"]) \
        == ("PJSIP/carrier-00000007", "hotline-handoff", "api", 1)


async def test_hand_off_without_a_case_only_redirects() -> None:
    ami = _call()
    await handoff.hand_off(ami, LINKEDID)  # type: ignore[arg-type]
    assert [a["Action"] for a in ami.sent] == ["Getvar", "Redirect"]


@pytest.mark.parametrize("context", ["hotline-survey", "hotline-handoff"])
async def test_a_caller_already_in_the_survey_is_not_redirected_again(context: str) -> None:
    ami = _call(caller_context=context)
    with pytest.raises(handoff.AlreadyInSurvey):
        await handoff.hand_off(ami, LINKEDID)  # type: ignore[arg-type]
    assert "Redirect" not in [a["Action"] for a in ami.sent]


@pytest.mark.parametrize("moment", ["Setvar", "Redirect"])
async def test_caller_hanging_up_during_the_hand_off_is_caller_gone(moment: str) -> None:
    ami = _call()
    ami.vanish_on = moment
    with pytest.raises(handoff.CallerGone):
        await handoff.hand_off(ami, LINKEDID, case_number="GD1")  # type: ignore[arg-type]


async def test_attach_case_sets_the_variables_without_moving_the_caller() -> None:
    ami = _call()
    await handoff.attach_case(ami, LINKEDID, "GD2")  # type: ignore[arg-type]
    assert [a["Action"] for a in ami.sent] == ["Getvar", "Setvar"]
    assert ami.channels["PJSIP/carrier-00000007"][3][handoff.VAR_CASE] == "GD2"
