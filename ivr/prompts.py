"""The prompt catalogue (prompt id → Chinese text): the one place prompt names live.

``hotline prompts build`` renders every prompt with espeak-ng (Mandarin) and sox into 8 kHz mono
16-bit WAV (Asterisk's ``wav`` format) in ``prompts_dir``; Asterisk plays them as
``hotline/<id>``, so its ``<astdatadir>/sounds/hotline`` must be (or link to) that directory.

A site replaces a prompt with a studio recording by dropping its own file under the same name
(``survey-menu.wav``, or another format Asterisk reads such as ``survey-menu.sln16``). The build
keeps a manifest of what it generated (with hashes) and never overwrites a file it did not
generate or that changed since. A site file in another format beside a WAV the build made
replaces it: the build removes its own (Asterisk picks among a prompt's formats by its own
translation costs, and would likely go on playing ours). The survey's first prompt,
``survey-welcome``, is the greeting and the menu in one recording (a prompt of its own text; the
menu alone, ``survey-menu``, is what a repeat key or a silence plays).

Composites (:class:`Composite`): a menu the flows say as several prompts in a row (the retry
"输入有误" + the menu, the 回访's question + the do-not-call hint, …) is ONE sound file, built by
concatenating its parts' files, so that one GET DATA plays it and listens from its first word
to its last. As several AGI commands, a key whose DTMF begins in one prompt and ends after it
is lost between the commands (issue 13; DOMAIN.md, Asterisk facts). The parts are whatever
files the prompts have, generated or a site's own recordings (any format sox reads, at any
rate: each is converted to 8 kHz mono 16-bit first); a composite is rebuilt when a part's file
changed (the manifest keeps the hashes of the files it was made from). A site may record a
composite itself under its name; a part in a format sox cannot read (G.729, G.722, Siren) makes
the build say which composite the site must record. The set of composites is declared here
once (:data:`COMPOSITES`); the flows use these constants, and :class:`ivr.dialog.Collect`
refuses several prompts that are not one of them.

Some texts depend on settings (the keypad map, the reason menu), so the catalogue is rendered
from the settings, and a generated prompt whose text changed is regenerated.

Chinese digits for SAY DIGITS (the 回访 says the case number digit by digit). Asterisk's SAY
DIGITS plays ``digits/<d>`` in the channel's language, and with the language ``zh`` Asterisk 22
(main/file.c, fileexists_core, ``languageprefix = yes``, the default) looks for
``<astdatadir>/sounds/zh/digits/<d>`` first, then ``sounds/digits/<d>``, then ``sounds/en/...``:
without a Chinese file the citizen would hear English digits. So the catalogue also holds
``zh/digits/0`` … ``zh/digits/9`` (零 幺 二 三 四 五 六 七 八 九), rendered into
:func:`language_dir`, the ``zh`` folder *next to* the prompts directory, exactly as Asterisk's
sounds tree is laid out (``…/sounds/hotline`` and ``…/sounds/zh``). The service's own prompts
still play on a zh channel: ``hotline/<id>`` is not found as ``sounds/zh/hotline/<id>`` and
Asterisk falls back to ``sounds/hotline/<id>`` (the "no language" step of that lookup).

1 is said 幺 (yāo), not 一 (yī): that is how Chinese reads telephone, case and work-order numbers
digit by digit (the hotline's own name is said 幺二三四五), because yī and qī (七) are easily
confused on narrowband telephone audio. The price: Asterisk's own zh SAY NUMBER would say
幺百 for 100; the service never uses SAY NUMBER, SAY DATE or SAY TIME on a zh channel.

Production: Asterisk must find the digits as ``<astdatadir>/sounds/zh/digits/<d>.wav``
(astdatadir from asterisk.conf, Debian: /usr/share/asterisk). With ``prompts_dir`` set to
``<astdatadir>/sounds/hotline`` the build writes them there directly; with the prompts directory
elsewhere (e.g. linked in), link or copy ``<prompts_dir>/../zh/digits`` to
``<astdatadir>/sounds/zh/digits``. A site with an installed Chinese sound pack
(``sounds/zh/digits/1.gsm`` …) keeps it: any existing file of that name counts as a site
recording and is never overwritten, and SAY DIGITS then plays the pack (a pack installed after
a build: the next build removes our ``digits/<d>.wav``, which Asterisk might prefer). The sandbox
bind-mounts :func:`language_dir` at its ``sounds/zh`` (sandbox/instance.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hotline.levels import KeypadMap
from hotline.settings import Settings

#: the directory under Asterisk's sounds where the prompts are found
SOUND_PREFIX = "hotline"
MANIFEST = ".generated.json"
#: formats Asterisk can play a prompt from; any of them counts as "the prompt exists"
AUDIO_EXTENSIONS = (
    ".wav", ".WAV", ".wav16", ".gsm", ".ulaw", ".alaw", ".sln", ".sln16", ".g722", ".g729",
    ".siren7", ".siren14", ".ogg", ".mp3",
)

# ----------------------------------------------------------------------------- prompt ids
#: the greeting and the menu, said as ONE prompt (one GET DATA listening from its first word):
#: as two commands, a key pressed as the greeting ends fell between them, where Asterisk's AGI
#: reads and drops it (issue 13)
SURVEY_WELCOME = "survey-welcome"
SURVEY_MENU = "survey-menu"
SURVEY_INVALID = "survey-invalid"
SURVEY_REASONS = "survey-reasons"
SURVEY_COMMENT_OFFER = "survey-comment-offer"
SURVEY_COMMENT_RECORD = "survey-comment-record"
SURVEY_THANKS = "survey-thanks"
SURVEY_GOODBYE = "survey-goodbye"
# the 回访 follow-up (callback_scheduler/followup.py), which also reuses the survey's menu,
# reasons, invalid, thanks and goodbye prompts
CALLBACK_GREETING = "callback-greeting"
CALLBACK_INVITE = "callback-invite"
CALLBACK_CASE_NUMBER = "callback-case"
CALLBACK_DEPARTMENT = "callback-department"
CALLBACK_RESULT = "callback-result"  # before the department's 整改 result for the citizen
CALLBACK_RESOLVED = "callback-resolved"
CALLBACK_DNC_HINT = "callback-dnc-hint"
CALLBACK_SATISFACTION = "callback-satisfaction"
CALLBACK_DNC_DONE = "callback-dnc-done"


# ----------------------------------------------------------------------------- composites
@dataclass(frozen=True)
class Composite:
    """A menu said as several prompts (``parts``, in order), built into ONE sound file named
    ``id`` and played by one GET DATA (see the module docstring)."""

    id: str
    parts: tuple[str, ...]


#: "输入有误" + the menu again, after a wrong key (ivr/dialog.py, ``KeypadMachine._retry_or``):
#: the menus a wrong key can be pressed in
RETRIED_MENUS = (SURVEY_MENU, SURVEY_REASONS, CALLBACK_RESOLVED)
INVALID_THEN = {menu: Composite(f"{menu}-retry", (SURVEY_INVALID, menu)) for menu in RETRIED_MENUS}
# the 回访 / 邀评 follow-up's menus (callback_scheduler/followup.py)
CALLBACK_INVITE_MENU = Composite(
    "callback-invite-menu", (CALLBACK_INVITE, SURVEY_MENU, CALLBACK_DNC_HINT))
CALLBACK_RESOLVED_MENU = Composite(
    "callback-resolved-menu", (CALLBACK_RESOLVED, CALLBACK_DNC_HINT))
CALLBACK_LEVEL_MENU = Composite("callback-level-menu", (CALLBACK_SATISFACTION, SURVEY_MENU))
#: every composite, by its parts: the one list (the catalogue, the build and the runner use it)
COMPOSITES: dict[tuple[str, ...], Composite] = {
    c.parts: c for c in (*INVALID_THEN.values(), CALLBACK_INVITE_MENU, CALLBACK_RESOLVED_MENU,
                         CALLBACK_LEVEL_MENU)
}
_BY_ID = {c.id: c for c in COMPOSITES.values()}


def retry_of(menu: str) -> Composite:
    """The composite a wrong key in ``menu`` plays ("输入有误" and the menu); KeyError for a
    menu not in :data:`RETRIED_MENUS`."""
    return INVALID_THEN[menu]


def composite(prompt_id: str) -> Composite | None:
    return _BY_ID.get(prompt_id)


def played_as(prompt_ids: tuple[str, ...]) -> str:
    """The one prompt that says ``prompt_ids`` in order: itself, or their composite. A
    LookupError for several prompts that are not a declared composite (a flow's bug)."""
    if len(prompt_ids) == 1:
        return prompt_ids[0]
    found = COMPOSITES.get(tuple(prompt_ids))
    if found is None:
        raise LookupError(f"prompts {prompt_ids} are not a composite of ivr/prompts.py: a menu "
                          "of several prompts must be declared there (one GET DATA plays it)")
    return found.id


#: the channel language of 回访 calls (ivr/dialplans/callback.conf sets it, and
#: callback_scheduler/followup_agi.py makes sure of it): SAY DIGITS speaks Chinese
LANGUAGE = "zh"
#: what SAY DIGITS says for each digit on a zh channel (幺 for 1: see the module docstring)
DIGIT_TEXTS = {
    "0": "零", "1": "幺", "2": "二", "3": "三", "4": "四",
    "5": "五", "6": "六", "7": "七", "8": "八", "9": "九",
}
#: silence around each rendered digit: SAY DIGITS plays the files back to back, so the
#: rhythm of a case number is set by the files themselves (espeak-ng's own silence is uneven)
DIGIT_PAD_SECONDS = (0.05, 0.2)

GREETING_TEXT = "您好，请您对本次通话的服务进行评价。"

_FIXED_TEXTS = {
    SURVEY_INVALID: "输入有误。",
    SURVEY_COMMENT_OFFER: "如需留言，请按1；不留言请按2。",
    SURVEY_COMMENT_RECORD: "请在提示音后留言，留言完毕请按井号键。",
    SURVEY_THANKS: "感谢您的评价，再见。",
    SURVEY_GOODBYE: "感谢您的来电，再见。",
    # the hotline says its name digit by digit (幺二三四五); TTS would read "12345" as a number
    CALLBACK_GREETING: "您好，这里是幺二三四五政务服务便民热线，现对您反映的问题进行回访。",
    CALLBACK_INVITE: "您好，这里是幺二三四五政务服务便民热线，邀请您对近期来电的服务进行评价。",
    CALLBACK_CASE_NUMBER: "您的工单编号是",
    CALLBACK_DEPARTMENT: "承办单位是",
    CALLBACK_RESULT: "承办单位对您反映的问题进行了整改，办理结果是：",
    CALLBACK_RESOLVED: "您反映的问题是否已解决：已解决请按1，未解决请按2。",
    CALLBACK_DNC_HINT: "如不希望再接到回访电话，请按9。",
    CALLBACK_SATISFACTION: "请您对办理情况进行评价。",
    CALLBACK_DNC_DONE: "好的，我们今后不再给您拨打回访电话。再见。",
}


def menu_text(keypad: KeypadMap) -> str:
    """"非常满意请按1，满意请按2，…" in key order, from the site's keypad map."""
    return "，".join(f"{level.label}请按{key}" for key, level in keypad.menu) + "。"


def reasons_text(settings: Settings) -> str:
    options = sorted(settings.survey_reasons, key=lambda r: r.key)
    return "请选择不满意的原因：" + "，".join(f"{r.label}请按{r.key}" for r in options) + "。"


def digit_prompt_id(digit: str) -> str:
    """``zh/digits/4``: the digit's file under Asterisk's sounds directory."""
    return f"{LANGUAGE}/digits/{digit}"


DIGIT_PROMPTS = tuple(digit_prompt_id(d) for d in DIGIT_TEXTS)


def catalogue(settings: Settings) -> dict[str, str]:
    """Every prompt the service plays, id → text, rendered for these settings: the
    ``hotline/<id>`` prompts and the Chinese digits SAY DIGITS plays (``zh/digits/<d>``)."""
    texts = dict(_FIXED_TEXTS)
    texts[SURVEY_MENU] = menu_text(KeypadMap(settings.keypad_map))
    texts[SURVEY_WELCOME] = GREETING_TEXT + texts[SURVEY_MENU]
    texts[SURVEY_REASONS] = reasons_text(settings)
    texts.update({digit_prompt_id(d): text for d, text in DIGIT_TEXTS.items()})
    texts.update({c.id: "".join(texts[p] for p in c.parts) for c in COMPOSITES.values()})
    return dict(sorted(texts.items()))


def is_digit(prompt_id: str) -> bool:
    return prompt_id.startswith(f"{LANGUAGE}/")


def sound_name(prompt_id: str) -> str:
    """What Asterisk is asked to play (no extension: Asterisk picks the best format). A digit
    is its path under sounds (SAY DIGITS asks for ``digits/<d>`` in the channel's language)."""
    return prompt_id if is_digit(prompt_id) else f"{SOUND_PREFIX}/{prompt_id}"


def prompts_dir(settings: Settings) -> Path:
    return settings.effective_prompts_dir


def language_dir(settings: Settings) -> Path:
    """Where the Chinese digits go: ``zh`` next to the prompts directory (``…/sounds/zh``
    beside ``…/sounds/hotline``); Asterisk must see it as ``<astdatadir>/sounds/zh``."""
    return prompts_dir(settings).parent / LANGUAGE


def place(settings: Settings, prompt_id: str) -> tuple[Path, str]:
    """The directory holding the prompt (and the manifest that covers it) and the prompt's
    name in it without extension: (prompts dir, ``survey-menu``) or (zh dir, ``digits/4``)."""
    if is_digit(prompt_id):
        return language_dir(settings), prompt_id.removeprefix(f"{LANGUAGE}/")
    return prompts_dir(settings), prompt_id


def _files(directory: Path, prompt_id: str) -> list[Path]:
    """Every playable file of the prompt, in :data:`AUDIO_EXTENSIONS` order."""
    return [candidate for ext in AUDIO_EXTENSIONS
            if (candidate := directory / f"{prompt_id}{ext}").is_file()
            and candidate.stat().st_size > 0]


def existing_file(directory: Path, prompt_id: str) -> Path | None:
    files = _files(directory, prompt_id)
    return files[0] if files else None


def missing_prompts(settings: Settings) -> list[str]:
    """Prompt ids with no playable file: GET DATA would answer -1, which looks like a hang-up;
    a missing Chinese digit would be said in English."""
    return [pid for pid in catalogue(settings) if existing_file(*place(settings, pid)) is None]


# ----------------------------------------------------------------------------- manifest
Manifest = dict[str, dict[str, object]]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_manifest(directory: Path) -> Manifest:
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_manifest(directory: Path, manifest: Manifest) -> None:
    tmp = directory / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True), "utf-8")
    os.replace(tmp, directory / MANIFEST)


