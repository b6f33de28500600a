"""The prompt catalogue (prompt id → Chinese text): the one place prompt names live.

``hotline prompts build`` renders every prompt with espeak-ng (Mandarin) and sox into 8 kHz mono
16-bit WAV (Asterisk's ``wav`` format) in ``prompts_dir``; Asterisk plays them as
``hotline/<id>``, so its ``<astdatadir>/sounds/hotline`` must be (or link to) that directory.

A site replaces a prompt with a studio recording by dropping its own file under the same name
(``survey-menu.wav``, or another format Asterisk reads such as ``survey-menu.sln16``). The build
keeps a manifest of what it generated (with hashes) and never overwrites a file it did not
generate or that changed since. The survey's first prompt, ``survey-welcome``, is the greeting
and the menu in one recording (the menu alone, ``survey-menu``, is what a retry plays).

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
a build: delete our ``digits/<d>.wav``, or Asterisk may pick either format). The sandbox
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


def existing_file(directory: Path, prompt_id: str) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        candidate = directory / f"{prompt_id}{ext}"
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    return None


def missing_prompts(settings: Settings) -> list[str]:
    """Prompt ids with no playable file: GET DATA would answer -1, which looks like a hang-up;
    a missing Chinese digit would be said in English."""
    return [pid for pid in catalogue(settings) if existing_file(*place(settings, pid)) is None]


# ----------------------------------------------------------------------------- manifest
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_manifest(directory: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_manifest(directory: Path, manifest: dict[str, dict[str, str]]) -> None:
    tmp = directory / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True), "utf-8")
    os.replace(tmp, directory / MANIFEST)


@dataclass
class PromptState:
    prompt_id: str
    text: str
    state: str  # missing | generated | stale | site
    path: Path | None = None


def inspect(settings: Settings) -> list[PromptState]:
    """Where each prompt stands: missing, generated by us (current or stale), or a site file."""
    manifests: dict[Path, dict[str, dict[str, str]]] = {}
    states = []
    for pid, text in catalogue(settings).items():
        directory, name = place(settings, pid)
        if directory not in manifests:
            manifests[directory] = _load_manifest(directory)
        path = existing_file(directory, name)
        entry = manifests[directory].get(f"{name}.wav")
        if path is None:
            state = "missing"
        elif (path != directory / f"{name}.wav" or entry is None
              or entry.get("sha256") != _sha256(path)):
            state = "site"
        elif entry.get("text") != text or entry.get("voice") != settings.prompts_voice:
            state = "stale"
        else:
            state = "generated"
        states.append(PromptState(pid, text, state, path))
    return states


# ----------------------------------------------------------------------------- build
class PromptBuildError(RuntimeError):
    pass


@dataclass
class BuildReport:
    generated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_site: list[str] = field(default_factory=list)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PromptBuildError(f"{name} is not installed (Debian package {name})")
    return path


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
        subprocess.run(
            [sox, str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
             str(out), *effects],
            check=True, capture_output=True, timeout=60,
        )
        # same directory, then rename: Asterisk never sees half a file
        staged = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(out, staged)
        os.replace(staged, target)


def build_prompts(
    settings: Settings, *, force: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> BuildReport:
    """Generate missing and stale prompts (all of ours with ``force``); site files are kept.
    The digits go to :func:`language_dir`, with a manifest of their own there. ``progress``
    hears (done, total, prompt id) after each prompt (the command shows it)."""
    prompts_dir(settings).mkdir(parents=True, exist_ok=True)
    manifests: dict[Path, dict[str, dict[str, str]]] = {}
    report = BuildReport()
    states = list(inspect(settings))
    for done, state in enumerate(states, start=1):
        if progress is not None:
            progress(done, len(states), state.prompt_id)
        if state.state == "site":
            report.kept_site.append(state.prompt_id)
            continue
        if state.state == "generated" and not force:
            report.unchanged.append(state.prompt_id)
            continue
        directory, name = place(settings, state.prompt_id)
        if directory not in manifests:
            manifests[directory] = _load_manifest(directory)
        target = directory / f"{name}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if is_digit(state.prompt_id):
                render(state.text, target, settings.prompts_voice, pad=DIGIT_PAD_SECONDS)
            else:
                render(state.text, target, settings.prompts_voice)
        except subprocess.CalledProcessError as exc:
            detail = exc.stderr.decode(errors="replace").strip() if exc.stderr else ""
            raise PromptBuildError(f"rendering {state.prompt_id} failed: {detail}") from exc
        manifests[directory][f"{name}.wav"] = {
            "sha256": _sha256(target), "text": state.text, "voice": settings.prompts_voice,
        }
        _save_manifest(directory, manifests[directory])
        report.generated.append(state.prompt_id)
    return report
