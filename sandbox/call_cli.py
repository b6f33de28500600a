"""``hotline call --keys 4,2``: place a test call through the sandbox and print the rating the
service stored.

A simulated agent joins the 12345 queue, answers, talks ``--agent-seconds`` and hangs up; the
simulated citizen calls 12345 - by default from the carrier instance over the PJSIP trunk
(keys as RFC 4733 DTMF), with ``--via local`` as a Local channel on the hotline itself - and
presses the keys: the first a few seconds into the survey's intro (the survey accepts a key
while any prompt plays), the others ``--key-gap`` seconds apart. Needs the hotline's Asterisk
and the service (``hotline serve --asterisk``, or ``hotline asterisk start`` + ``hotline
serve``); a carrier that is not running is started for the call and stopped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from dataclasses import dataclass

from ami.client import AmiClient, AmiError
from hotline import logs
from hotline.levels import Level
from hotline.settings import Settings
from sandbox import testcall
from sandbox.carrier import Carrier, keys_number, running
from sandbox.instance import AsteriskSandbox
from sandbox.root import SandboxError
from service.commands import CommandError
from service.context import AppContext

#: seconds after the agent hangs up before the first key: inside the survey's intro prompt
INTRO_LEAD = 3
VALID_KEYS = set("0123456789*#")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "call", help="place a test call through the sandbox and print the stored rating",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--keys", required=True, type=_keys,
                   help="keys the caller presses in the survey, comma-separated: 2, or 4,2,2 "
                        "(level 4, reason 2, no comment)")
    p.add_argument("--via", choices=("carrier", "local"), default="carrier",
                   help="carrier: over the PJSIP trunk from the carrier instance (default); "
                        "local: a Local channel on the hotline")
    p.add_argument("--agent", default="A1001", help="the simulated agent's 工号 (default A1001)")
    p.add_argument("--agent-seconds", type=int, default=3, choices=range(1, 61), metavar="N",
                   help="how long the agent talks before hanging up (default 3)")
    p.add_argument("--key-gap", type=int, default=3, choices=range(1, 9), metavar="S",
                   help="seconds between two keys (default 3)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="give up after this many seconds (default 120)")
    p.set_defaults(handler=_call)


def _keys(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys or any(len(k) != 1 or k not in VALID_KEYS for k in keys):
        raise argparse.ArgumentTypeError("keys are single 0-9, * or #, comma-separated")
    return keys


def _fastagi_reachable(settings: Settings) -> bool:
    try:
        with socket.create_connection((settings.fastagi_host, settings.fastagi_port), timeout=2):
            return True
    except OSError:
        return False


def _call(settings: Settings, args: argparse.Namespace) -> int:
    # the output is the report below; the service's own logs say the rest
    logs.configure("ERROR", "text")
    hotline = AsteriskSandbox.from_settings(settings)
    if not hotline.is_running():
        raise CommandError("the sandbox's Asterisk is not running: start `hotline serve "
                           "--asterisk` (or `hotline asterisk start` and `hotline serve`)")
    if not _fastagi_reachable(settings):
        raise CommandError(f"the service's FastAGI server does not answer at "
                           f"{settings.fastagi_host}:{settings.fastagi_port}: start `hotline "
                           "serve`")
    citizen = keys_number(testcall.survey_presses(
        args.keys, first_after=args.agent_seconds + INTRO_LEAD, gap=args.key_gap))
    try:
        if args.via == "local":
            result = asyncio.run(_place(settings, hotline, args, citizen, None))
        else:
            carrier = Carrier.from_settings(settings, die_with_parent=True)
            with running(carrier):
                result = asyncio.run(_place(settings, hotline, args, citizen, carrier))
    except (SandboxError, AmiError) as exc:
        raise CommandError(str(exc)) from exc
    except TimeoutError as exc:
        raise CommandError(f"no final survey outcome within {args.timeout:g} s") from exc
    print(result.render(settings))
    return 0


@dataclass
class Result:
    linkedid: str
    outcome: testcall.Outcome

    def render(self, settings: Settings) -> str:
        call, rating = self.outcome.call, self.outcome.rating
        if call is None:
            return f"call {self.linkedid}: nothing stored (is `hotline serve` running?)"
        lines = [f"call {self.linkedid}: {call.survey_status}",
                 f"  caller   {call.caller_masked or '-'}",
                 f"  agent    {call.agent_id or '-'} (queue {call.queue or '-'})"]
        if rating is not None:
            labels = {r.code: r.label for r in settings.survey_reasons}
            codes = (rating.reason_codes or "").split(",") if rating.reason_codes else []
            reasons = ", ".join(f"{c} {labels.get(c, '?')}" for c in codes) or "-"
            lines += [f"  level    {rating.level} {Level(rating.level).label}",
                      f"  reasons  {reasons}",
                      f"  comment  {rating.comment_recording or '-'}",
                      f"  rating   {rating.project_no} ({rating.source})"]
        return "\n".join(lines)


async def _place(
    settings: Settings, hotline: AsteriskSandbox, args: argparse.Namespace, citizen: str,
    carrier: Carrier | None,
) -> Result:
    ctx = AppContext.create(settings)
    ami = AmiClient(settings.ami_host, hotline.ami_port, hotline.ami_username,
                    hotline.ami_secret, timeout=settings.ami_timeout, keepalive=None)
    carrier_ami = carrier.ami() if carrier is not None else None
    try:
        async with asyncio.timeout(args.timeout):
            await ami.connect()
            if carrier_ami is not None:
                await carrier_ami.connect()
            agent = testcall.talk(args.agent_seconds)
            async with testcall.simulated_agent(ami, args.agent, agent):
                placed = await testcall.place_call(
                    ami, citizen, via=args.via, carrier=carrier, carrier_ami=carrier_ami)
                print(f"call {placed.linkedid} queued; agent {args.agent} answers, talks "
                      f"{args.agent_seconds} s, then the caller presses {','.join(args.keys)}")
                outcome = await testcall.wait_outcome(ctx.db, placed.linkedid)
            return Result(placed.linkedid, outcome)
    finally:
        await ami.close()
        if carrier_ami is not None:
            await carrier_ami.close()
        await ctx.close()