@dataclass
class PromptState:
    prompt_id: str
    text: str
    state: str  # missing | generated | stale | site
    path: Path | None = None  # the file Asterisk plays (a site's when there is one)
    #: a file the build generated, beside a site file of another format: the build removes it
    superseded: Path | None = None


def _sources(parts: list[PromptState]) -> list[list[str]] | None:
    """What a composite is made of: each part's id, file name and hash (None: a part is
    missing). Stored in the manifest; a change of any part's file rebuilds the composite."""
    if any(part.path is None for part in parts):
        return None
    return [[part.prompt_id, part.path.name, _sha256(part.path)]  # type: ignore[union-attr]
            for part in parts]


def _state(settings: Settings, prompt_id: str, text: str, manifests: dict[Path, Manifest],
           is_current: Callable[[dict[str, object]], bool]) -> PromptState:
    directory, name = place(settings, prompt_id)
    if directory not in manifests:
        manifests[directory] = _load_manifest(directory)
    files = _files(directory, name)
    ours = directory / f"{name}.wav"
    entry = manifests[directory].get(f"{name}.wav")
    generated = entry is not None and ours in files and entry.get("sha256") == _sha256(ours)
    site = [f for f in files if not (generated and f == ours)]
    if site:
        return PromptState(prompt_id, text, "site", site[0], ours if generated else None)
    if not files:
        return PromptState(prompt_id, text, "missing")
    assert entry is not None
    return PromptState(prompt_id, text, "generated" if is_current(entry) else "stale", ours)


