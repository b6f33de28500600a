"""The carrier simulator: a second Asterisk instance from the same root that plays the public
network and the citizen's phone, joined to the hotline by a PJSIP trunk on loopback.

Both directions use the one trunk (asterisk_conf/pjsip.conf, rendered for each side):

* **inbound**: the carrier calls 12345 (``PJSIP/12345@hotline`` on the carrier) and the
  citizen's side of that call runs a behaviour script (:meth:`Carrier.call_hotline`);
* **outbound**: the hotline dials ``PJSIP/<number>@carrier`` (回访, 电话邀评) and the number
  itself says how the citizen behaves.

Keys travel as RFC 4733 DTMF events (``dtmf_mode = rfc4733`` on both endpoints).

Citizen numbering scheme (digits only, 5-20 long, so the 回访 dialer stores, masks and
validates them like any number): ``1390`` + behaviour digit ``B`` + parameters ``P``.

=====  ===================================================================================
B      the citizen ...
=====  ===================================================================================
0      answers, then hangs up at once
1      answers and plays the key script P, then stays on the line until the other side hangs
       up (at most 300 s)
2      is busy: 486 (over PJSIP: ``OriginateResponse`` Reason 0, Hangup cause 17)
3      rings and never answers (the caller's ring timeout ends it: Reason 3)
4      congestion: 503 (Reason 0, Hangup cause 34)
5      answers and says nothing until the other side hangs up
6      unallocated number: 404 (a failed call)
7      rings for the first digit of P seconds, then answers and plays the rest of P as in 1
8      as 1, but afterwards keeps sending audio (the room's silence, as a real phone's open
       microphone does), so a voice comment it leaves is a recording of real frames
=====  ===================================================================================

The key script is digit pairs ``W K``: for ``W`` 0-8, wait ``W`` seconds (after the answer or
the previous key), then press key ``K`` (0-9). ``W`` = 9 is special: ``90`` presses ``*`` and
``91`` presses ``#`` (each after 1 s), ``92`` hangs up, ``93`` ends the script (what follows
only makes the number unique), ``94``-``99`` wait 4-9 seconds without a key.

Examples: ``13901`` + ``52`` + ``34`` = ``139015234``: answer, after 5 s press 2, 3 s later 4.
``13902`` is busy, and so is ``13902930042``, a different number (busy ignores P).
Build numbers with :func:`keys_number` / :func:`number`, read them with :func:`parse_number`.

For inbound calls only behaviours 0, 1 and 5 make sense (the hotline answers, not the
citizen); the script starts when the hotline answers.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from ami.client import AmiClient
from hotline.settings import Settings
from sandbox.instance import AsteriskSandbox

PREFIX = "1390"
HOTLINE_NUMBER = "12345"
MAX_DIGITS = 20  # what the 回访 dialer accepts as a telephone number
#: the dialplan context a carrier-originated call's citizen side runs in (sandbox-sim.conf)
CITIZEN_CONTEXT = "sim-citizen"
#: the carrier runs no AGI; its HOTLINE_FASTAGI global points at a port nothing listens on
#: (9, "discard") so that a mistake cannot reach the service's FastAGI server with a carrier
#: channel
NO_FASTAGI_PORT = 9


class Behaviour(IntEnum):
    HANG_UP = 0
    KEYS = 1
    BUSY = 2
    NO_ANSWER = 3
    CONGESTION = 4
    SILENT = 5
    UNALLOCATED = 6
    LATE_ANSWER = 7
    TALKS_ON = 8


@dataclass(frozen=True)
class Press:
    """Press ``key`` (0-9, ``*`` or ``#``) ``after`` whole seconds (from the answer or the
    previous step)."""

    key: str
    after: int = 1


@dataclass(frozen=True)
class Pause:
    seconds: int


@dataclass(frozen=True)
class HangUp:
    """The citizen hangs up (after the steps before it)."""


Step = Press | Pause | HangUp


def _pauses(seconds: int) -> list[str]:
    """``9K`` pairs waiting exactly ``seconds`` (0, or 4 and more: one pair waits 4-9 s)."""
    if seconds < 0 or 0 < seconds < 4:
        raise ValueError(f"a wait of {seconds} s without a key cannot be encoded (0 or 4+)")
    pairs = []
    while seconds > 0:
        # never leave 1-3 s, which no pair can wait
        chunk = seconds if seconds <= 9 else 9 if seconds >= 13 else seconds - 4
        pairs.append(f"9{chunk}")
        seconds -= chunk
    return pairs


def _encode(step: Step) -> list[str]:
    if isinstance(step, HangUp):
        return ["92"]
    if isinstance(step, Pause):
        return _pauses(step.seconds)
    key, wait = step.key, step.after
    if key in ("*", "#"):
        # "90"/"91" wait 1 s themselves; anything longer is pauses before them
        if wait < 1 or 1 < wait < 5:
            raise ValueError(f"{key} can be pressed 1 s or 5+ s after the step before, "
                             f"not {wait} s")
        return [*_pauses(wait - 1), "90" if key == "*" else "91"]
    if len(key) != 1 or not key.isdigit():
        raise ValueError(f"key {key!r} is not one of 0-9, * and #")
    if wait < 0:
        raise ValueError("a wait cannot be negative")
    # wait = pauses + the pair's own wait (0-8)
    paused = 0 if wait <= 8 else wait - 8 if wait >= 12 else 4
    return [*_pauses(paused), f"{wait - paused}{key}"]


def _checked(number: str) -> str:
    if len(number) > MAX_DIGITS:
        raise ValueError(f"{number} has {len(number)} digits; at most {MAX_DIGITS} fit a "
                         "telephone number (fewer keys or shorter waits)")
    return number


def keys_number(
    steps: Sequence[Step | str], *, ring_seconds: int = 0, tag: str = "",
    talks_on: bool = False,
) -> str:
    """The number of a citizen who answers (after ``ring_seconds`` of ringing, 0-9) and plays
    ``steps``; a plain string step is a key pressed 1 s after the step before. ``tag``: digits
    appended after an end-of-script marker, to make otherwise equal numbers distinct.
    ``talks_on``: afterwards the phone keeps sending audio (behaviour 8, for a comment)."""
    resolved = [Press(s) if isinstance(s, str) else s for s in steps]
    script = "".join(pair for step in resolved for pair in _encode(step))
    if tag:
        if not tag.isdigit():
            raise ValueError("a tag is digits only")
        script += "93" + tag
    if ring_seconds:
        if not 0 < ring_seconds <= 9:
            raise ValueError("ring_seconds is 0-9")
        if talks_on:
            raise ValueError("a citizen who answers late does not talk on (behaviour 7 or 8)")
        return _checked(f"{PREFIX}{int(Behaviour.LATE_ANSWER)}{ring_seconds}{script}")
    behaviour = Behaviour.TALKS_ON if talks_on else Behaviour.KEYS
    return _checked(f"{PREFIX}{int(behaviour)}{script}")


def number(behaviour: Behaviour, *, tag: str = "") -> str:
    """The number of a citizen who behaves as ``behaviour`` without keys (busy, no answer...);
    ``tag`` digits make numbers distinct (they are ignored by these behaviours)."""
    if behaviour in (Behaviour.KEYS, Behaviour.LATE_ANSWER, Behaviour.TALKS_ON):
        return keys_number([], tag=tag, talks_on=behaviour is Behaviour.TALKS_ON)
    if tag and not tag.isdigit():
        raise ValueError("a tag is digits only")
    return _checked(f"{PREFIX}{int(behaviour)}{tag}")


def random_tag(digits: int = 4) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


@dataclass(frozen=True)
class Parsed:
    behaviour: Behaviour
    ring_seconds: int
    steps: tuple[Step, ...]


def parse_number(value: str) -> Parsed:
    """What the carrier's dialplan will do with ``value`` (the same rules, in Python)."""
    if not value.startswith(PREFIX) or len(value) < len(PREFIX) + 1 or not value.isdigit():
        raise ValueError(f"{value!r} is not a simulated citizen's number ({PREFIX}B...)")
    digit = int(value[len(PREFIX)])
    behaviour = Behaviour(digit) if digit <= 8 else Behaviour.UNALLOCATED
    script = value[len(PREFIX) + 1:]
    ring = 0
    if behaviour is Behaviour.LATE_ANSWER:
        ring, script = (int(script[0]), script[1:]) if script else (0, "")
    if behaviour not in (Behaviour.KEYS, Behaviour.LATE_ANSWER, Behaviour.TALKS_ON):
        return Parsed(behaviour, 0, ())
    steps: list[Step] = []
    for i in range(0, len(script) - 1, 2):
        wait, key = int(script[i]), script[i + 1]
        if wait < 9:
            steps.append(Press(key, wait))
        elif key in "01":
            steps.append(Press("*" if key == "0" else "#", 1))
        elif key == "2":
            steps.append(HangUp())
            break
        elif key == "3":
            break
        else:
            steps.append(Pause(int(key)))
    return Parsed(behaviour, ring, tuple(steps))


