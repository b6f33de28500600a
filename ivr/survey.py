"""The post-call keypad survey (一次一评) as a state machine with no I/O.

Events go in (:meth:`Survey.handle`), actions come out; the FastAGI adapter
(:mod:`ivr.survey_flow`) performs them and reports what happened as the next event. Every batch
of actions ends with at most one action that waits for the caller (:class:`Collect` or
:class:`Record`), or with :class:`Finish`; the others (saves, variables, plays) come before it.
If the caller hangs up in the middle of a batch the adapter drops the rest of the batch and
sends :class:`HungUp`.

Rules (DOMAIN.md; issue 3):

* Menu "非常满意请按1，…" from the keypad map; the caller may press during the prompt. The first
  time it follows the greeting in one prompt (``survey-welcome``): a key pressed between two
  AGI commands is lost, so the greeting must not end in a command of its own.
* A key outside the menu: "输入有误" and the menu again. ``0`` or ``*`` repeats the menu
  (at most ``max_tries`` times, then such a key counts as a wrong key). After ``max_tries``
  failed tries (wrong key or silence) the call is not rated.
* Silence: one retry, then not rated (rule 1: recorded, never lost).
* A hang-up before a level is chosen: not rated. A hang-up after it keeps the level (saved at
  once, then again after each step).
* 差评 (level 4/5): the reason menu (keys → ``evalDetail`` codes). Wrong keys and silence get the
  same retries as the main menu; when they run out the reason is left empty (the forwarder adds
  the fallback reason) and the survey goes on. Then the optional voice comment: "press 1 to
  leave a comment" (any other key or silence skips it), RECORD FILE with a beep, ``#`` ends.
  A recording shorter than ``min_comment_seconds`` is not linked; one cut short by a hang-up is.
* Then thanks, and ``SURVEY_RESULT`` = the canonical level (1..5) or ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from hotline.channel_vars import SURVEY_RESULT
from hotline.levels import KeypadMap, Level
from ivr import prompts
from ivr.dialog import (
    Collect,
    Digit,
    Event,
    HungUp,
    KeypadMachine,
    Play,
    PromptFailed,
    Record,
    RecordingDone,
    RecordingFailed,
    SetVariable,
    Timeout,
)

if TYPE_CHECKING:
    from service.context import AppContext

RESULT_VARIABLE = SURVEY_RESULT
NOT_RATED_VALUE = "none"
COMMENT_YES = "1"


# ----------------------------------------------------------------------------- actions
# the keypad events and Collect / Play / Record / SetVariable are the shared dialog's
@dataclass(frozen=True)
class Save:
    """Upsert the rating with everything known so far; ``final`` releases it for delivery."""

    level: Level
    reason_codes: tuple[str, ...] | None = None
    comment_recording: str | None = None
    final: bool = False


@dataclass(frozen=True)
class MarkNotRated:
    """Rule 1: the call is recorded as not rated (the default-rating job takes it later)."""

    outcome: str


@dataclass(frozen=True)
class Finish:
    level: Level | None
    outcome: str  # rated | not_rated_silence | not_rated_invalid | not_rated_hangup | failed


Action = Collect | Play | Record | SetVariable | Save | MarkNotRated | Finish


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SurveyConfig:
    keypad: KeypadMap
    reasons: dict[str, str]  # key → evalDetail code
    max_tries: int = 3
    digit_timeout_ms: int = 6000
    comment_max_seconds: int = 60  # 0: no voice comment
    comment_silence_seconds: int = 5
    min_comment_seconds: float = 1.0

    @classmethod
    def from_context(cls, ctx: AppContext) -> SurveyConfig:
        s = ctx.settings
        return cls(
            keypad=ctx.keypad,
            reasons={r.key: r.code for r in s.survey_reasons},
            max_tries=s.survey_max_tries,
            digit_timeout_ms=s.survey_digit_timeout_ms,
            comment_max_seconds=s.survey_comment_max_seconds,
            comment_silence_seconds=s.survey_comment_silence_seconds,
        )


class Phase(Enum):
    NEW = "new"
    MENU = "menu"
    REASON = "reason"
    COMMENT_OFFER = "comment_offer"
    COMMENT = "comment"
    DONE = "done"


class SurveyError(RuntimeError):
    """An event the current phase cannot receive: a bug in the adapter."""


# ----------------------------------------------------------------------------- machine
class Survey(KeypadMachine[Action]):
    error = SurveyError

    def __init__(self, config: SurveyConfig) -> None:
        super().__init__(config.max_tries, config.digit_timeout_ms)
        self.config = config
        self.phase = Phase.NEW
        self.level: Level | None = None
        self.reason_code: str | None = None
        self.comment_recording: str | None = None
        self.outcome: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase is Phase.DONE

    # ------------------------------------------------------------------ entry points
    def start(self) -> list[Action]:
        if self.phase is not Phase.NEW:
            raise SurveyError("survey already started")
        self.phase = Phase.MENU
        return [self._collect(prompts.SURVEY_WELCOME)]

    def handle(self, event: Event) -> list[Action]:
        if isinstance(event, HungUp):
            return self._hung_up()
        if isinstance(event, PromptFailed):
            return self._prompt_failed()
        handler = {
            Phase.MENU: self._in_menu,
            Phase.REASON: self._in_reason,
            Phase.COMMENT_OFFER: self._in_comment_offer,
            Phase.COMMENT: self._in_comment,
        }.get(self.phase)
        if handler is None:
            raise self._unexpected(event, self.phase.value)
        return handler(event)

    # ------------------------------------------------------------------ phases
    def _in_menu(self, event: Event) -> list[Action]:
        if isinstance(event, Digit):
            level = self.config.keypad.level_for(event.key)
            if level is not None:
                return self._chosen(level)
        return self._retry_or(event, self.phase.value, prompts.SURVEY_MENU,
                              lambda why: self._not_rated(f"not_rated_{why.value}"))

    def _in_reason(self, event: Event) -> list[Action]:
        if isinstance(event, Digit) and event.key in self.config.reasons:
            self.reason_code = self.config.reasons[event.key]
            return [self._save(), *self._after_reason()]
        # out of tries: no reason (the forwarder adds the fallback); the level stays
        return self._retry_or(event, self.phase.value, prompts.SURVEY_REASONS,
                              lambda _why: self._after_reason())

    def _in_comment_offer(self, event: Event) -> list[Action]:
        if isinstance(event, Digit) and event.key == COMMENT_YES:
            self.phase = Phase.COMMENT
            return [
                Play((prompts.SURVEY_COMMENT_RECORD,)),
                Record(
                    max_seconds=self.config.comment_max_seconds,
                    silence_seconds=self.config.comment_silence_seconds,
                ),
            ]
        if isinstance(event, Digit | Timeout):
            return self._rated()  # the comment is optional: anything else skips it
        raise self._unexpected(event, self.phase.value)

    def _in_comment(self, event: Event) -> list[Action]:
        if isinstance(event, RecordingDone):
            if event.seconds >= self.config.min_comment_seconds:
                self.comment_recording = event.path
            if event.hung_up:
                return self._hung_up()
            return self._rated()
        if isinstance(event, RecordingFailed):
            return self._rated()
        raise self._unexpected(event, self.phase.value)

    # ------------------------------------------------------------------ menu helpers
    def _chosen(self, level: Level) -> list[Action]:
        self.level = level
        if not level.is_bad:
            return self._rated()
        return [self._save(), *self._after_level()]

    def _after_level(self) -> list[Action]:
        if self.config.reasons:
            self.phase = Phase.REASON
            self._new_menu()
            return [self._collect(prompts.SURVEY_REASONS)]
        return self._after_reason()

    def _after_reason(self) -> list[Action]:
        if self.config.comment_max_seconds > 0:
            self.phase = Phase.COMMENT_OFFER
            return [self._collect(prompts.SURVEY_COMMENT_OFFER)]
        return self._rated()

    # ------------------------------------------------------------------ endings
    def _save(self, final: bool = False) -> Save:
        assert self.level is not None
        return Save(
            level=self.level,
            reason_codes=(self.reason_code,) if self.reason_code else None,
            comment_recording=self.comment_recording,
            final=final,
        )

    def _rated(self) -> list[Action]:
        assert self.level is not None
        self.phase = Phase.DONE
        self.outcome = "rated"
        return [
            self._save(final=True),
            # before the thanks: a hang-up during it must not lose the variable
            SetVariable(RESULT_VARIABLE, str(int(self.level))),
            Play((prompts.SURVEY_THANKS,)),
            Finish(self.level, "rated"),
        ]

    def _not_rated(self, outcome: str) -> list[Action]:
        self.phase = Phase.DONE
        self.outcome = outcome
        return [
            MarkNotRated(outcome),
            SetVariable(RESULT_VARIABLE, NOT_RATED_VALUE),
            Play((prompts.SURVEY_GOODBYE,)),
            Finish(None, outcome),
        ]

    def _hung_up(self) -> list[Action]:
        if self.phase is Phase.DONE:
            return []  # the ending was already decided and saved
        if self.phase is Phase.NEW:
            raise SurveyError("HungUp before start")
        self.phase = Phase.DONE
        if self.level is None:
            self.outcome = "not_rated_hangup"
            return [MarkNotRated(self.outcome), Finish(None, self.outcome)]
        self.outcome = "rated"
        return [self._save(final=True), Finish(self.level, "rated")]

    def _prompt_failed(self) -> list[Action]:
        """A prompt is missing: end now with what we have, and say so in SURVEY_RESULT."""
        if self.phase in (Phase.DONE, Phase.NEW):
            return []
        self.phase = Phase.DONE
        if self.level is None:
            self.outcome = "failed"
            return [
                MarkNotRated(self.outcome),
                SetVariable(RESULT_VARIABLE, NOT_RATED_VALUE),
                Finish(None, self.outcome),
            ]
        self.outcome = "rated"
        return [
            self._save(final=True),
            SetVariable(RESULT_VARIABLE, str(int(self.level))),
            Finish(self.level, "rated"),
        ]