def _inspect(settings: Settings, manifests: dict[Path, Manifest]) -> dict[str, PromptState]:
    texts = catalogue(settings)
    voice = settings.prompts_voice
    states = {
        pid: _state(settings, pid, text, manifests,
                    lambda e, text=text: e.get("text") == text and e.get("voice") == voice)
        for pid, text in texts.items() if composite(pid) is None
    }
    for pid, text in texts.items():
        if (made_of := composite(pid)) is not None:
            parts = [states[p] for p in made_of.parts]
            current = (None if any(p.state == "stale" for p in parts) else _sources(parts))
            states[pid] = _state(settings, pid, text, manifests,
                                 lambda e, now=current: now is not None and e.get("parts") == now)
    return {pid: states[pid] for pid in texts}


def inspect(settings: Settings) -> list[PromptState]:
    """Where each prompt stands: missing, generated by us (current or stale), or a site file.
    A composite is stale when a part is, or when a part's file is not the one it was built
    from."""
    return list(_inspect(settings, {}).values())


# ----------------------------------------------------------------------------- build
class PromptBuildError(RuntimeError):
    pass


class UnreadablePart(PromptBuildError):
    """A composite's part in a file sox cannot read."""

    def __init__(self, source: Path, detail: str) -> None:
        super().__init__(f"{source.name}: {detail}")
        self.source = source
        self.detail = detail