# ----------------------------------------------------------------------------- the instance
def default_run_dir(hotline: AsteriskSandbox) -> Path:
    return hotline.run_dir.with_name(f"{hotline.run_dir.name}-carrier")


def carrier_sandbox(
    hotline: AsteriskSandbox,
    *,
    run_dir: Path | None = None,
    ami_port: int | None = None,
    rtp_start: int | None = None,
    rtp_end: int | None = None,
    die_with_parent: bool = False,
) -> AsteriskSandbox:
    """The carrier instance facing ``hotline``: the trunk's other end. Its SIP port is where
    the hotline's trunk points (the hotline's peer_sip_port, by default its SIP port + 1);
    its AMI port defaults to the hotline's + 2 (+ 1 is left for a second hotline-side
    instance) and its RTP range to one as large as the hotline's, just above it. Same root,
    configuration files and dialplans as the hotline. ``hotline call`` and the test fixture
    use these defaults, so either finds a carrier the other started."""
    span = hotline.rtp_end - hotline.rtp_start
    start = rtp_start if rtp_start is not None else hotline.rtp_end + 1
    return AsteriskSandbox(
        name=hotline.trunk_peer,  # the hotline's endpoint for us is named after us ...
        trunk_peer=hotline.name,  # ... and ours for it after the hotline
        root=hotline.root,
        run_dir=run_dir or default_run_dir(hotline),
        conf_dir=hotline.conf_dir,
        dialplan_dir=hotline.dialplan_dir,
        ami_port=ami_port or hotline.ami_port + 2,
        ami_username=hotline.ami_username,
        ami_secret=hotline.ami_secret,
        sip_port=hotline.peer_sip_port or hotline.sip_port + 1,
        peer_sip_port=hotline.sip_port,
        fastagi_host="127.0.0.1",
        fastagi_port=NO_FASTAGI_PORT,
        rtp_start=start,
        rtp_end=rtp_end if rtp_end is not None else start + span,
        start_timeout=hotline.start_timeout,
        die_with_parent=die_with_parent,
        settings=hotline.settings,
    )


