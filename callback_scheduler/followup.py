"""The follow-up IVR of a 回访 / 邀评 call, as a state machine with no I/O.

Like the post-call survey (ivr/survey.py): events in (:meth:`Followup.handle`), actions out; the
FastAGI adapter (``followup_agi``) performs them. Each batch ends with at most one action that
waits for the citizen (:class:`Collect`) or with :class:`Finish`.

回访 of a case (DOMAIN.md rule 5): greet as the 12345 hotline's 回访, say the case number digit
by digit (SAY DIGITS) and the department, after 整改 the department's result for the citizen
(issue 10 "Back to the citizen"), ask "您反映的问题是否已解决：已解决请按1，未解决请按2",
then the 1–5 satisfaction menu (the site's keypad map), and for a 差评 the reason menu. 邀评 of a
call (rule 3): greet, then the menu and reasons. "未解决" is reported at once (the case is
flagged even if the citizen hangs up before rating). The do-not-call key, offered with the
first question, puts the number on the do-not-call list (rule 8) and ends the call.

Wrong keys and silence: the same retries as the survey ("输入有误" and the menu again; one
silence retry). Out of tries before a level: no rating (the dialer retries later). Out of tries
in the reason menu: the level is kept without a reason (the forwarder adds its fallback).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hotline.channel_vars import CALLBACK_RESULT
from hotline.levels import KeypadMap, Level
from ivr import prompts
from ivr.dialog import (
    Collect,
    Digit,
    HungUp,
    KeypadMachine,
    Play,
    PromptFailed,
    SetVariable,
    Timeout,
)

DNC_KEY = "9"  # announced by the prompt callback-dnc-hint ("如不希望再接到回访电话，请按9")
RESOLVED_KEY, UNRESOLVED_KEY = "1", "2"
RESULT_VARIABLE = CALLBACK_RESULT

# prompt ids: the texts live in the one catalogue, ivr/prompts.py
GREETING = prompts.CALLBACK_GREETING
INVITE = prompts.CALLBACK_INVITE
CASE_NUMBER = prompts.CALLBACK_CASE_NUMBER
DEPARTMENT = prompts.CALLBACK_DEPARTMENT
RESULT = prompts.CALLBACK_RESULT
RESOLVED_QUESTION = prompts.CALLBACK_RESOLVED
DNC_HINT = prompts.CALLBACK_DNC_HINT
SATISFACTION = prompts.CALLBACK_SATISFACTION
DNC_DONE = prompts.CALLBACK_DNC_DONE
MENU = prompts.SURVEY_MENU
REASONS = prompts.SURVEY_REASONS
INVALID = prompts.SURVEY_INVALID
THANKS = prompts.SURVEY_THANKS
GOODBYE = prompts.SURVEY_GOODBYE
# the menus said as several prompts: each is one sound file, a composite of the catalogue, so
# the adapter plays it as ONE GET DATA (a key across a prompt's end is not lost between two)
INVITE_MENU = prompts.CALLBACK_INVITE_MENU.parts  # INVITE, MENU, DNC_HINT
RESOLVED_MENU = prompts.CALLBACK_RESOLVED_MENU.parts  # RESOLVED_QUESTION, DNC_HINT
LEVEL_MENU = prompts.CALLBACK_LEVEL_MENU.parts  # SATISFACTION, MENU


# ----------------------------------------------------------------------------- events
# the keypad events and the Play / Collect / SetVariable actions are the shared dialog's
Event = Digit | Timeout | HungUp | PromptFailed


# ----------------------------------------------------------------------------- actions
@dataclass(frozen=True)
class SayDigits:
    digits: str


@dataclass(frozen=True)
class MarkUnresolved:
    """"未解决": flag the case for the supervisor now."""


@dataclass(frozen=True)
class SaveAnswer:
    level: Level
    resolved: bool | None
    reason_codes: tuple[str, ...] = ()
    final: bool = False  # False: more may follow (the reason); the push waits


@dataclass(frozen=True)
class AddDoNotCall:
    """The citizen asked not to be called again."""


@dataclass(frozen=True)
class Finish:
    outcome: str  # rated | do_not_call | no_answer_keys | hangup | failed


Action = Play | SayDigits | Collect | MarkUnresolved | SaveAnswer | AddDoNotCall | SetVariable \
    | Finish


# ----------------------------------------------------------------------------- machine
@dataclass(frozen=True)
class FollowupConfig:
    keypad: KeypadMap
    reasons: dict[str, str]  # key → evalDetail code
    invite: bool = False  # 邀评 of a call, not 回访 of a case
    case_digits: str = ""  # the case number's digits, said one by one
    department_prompt: str | None = None  # a rendered prompt of the department's name
    #: a rendered prompt of the department's result for the citizen after 整改 (issue 10)
    result_prompt: str | None = None
    max_tries: int = 3
    digit_timeout_ms: int = 6000


class Phase(Enum):
    NEW = "new"
    RESOLVED = "resolved"
    LEVEL = "level"
    REASON = "reason"
    DONE = "done"


class FollowupError(RuntimeError):
    """An event the current phase cannot receive: a bug in the adapter."""


class Followup(KeypadMachine[Action]):
    error = FollowupError

    def __init__(self, config: FollowupConfig) -> None:
        super().__init__(config.max_tries, config.digit_timeout_ms)
        self.config = config
        self.phase = Phase.NEW
        self.resolved: bool | None = None
        self.level: Level | None = None
        self.reason_code: str | None = None
        self.outcome: str | None = None

    def start(self) -> list[Action]:
        if self.phase is not Phase.NEW:
            raise FollowupError("already started")
        cfg = self.config
        if cfg.invite:
            self.phase = Phase.LEVEL
            return [self._collect(*INVITE_MENU)]
        intro: list[Action] = [Play((GREETING,))]
        if cfg.case_digits:
            intro += [Play((CASE_NUMBER,)), SayDigits(cfg.case_digits)]
        if cfg.department_prompt:
            intro.append(Play((DEPARTMENT, cfg.department_prompt)))
        if cfg.result_prompt:  # told before the questions, so the answers are about it
            intro.append(Play((RESULT, cfg.result_prompt)))
        self.phase = Phase.RESOLVED
        return [*intro, self._collect(*RESOLVED_MENU)]

    def handle(self, event: Event) -> list[Action]:
        if isinstance(event, HungUp):
            return self._hung_up()
        if isinstance(event, PromptFailed):
            return self._prompt_failed()
        if self.phase is Phase.RESOLVED:
            return self._in_resolved(event)
        if self.phase is Phase.LEVEL:
            return self._in_level(event)
        if self.phase is Phase.REASON:
            return self._in_reason(event)
        raise self._unexpected(event, self.phase.value)

    # ------------------------------------------------------------------ phases
    def _in_resolved(self, event: Event) -> list[Action]:
        if isinstance(event, Digit):
            if event.key == DNC_KEY:
                return self._do_not_call()
            if event.key in (RESOLVED_KEY, UNRESOLVED_KEY):
                self.resolved = event.key == RESOLVED_KEY
                flag: list[Action] = [] if self.resolved else [MarkUnresolved()]
                self._next_menu(Phase.LEVEL)
                return [*flag, self._collect(*LEVEL_MENU)]
        return self._retry_or(event, self.phase.value, RESOLVED_QUESTION,
                              lambda _why: self._no_answer())

    def _in_level(self, event: Event) -> list[Action]:
        if isinstance(event, Digit):
            level = self.config.keypad.level_for(event.key)
            if level is not None:
                return self._chosen(level)
            if event.key == DNC_KEY and self.config.invite:
                return self._do_not_call()
        return self._retry_or(event, self.phase.value, MENU, lambda _why: self._no_answer())

    def _in_reason(self, event: Event) -> list[Action]:
        if isinstance(event, Digit) and event.key in self.config.reasons:
            self.reason_code = self.config.reasons[event.key]
            return self._rated()
        return self._retry_or(event, self.phase.value, REASONS, lambda _why: self._rated())

    # ------------------------------------------------------------------ helpers
    def _next_menu(self, phase: Phase) -> None:
        self.phase = phase
        self._new_menu()

    def _chosen(self, level: Level) -> list[Action]:
        self.level = level
        if level.is_bad and self.config.reasons:
            self._next_menu(Phase.REASON)
            # saved now (held): a hang-up during the reason menu keeps the rating
            return [self._save(final=False), self._collect(REASONS)]
        return self._rated()

    def _save(self, final: bool) -> SaveAnswer:
        assert self.level is not None
        reasons = (self.reason_code,) if self.reason_code else ()
        return SaveAnswer(self.level, self.resolved, reasons, final=final)

    # ------------------------------------------------------------------ endings
    def _end(self, outcome: str, *actions: Action) -> list[Action]:
        self.phase = Phase.DONE
        self.outcome = outcome
        return [*actions, Finish(outcome)]

    def _rated(self) -> list[Action]:
        assert self.level is not None
        return self._end("rated", self._save(final=True),
                         SetVariable(RESULT_VARIABLE, str(int(self.level))),
                         Play((THANKS,)))

    def _no_answer(self) -> list[Action]:
        return self._end("no_answer_keys", SetVariable(RESULT_VARIABLE, "none"),
                         Play((GOODBYE,)))

    def _do_not_call(self) -> list[Action]:
        return self._end("do_not_call", AddDoNotCall(), SetVariable(RESULT_VARIABLE, "dnc"),
                         Play((DNC_DONE,)))

    def _hung_up(self) -> list[Action]:
        if self.phase in (Phase.DONE, Phase.NEW):
            return []
        if self.level is not None:  # the level was saved; make it final without a reason
            return self._end("rated", self._save(final=True))
        return self._end("hangup")

    def _prompt_failed(self) -> list[Action]:
        if self.phase in (Phase.DONE, Phase.NEW):
            return []
        if self.level is not None:
            return self._end("rated", self._save(final=True))
        return self._end("failed", SetVariable(RESULT_VARIABLE, "none"))