@dataclass
class BuildReport:
    generated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_site: list[str] = field(default_factory=list)
    #: generated files removed because a site file of another format replaces them
    retired: list[str] = field(default_factory=list)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PromptBuildError(f"{name} is not installed (Debian package {name})")
    return path


#: what every prompt is: Asterisk's ``wav`` format, 8 kHz mono 16-bit signed PCM
ASTERISK_WAV = ("-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer")
#: how sox reads each format Asterisk plays (the raw ones have no header to tell it); G.729,
#: G.722 and Siren are missing: sox cannot read them
SOX_INPUT: dict[str, tuple[str, ...]] = {
    ".wav": ("-t", "wav"), ".WAV": ("-t", "wav"), ".wav16": ("-t", "wav"),
    ".gsm": ("-t", "gsm"),
    ".ulaw": ("-t", "ul", "-r", "8000", "-c", "1"),
    ".alaw": ("-t", "al", "-r", "8000", "-c", "1"),
    ".sln": ("-t", "s16", "-r", "8000", "-c", "1"),
    ".sln16": ("-t", "s16", "-r", "16000", "-c", "1"),
    ".ogg": ("-t", "vorbis"),
    ".mp3": ("-t", "mp3"),
}


def _install(made: Path, target: Path) -> None:
    # same directory, then rename: Asterisk never sees half a file
    staged = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(made, staged)
    os.replace(staged, target)