@dataclass
class Carrier:
    """A carrier instance and the calls it places to the hotline."""

    sandbox: AsteriskSandbox
    ami_host: str = "127.0.0.1"
    ami_timeout: float = 10.0

    @classmethod
    def for_hotline(cls, hotline: AsteriskSandbox, **overrides: Any) -> Carrier:
        return cls(carrier_sandbox(hotline, **overrides))

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Carrier:
        carrier = cls.for_hotline(AsteriskSandbox.from_settings(settings), **overrides)
        carrier.ami_timeout = settings.ami_timeout
        return carrier

    def start(self) -> None:
        self.sandbox.start()

    def stop(self) -> None:
        self.sandbox.stop()

    def is_running(self) -> bool:
        return self.sandbox.is_running()

    def ami(self) -> AmiClient:
        """A client for the carrier's AMI (not connected; ``async with`` it)."""
        s = self.sandbox
        return AmiClient(self.ami_host, s.ami_port, s.ami_username, s.ami_secret,
                         timeout=self.ami_timeout, keepalive=None)

    async def call_hotline(
        self,
        ami: AmiClient,
        citizen: str,
        *,
        caller_id: str | None = None,
        called: str = HOTLINE_NUMBER,
        action_id: str | None = None,
        ring_timeout: float = 30.0,
    ) -> str:
        """Place a call from the citizen ``citizen`` (a number of the scheme above, whose
        script runs once the hotline answers) to ``called`` over the trunk. The caller ID is
        ``caller_id`` (default: the citizen's number). Returns the Originate's ActionID; its
        ``OriginateResponse`` event on ``ami`` tells whether the hotline answered."""
        parse_number(citizen)  # refuse what the dialplan would not understand
        action_id = action_id or f"carrier-call-{secrets.token_hex(6)}"
        await ami.send({
            "Action": "Originate",
            "Channel": f"PJSIP/{called}@{self.sandbox.trunk_peer}",
            "Context": CITIZEN_CONTEXT,
            "Exten": citizen,
            "Priority": 1,
            "CallerID": f"<{caller_id or citizen}>",
            "Timeout": int(ring_timeout * 1000),
            "Async": True,
            "ActionID": action_id,
        })
        return action_id


@contextlib.contextmanager
def running(carrier: Carrier) -> Iterator[Carrier]:
    """Start the carrier unless it runs already; stop it afterwards only if started here."""
    started = not carrier.is_running()
    if started:
        carrier.start()
    try:
        yield carrier
    finally:
        if started:
            carrier.stop()
