"""The keypad dialog both IVR flows are built from: the post-call survey (ivr/survey.py) and the
回访 / 邀评 follow-up (callback_scheduler/followup.py). One copy, so that the retry rule of
DOMAIN.md rule 1 cannot drift between them.

* events (what the caller did) and the shared actions (collect / play / record / set variable);
* :class:`KeypadMachine`: the base of a flow's state machine (no I/O), with the menu retry rule:
  a key outside the menu gets "输入有误" and the menu again; ``0`` or ``*`` repeats the menu (at
  most ``max_tries`` times, then such a key counts as a wrong key); silence gets one retry;
  after ``max_tries`` failed tries (wrong key or silence) the flow gives up on that menu;
* :class:`DialogRunner`: the AGI adapter loop. It performs a batch of actions in order; the
  first action that waits for the caller answers with the next event. A :class:`Collect` is
  ONE ``GET DATA``, also when it says several prompts (the retry's "输入有误" and the menu, the
  回访's menus): they are one sound file, a composite of ivr/prompts.py, because a key pressed
  across the end of one of two commands can be lost between them (issue 13). A hang-up
  (``ChannelGone``) drops the rest of the batch and becomes :class:`HungUp`, a prompt that
  cannot be played becomes :class:`PromptFailed`. A flow's own actions go to
  :meth:`DialogRunner.perform`.

Each flow keeps only its own phases, its own actions and its own ``Finish``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from hotline.channel_vars import AGI_ERROR_PROMPT_MISSING, HOTLINE_AGI_ERROR
from ivr import prompts
from ivr.agi import protocol as p
from ivr.agi.channel import AgiChannel, CallLog, ChannelGone, MediaError

REPEAT_KEYS = frozenset({"0", "*"})
RECORDING_FORMAT = "wav"
RECORDING_RATE = 8000  # samples a second of the wav format: RECORD FILE's endpos is in samples
RECORDINGS_SUBDIR = "recordings"


# ----------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Digit:
    key: str


@dataclass(frozen=True)
class Timeout:
    """Nothing pressed before the digit timeout."""


@dataclass(frozen=True)
class HungUp:
    """The caller hung up (or the AGI session was lost)."""


@dataclass(frozen=True)
class PromptFailed:
    """A prompt could not be played on a live channel (a missing sound file)."""


@dataclass(frozen=True)
class RecordingDone:
    path: str  # the stored name of the recording, as linked to the rating
    seconds: float
    hung_up: bool = False  # the caller hung up while speaking; the file keeps what was said


@dataclass(frozen=True)
class RecordingFailed:
    """Asterisk could not record (file not writable, …): carry on without a comment."""


Event = Digit | Timeout | HungUp | PromptFailed | RecordingDone | RecordingFailed


# ----------------------------------------------------------------------------- actions
@dataclass(frozen=True)
class Collect:
    """Play the prompts in turn, any key interrupting (barge-in), then wait ``timeout_ms`` for
    one key. Answered by :class:`Digit` or :class:`Timeout`. Several prompts must be a
    composite of ivr/prompts.py (one sound file, one GET DATA): anything else is refused here,
    where a flow makes it, not when a caller hears it."""

    prompts: tuple[str, ...]
    timeout_ms: int
    max_digits: int = 1

    def __post_init__(self) -> None:
        prompts.played_as(self.prompts)


@dataclass(frozen=True)
class Play:
    """Play without listening (thanks / goodbye)."""

    prompts: tuple[str, ...]


@dataclass(frozen=True)
class Record:
    """Beep, record up to ``max_seconds``, ``end_keys`` end it. Answered by
    :class:`RecordingDone` or :class:`RecordingFailed`."""

    max_seconds: int
    silence_seconds: int = 0
    end_keys: str = "#"
    beep: bool = True


@dataclass(frozen=True)
class SetVariable:
    name: str
    value: str


# ----------------------------------------------------------------------------- machine
class GiveUp(Enum):
    """Why a menu ran out of tries."""

    INVALID = "invalid"
    SILENCE = "silence"


@dataclass
class Tries:
    """Counters of one menu: failed tries (wrong key or silence), silences, repeats."""

    failed: int = 0
    silences: int = 0
    repeats: int = 0

    def after(self, event: Digit | Timeout, limit: int) -> GiveUp | bool:
        """Count a key that is not a menu choice (or silence). True: play the menu again after
        "输入有误"; False: play it again as it is (a repeat key or the first silence); or the
        reason to give up (DOMAIN.md rule 1)."""
        if isinstance(event, Digit):
            if event.key in REPEAT_KEYS and self.repeats < limit:
                self.repeats += 1
                return False
            self.failed += 1
            return GiveUp.INVALID if self.failed >= limit else True
        self.failed += 1
        self.silences += 1
        if self.silences >= 2 or self.failed >= limit:
            return GiveUp.SILENCE
        return False


A = TypeVar("A")


class KeypadMachine(Generic[A]):
    """What a flow's state machine shares: the digit timeout, the retry rule of the current
    menu, and the error for an event its phase cannot receive (a bug in the adapter)."""

    error: type[Exception] = RuntimeError

    def __init__(self, max_tries: int, digit_timeout_ms: int) -> None:
        self.max_tries = max_tries
        self.digit_timeout_ms = digit_timeout_ms
        self._tries = Tries()

    def _new_menu(self) -> None:
        self._tries = Tries()

    def _collect(self, *prompt_ids: str) -> Collect:
        return Collect(tuple(prompt_ids), self.digit_timeout_ms)

    def _unexpected(self, event: object, phase: str) -> Exception:
        return self.error(f"{type(event).__name__} in phase {phase}")

    def _retry_or(
        self, event: object, phase: str, menu: str, give_up: Callable[[GiveUp], list[A]]
    ) -> list[A | Collect]:
        """Wrong key, repeat key or silence in a menu: replay it ("输入有误" first after a
        wrong key: the composite of ivr/prompts.py), or give up after the tries."""
        if not isinstance(event, Digit | Timeout):
            raise self._unexpected(event, phase)
        step = self._tries.after(event, self.max_tries)
        if isinstance(step, GiveUp):
            return [*give_up(step)]
        return [self._collect(*prompts.retry_of(menu).parts) if step else self._collect(menu)]


# ----------------------------------------------------------------------------- runner
class Machine(Protocol):
    @property
    def outcome(self) -> str | None: ...

    def start(self) -> Sequence[object]: ...

    def handle(self, event: Event) -> Sequence[object]: ...


class DialogRunner:
    """Drives one machine over one channel (see the module docstring)."""

    def __init__(
        self,
        channel: AgiChannel,
        logger: CallLog,
        *,
        recording: str | None = None,
        recordings_dir: Path | None = None,
        flag_prompt_errors: bool = False,
    ) -> None:
        self.channel = channel
        self.log = logger
        #: the sound name a :class:`Record` writes to (without the format) and its directory
        self.recording = recording
        self.recordings_dir = recordings_dir
        #: whether a missing prompt is also told to the dialplan (HOTLINE_AGI_ERROR)
        self.flag_prompt_errors = flag_prompt_errors

    async def run(self, machine: Machine) -> str:
        return await self.resume(machine, machine.start())

    async def opening(self, machine: Machine) -> Event | None:
        """Perform only the machine's first actions (its first menu) and return what the caller
        did; :meth:`resume` goes on from there with the machine's answer to it."""
        return await self._perform(machine.start())

    async def resume(self, machine: Machine, actions: Sequence[object]) -> str:
        while actions:
            event = await self._perform(actions)
            if event is None:
                break
            self.log.debug("dialog event", extra={"event": type(event).__name__})
            actions = machine.handle(event)
        return machine.outcome or "unknown"

    async def perform(self, action: object) -> None:
        """A flow's own action (a save, a flag, …); a flow's ``Finish`` ends the batch here."""

    async def _perform(self, actions: Sequence[object]) -> Event | None:
        """Run a batch in order; the first action that waits for the caller answers with the
        next event. A hang-up drops the rest of the batch (the machine decides again)."""
        for action in actions:
            try:
                if isinstance(action, Collect):
                    return await self._collect(action)
                if isinstance(action, Record):
                    return await self._record(action)
                if isinstance(action, Play):
                    for prompt in action.prompts:
                        await self.channel.stream_file(prompts.sound_name(prompt))
                elif isinstance(action, SetVariable):
                    await self.channel.set_variable(action.name, action.value)
                else:
                    await self.perform(action)
            except ChannelGone:
                return HungUp()
            except MediaError as exc:
                self.log.error("prompt could not be played; is it built? (hotline prompts build)",
                               extra={"command": exc.command.line()})
                if self.flag_prompt_errors:
                    with contextlib.suppress(ChannelGone):
                        await self.channel.set_variable(HOTLINE_AGI_ERROR, AGI_ERROR_PROMPT_MISSING)
                return PromptFailed()
        return None

    async def _collect(self, action: Collect) -> Event:
        # one command from the first word to the timeout: between two, res_agi reads and drops
        # the frames, so a key pressed as one prompt ends would be lost
        result = await self.channel.get_data(
            prompts.sound_name(prompts.played_as(action.prompts)), action.timeout_ms,
            action.max_digits,
        )
        if result.kind is p.GetDataKind.TIMEOUT:
            return Timeout()
        return Digit(result.digits[:1])

    async def _record(self, action: Record) -> Event:
        assert self.recording is not None, "a flow that records names its recording"
        if self.recordings_dir is not None:
            # res_agi does not create directories; on a shared host we can
            with contextlib.suppress(OSError):
                self.recordings_dir.mkdir(parents=True, exist_ok=True)
        try:
            result = await self.channel.record_file(
                self.recording, RECORDING_FORMAT, action.end_keys, action.max_seconds,
                beep=action.beep, silence_seconds=action.silence_seconds,
            )
        except MediaError:
            self.log.error("recording could not start (beep missing?)")
            return RecordingFailed()
        if result.end is p.RecordEnd.FAILED:
            self.log.error("recording failed", extra={"detail": result.detail})
            return RecordingFailed()
        return RecordingDone(
            path=f"{self.recording}.{RECORDING_FORMAT}",
            seconds=result.endpos / RECORDING_RATE,
            hung_up=result.end is p.RecordEnd.HANGUP,
        )