def render(text: str, target: Path, voice: str, *,
           pad: tuple[float, float] | None = None) -> None:
    """Speak ``text`` into ``target``: 8 kHz, mono, 16-bit signed PCM WAV, normalised. With
    ``pad`` (seconds before, after), espeak-ng's leading and trailing silence is cut and
    replaced by exactly that much (the digits SAY DIGITS strings together)."""
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    with tempfile.TemporaryDirectory(prefix="hotline-prompt-") as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            [espeak, "-v", voice, "-s", "170", "-w", str(raw), "--stdin"],
            input=text.encode("utf-8"), check=True, capture_output=True, timeout=60,
        )
        out = Path(tmp) / "out.wav"
        effects = ["gain", "-n", "-3"]
        if pad is not None:
            trim = ["silence", "1", "0.02", "1%"]
            effects = [*trim, "reverse", *trim, "reverse", *effects,
                       "pad", f"{pad[0]:.3f}", f"{pad[1]:.3f}"]
        subprocess.run([sox, str(raw), *ASTERISK_WAV, str(out), *effects],
                       check=True, capture_output=True, timeout=60)
        _install(out, target)


def concatenate(sources: list[Path], target: Path) -> None:
    """Say ``sources`` one after the other into ``target`` (Asterisk's 8 kHz mono 16-bit WAV).
    Each is converted first: sox joins only files of one rate and channel count, and a site's
    recording may be of any. :class:`UnreadablePart` names a source sox cannot read."""
    sox = _tool("sox")
    with tempfile.TemporaryDirectory(prefix="hotline-composite-") as tmp:
        pieces = []
        for n, source in enumerate(sources):
            fmt = SOX_INPUT.get(source.suffix)
            if fmt is None:
                raise UnreadablePart(source, "a format sox cannot read")
            piece = Path(tmp) / f"{n}.wav"
            try:
                subprocess.run([sox, *fmt, str(source), *ASTERISK_WAV, str(piece)],
                               check=True, capture_output=True, timeout=60)
            except subprocess.CalledProcessError as exc:
                detail = exc.stderr.decode(errors="replace").strip() if exc.stderr else ""
                raise UnreadablePart(source, f"sox cannot read it ({detail})") from exc
            pieces.append(str(piece))
        out = Path(tmp) / "out.wav"
        subprocess.run([sox, *pieces, str(out)], check=True, capture_output=True, timeout=60)
        _install(out, target)


