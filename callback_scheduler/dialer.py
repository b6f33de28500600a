"""The dialer: one claimed attempt → one AMI ``Originate`` → one outcome. Never a second dial.

For each claim: the last check (campaign running, inside a window, not on the do-not-call list,
deadline not passed); then ``Originate`` with ``Async: true`` (the only way Asterisk reports
``OriginateResponse``), the claim's own ActionID and ChannelId (the channel's Uniqueid, so the
call can be found again), ``CALLBACK_ATTEMPT_ID`` as a channel variable, into the
``callback_context`` through the trunk's dial string. Events drive the attempt's state machine
(:mod:`callback_scheduler.attempt`); its outcome ends the attempt in the database.

An Originate is sent exactly once. If it could not be written (``AmiNotConnected``) the
attempt ends as skipped — nobody was called. If the connection dropped after it was written
(``AmiDisconnected``/``AmiTimeout``), or during the call, the attempt is *lost*: once AMI is
back, ``CoreShowChannels`` is asked for the ChannelId; a live channel is followed again, a
missing one ends the attempt as unknown (retried only after the retry delay) — or as
answered/rated when the IVR wrote to the database meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ami.client import (
    CLIENT_CONNECTED,
    CLIENT_DISCONNECTED,
    AmiActionError,
    AmiDisconnected,
    AmiError,
    AmiNotConnected,
    AmiTimeout,
    EventStream,
)
from ami.protocol import Event as AmiEvent
from ami.protocol import ProtocolError, Response
from callback_scheduler import tasks
from callback_scheduler.attempt import (
    CAUSE_WAIT_SECONDS,
    AttemptMachine,
    Disconnected,
    Hangup,
    OriginateResponse,
    Overdue,
    Reconciled,
)
from callback_scheduler.attempt import Event as AttemptEvent
from callback_scheduler.claims import Claim, why_not_dial
from callback_scheduler.followup_agi import VAR_ATTEMPT
from callback_scheduler.lifecycle import AttemptStatus
from callback_scheduler.rules import Outcome
from hotline.clock import utcnow
from hotline.privacy import normalise_number
from service.context import AppContext

log = logging.getLogger("hotline.callback.dialer")

#: AMI ChannelState of an answered channel
STATE_UP = "6"


class Ami(Protocol):
    """What the dialer needs of ami.client.AmiClient (a fake in tests)."""

    @property
    def connected(self) -> bool: ...

    async def wait_connected(self) -> None: ...

    async def send(self, action: dict[str, object], *, timeout: float | None = None,  # noqa: ASYNC109
                   check: bool = True) -> Response: ...

    async def send_list(self, action: dict[str, object], *,
                        timeout: float | None = None) -> list[AmiEvent]: ...  # noqa: ASYNC109

    def events(self, *names: str, maxsize: int = 10000) -> EventStream: ...


class _Reconnected:
    """AMI is back: a lost attempt may now be reconciled."""


@dataclass
class _InFlight:
    claim: Claim
    machine: AttemptMachine = field(default_factory=AttemptMachine)
    inbox: asyncio.Queue[AttemptEvent | _Reconnected] = field(default_factory=asyncio.Queue)
    lost_since: float | None = None
    sent_at: float = 0.0  # loop time the Originate was written


class DialError(RuntimeError):
    """A claim that cannot be turned into a dial string (no such trunk, bad number)."""


def dial_string(ctx: AppContext, claim: Claim) -> str:
    trunks = {t.name: t for t in ctx.settings.callback_trunks}
    trunk = trunks.get(claim.trunk)
    if trunk is None:
        raise DialError(f"trunk {claim.trunk!r} is not configured")
    number = normalise_number(ctx.vault.reveal(claim.number_enc))
    if not number.lstrip("+").isdigit():
        raise DialError("the stored number is not a telephone number")
    return trunk.dial_string.format(number=number)


def originate_action(ctx: AppContext, claim: Claim, channel: str) -> dict[str, object]:
    s = ctx.settings
    return {
        "Action": "Originate",
        "ActionID": claim.action_id,
        "ChannelId": claim.channel_id,
        "Channel": channel,
        "Context": s.callback_context,
        "Exten": "s",
        "Priority": 1,
        "Timeout": s.callback_ring_seconds * 1000,
        "CallerID": f'"12345" <{claim.caller_id}>',
        "Variable": [f"{VAR_ATTEMPT}={claim.attempt_id}"],
        "Async": "true",
    }


class Dialer:
    def __init__(
        self,
        ctx: AppContext,
        ami: Ami,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.ctx = ctx
        self.ami = ami
        self.clock = clock
        self._by_attempt: dict[int, _InFlight] = {}
        self._by_action: dict[str, _InFlight] = {}
        self._by_channel: dict[str, _InFlight] = {}

    # ------------------------------------------------------------------ events
    async def pump(self, stream: EventStream) -> None:
        """Route AMI events to the attempts they concern, until the stream closes."""
        async for event in stream:
            self.route(event)

    def route(self, event: AmiEvent) -> None:
        name = event.name
        if name == CLIENT_DISCONNECTED:
            for f in self._by_attempt.values():
                f.inbox.put_nowait(Disconnected())
        elif name == CLIENT_CONNECTED:
            for f in self._by_attempt.values():
                f.inbox.put_nowait(_Reconnected())
        elif name == "OriginateResponse":
            found = self._by_action.get(event.action_id or "")
            if found is not None:
                reason = _int(event.get("Reason"))
                success = (event.get("Response") or "").lower() == "success"
                found.inbox.put_nowait(OriginateResponse(reason=reason or 0, success=success))
        elif name == "Hangup":
            found = self._by_channel.get(event.get("Uniqueid") or "")
            if found is not None:
                found.inbox.put_nowait(Hangup(cause=_int(event.get("Cause"))))

    # ------------------------------------------------------------------ one attempt
    async def dial(self, claim: Claim) -> Outcome:
        """Dial one claim and follow it to its outcome, recorded in the database."""
        flight = _InFlight(claim)
        self._by_attempt[claim.attempt_id] = flight
        self._by_action[claim.action_id] = flight
        self._by_channel[claim.channel_id] = flight
        try:
            outcome, reason, cause = await self._follow(flight)
        finally:
            self._by_attempt.pop(claim.attempt_id, None)
            self._by_action.pop(claim.action_id, None)
            self._by_channel.pop(claim.channel_id, None)
        async with self.ctx.db.transaction() as s:
            recorded = await tasks.finish_attempt(s, self.ctx, claim.attempt_id, outcome,
                                                  now=self.clock(), reason=reason, cause=cause)
        return recorded or outcome

    async def _follow(self, flight: _InFlight) -> tuple[Outcome, int | None, int | None]:
        claim, machine = flight.claim, flight.machine
        why = await why_not_dial(self.ctx, claim, self.clock())
        if why is not None:
            log.info("not dialled after all", extra={"attempt_id": claim.attempt_id, "why": why})
            return Outcome.SKIPPED, None, None
        try:
            action = originate_action(self.ctx, claim, dial_string(self.ctx, claim))
        except (DialError, ValueError) as exc:
            log.error("cannot dial", extra={"attempt_id": claim.attempt_id, "error": str(exc)})
            return Outcome.FAILED, None, None
        flight.sent_at = asyncio.get_running_loop().time()
        try:
            await self.ami.send(action, timeout=self.ctx.settings.ami_timeout)
            log.info("originate queued", extra={"attempt_id": claim.attempt_id,
                                                "task_id": claim.task_id})
        except AmiNotConnected:
            return Outcome.SKIPPED, None, None  # never written: nobody is being called
        except (AmiActionError, ProtocolError) as exc:
            # refused by Asterisk, or not encodable (so never written): nobody was called, but
            # the attempt counts, so a broken trunk or number ends on the manual list
            log.error("originate refused", extra={"attempt_id": claim.attempt_id,
                                                  "error": str(exc)})
            return Outcome.FAILED, None, None
        except AmiDisconnected:
            # written, answer lost: the citizen may be ringing. Never sent again.
            machine.handle(Disconnected())
        except AmiTimeout:
            # written, Asterisk slow to answer: the call may not even exist yet, so looking
            # for its channel now would find nothing and end a call about to ring (issue 8
            # defect 10). The connection is up, so its events still come: follow them as
            # usual (OriginateResponse arrives within the ring time). Only a dropped
            # connection makes the attempt lost.
            log.warning("originate not acknowledged in time; following its events",
                        extra={"attempt_id": claim.attempt_id})
            if not self.ami.connected:
                machine.handle(Disconnected())
        return await self._watch(flight)

    async def _watch(self, flight: _InFlight) -> tuple[Outcome, int | None, int | None]:
        machine, s = flight.machine, self.ctx.settings
        loop = asyncio.get_running_loop()
        known = machine.status
        while True:
            if machine.status is AttemptStatus.LOST:
                flight.lost_since = flight.lost_since or loop.time()
                # events that did arrive (after a reconnect) first: they may end it outright
                outcome = self._drain(flight)
                if outcome is None and machine.status is AttemptStatus.LOST:
                    outcome = await self._reconcile(flight)
            else:
                flight.lost_since = None
                if machine.awaiting_cause:
                    wait = CAUSE_WAIT_SECONDS
                elif machine.answered:
                    wait = s.callback_max_call_seconds
                else:
                    wait = s.callback_ring_seconds + s.callback_response_grace_seconds
                try:
                    event = await asyncio.wait_for(flight.inbox.get(), wait)
                except TimeoutError:
                    event = Overdue()
                if isinstance(event, _Reconnected):
                    continue
                outcome = machine.handle(event)
            if outcome is not None:
                return outcome, machine.reason, machine.cause
            if machine.status is not known:
                known = machine.status
                await tasks.set_attempt_status(self.ctx, flight.claim.attempt_id, known)

    @staticmethod
    def _drain(flight: _InFlight) -> Outcome | None:
        while not flight.inbox.empty():
            event = flight.inbox.get_nowait()
            if isinstance(event, _Reconnected | Disconnected):
                continue
            outcome = flight.machine.handle(event)
            if outcome is not None:
                return outcome
        return None

    async def _reconcile(self, flight: _InFlight) -> Outcome | None:
        """Look for the lost attempt's channel by its ChannelId once AMI answers again. If AMI
        stays away longer than a call can last, the channel is presumed gone."""
        s = self.ctx.settings
        limit = s.callback_max_call_seconds + s.callback_ring_seconds
        elapsed = asyncio.get_running_loop().time() - (flight.lost_since or 0.0)
        try:
            await asyncio.wait_for(self.ami.wait_connected(), max(limit - elapsed, 0.0))
            channels = await self.ami.send_list({"Action": "CoreShowChannels"},
                                                timeout=s.ami_timeout)
        except (TimeoutError, AmiError):
            if asyncio.get_running_loop().time() - (flight.lost_since or 0.0) < limit:
                await asyncio.sleep(min(s.callback_poll_interval, 1.0))
                return None
            return flight.machine.handle(Reconciled(alive=False))
        mine = [c for c in channels if c.get("Uniqueid") == flight.claim.channel_id]
        loop = asyncio.get_running_loop()
        if not mine and loop.time() - flight.sent_at < s.ami_timeout:
            # Asterisk may not have created the channel yet (the Originate is queued, then
            # the channel allocated): absent is not gone while Asterisk could still be
            # answering the Originate itself
            await asyncio.sleep(min(s.callback_poll_interval, 0.5))
            return None
        up = bool(mine) and (mine[0].get("ChannelState") == STATE_UP
                             or (mine[0].get("ChannelStateDesc") or "").lower() == "up")
        log.info("lost attempt reconciled", extra={
            "attempt_id": flight.claim.attempt_id, "alive": bool(mine), "up": up})
        return flight.machine.handle(Reconciled(alive=bool(mine), up=up))

    # ------------------------------------------------------------------ orphans
    async def settle_orphans(self, now: dt.datetime) -> int:
        """Attempts left active by a scheduler that died: if AMI no longer knows their channel,
        end them (unknown, or answered if they had been answered)."""
        if not self.ami.connected:
            return 0
        async with self.ctx.db.sessions() as s:
            orphans = [a for a in await tasks.orphaned_attempts(s, self.ctx, now)
                       if a.id not in self._by_attempt]
        if not orphans:
            return 0
        try:
            channels = await self.ami.send_list({"Action": "CoreShowChannels"},
                                                timeout=self.ctx.settings.ami_timeout)
        except AmiError:
            return 0
        alive = {c.get("Uniqueid") for c in channels}
        settled = 0
        for attempt in orphans:
            if attempt.channel_id in alive:
                continue
            machine = AttemptMachine(AttemptStatus(attempt.status))
            if machine.status is not AttemptStatus.LOST:
                machine.handle(Disconnected())
            outcome = machine.handle(Reconciled(alive=False))
            assert outcome is not None
            async with self.ctx.db.transaction() as s:
                if await tasks.finish_attempt(s, self.ctx, attempt.id, outcome, now=now):
                    settled += 1
        return settled


def _int(value: str | None) -> int | None:
    with contextlib.suppress(TypeError, ValueError):
        return int(value)  # type: ignore[arg-type]
    return None