def build_prompts(
    settings: Settings, *, force: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> BuildReport:
    """Generate missing and stale prompts (all of ours with ``force``); site files are kept,
    and a generated file a site file of another format replaces is removed. The digits go to
    :func:`language_dir`, with a manifest of their own there. The composites come last, from
    their parts' files as they are then; one that cannot be built (a part sox cannot read)
    does not stop the others, and the build ends with an error naming what the site must
    record. ``progress`` hears (done, total, prompt id) after each prompt."""
    prompts_dir(settings).mkdir(parents=True, exist_ok=True)
    manifests: dict[Path, Manifest] = {}
    report = BuildReport()
    states = _inspect(settings, manifests)
    plain = [pid for pid in states if composite(pid) is None]
    composites = [pid for pid in states if composite(pid) is not None]
    problems: list[str] = []

    def step(done: int, pid: str) -> bool:
        """Report progress; handle a site file or an unchanged prompt. True: build it."""
        if progress is not None:
            progress(done, len(states), pid)
        state = states[pid]
        if state.state == "site":
            if state.superseded is not None:
                directory, name = place(settings, pid)
                state.superseded.unlink(missing_ok=True)
                manifests[directory].pop(f"{name}.wav", None)
                _save_manifest(directory, manifests[directory])
                report.retired.append(pid)
            report.kept_site.append(pid)
            return False
        if state.state == "generated" and not force:
            report.unchanged.append(pid)
            return False
        return True

    def made(pid: str, **entry: object) -> None:
        directory, name = place(settings, pid)
        target = directory / f"{name}.wav"
        manifests[directory][f"{name}.wav"] = {
            "sha256": _sha256(target), "text": states[pid].text, **entry}
        _save_manifest(directory, manifests[directory])
        report.generated.append(pid)

    for done, pid in enumerate(plain, start=1):
        if step(done, pid):
            directory, name = place(settings, pid)
            target = directory / f"{name}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            _render_prompt(settings, states[pid], target)
            made(pid, voice=settings.prompts_voice)
    states = _inspect(settings, manifests)  # the parts as they are now
    for done, pid in enumerate(composites, start=len(plain) + 1):
        if not step(done, pid):
            continue
        problem = _build_composite(settings, states, pid)
        if problem is not None:
            problems.append(problem)
        else:
            made(pid, parts=_sources([states[p] for p in _composite(pid).parts]))
    if problems:
        raise PromptBuildError("\n".join(problems))
    return report


def _composite(prompt_id: str) -> Composite:
    found = composite(prompt_id)
    assert found is not None
    return found


def _build_composite(settings: Settings, states: dict[str, PromptState], pid: str) -> str | None:
    """Concatenate the composite's parts into its file; what the site must do if it cannot."""
    made_of = _composite(pid)
    directory, name = place(settings, pid)
    parts = [states[p] for p in made_of.parts]

    def cannot(part: PromptState, detail: str) -> str:
        return (f"composite prompt {pid} cannot be built: its part {part.prompt_id} is "
                f"{detail}. The site must record {pid} itself "
                f"({' + '.join(made_of.parts)}: \"{states[pid].text}\") as "
                f"{directory / name}.<format> (e.g. .wav, 8 kHz mono 16-bit), or give "
                f"{part.prompt_id} as a WAV as well")

    for part in parts:
        if part.path is None:
            return cannot(part, "missing")
    try:
        concatenate([part.path for part in parts if part.path is not None],
                    directory / f"{name}.wav")
    except UnreadablePart as exc:
        part = next(p for p in parts if p.path == exc.source)
        whose = "the site recording" if part.state == "site" else "the file"
        return cannot(part, f"{whose} {exc.source.name}, {exc.detail}")
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip() if exc.stderr else ""
        raise PromptBuildError(f"building {pid} failed: {detail}") from exc
    return None


def _render_prompt(settings: Settings, state: PromptState, target: Path) -> None:
    try:
        if is_digit(state.prompt_id):
            render(state.text, target, settings.prompts_voice, pad=DIGIT_PAD_SECONDS)
        else:
            render(state.text, target, settings.prompts_voice)
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip() if exc.stderr else ""
        raise PromptBuildError(f"rendering {state.prompt_id} failed: {detail}") from exc
