"""The prompt catalogue (prompt id → Chinese text): the one place prompt names live.

``hotline prompts build`` renders every prompt with espeak-ng (Mandarin) and sox into 8 kHz mono
16-bit WAV (Asterisk's ``wav`` format) in ``prompts_dir``; Asterisk plays them as
``hotline/<id>``, so its ``<astdatadir>/sounds/hotline`` must be (or link to) that directory.

A site replaces a prompt with a studio recording by dropping its own file under the same name
(``survey-menu.wav``, or another format Asterisk reads such as ``survey-menu.sln16``). The build
keeps a manifest of what it generated (with hashes) and never overwrites a file it did not
generate or that changed since.

Some texts depend on settings (the keypad map, the reason menu), so the catalogue is rendered
from the settings, and a generated prompt whose text changed is regenerated.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
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
SURVEY_INTRO = "survey-intro"
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
CALLBACK_RESOLVED = "callback-resolved"
CALLBACK_DNC_HINT = "callback-dnc-hint"
CALLBACK_SATISFACTION = "callback-satisfaction"
CALLBACK_DNC_DONE = "callback-dnc-done"

_FIXED_TEXTS = {
    SURVEY_INTRO: "您好，请您对本次通话的服务进行评价。",
    SURVEY_INVALID: "输入有误。",
    SURVEY_COMMENT_OFFER: "如需留言，请按1；不留言请按2。",
    SURVEY_COMMENT_RECORD: "请在提示音后留言，留言完毕请按井号键。",
    SURVEY_THANKS: "感谢您的评价，再见。",
    SURVEY_GOODBYE: "感谢您的来电，再见。",
    CALLBACK_GREETING: "您好，这里是12345政务服务便民热线，现对您反映的问题进行回访。",
    CALLBACK_INVITE: "您好，这里是12345政务服务便民热线，邀请您对近期来电的服务进行评价。",
    CALLBACK_CASE_NUMBER: "您的工单编号是",
    CALLBACK_DEPARTMENT: "承办单位是",
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


def catalogue(settings: Settings) -> dict[str, str]:
    """Every prompt the service plays, id → text, rendered for these settings."""
    texts = dict(_FIXED_TEXTS)
    texts[SURVEY_MENU] = menu_text(KeypadMap(settings.keypad_map))
    texts[SURVEY_REASONS] = reasons_text(settings)
    return dict(sorted(texts.items()))


def sound_name(prompt_id: str) -> str:
    """What Asterisk is asked to play (no extension: Asterisk picks the best format)."""
    return f"{SOUND_PREFIX}/{prompt_id}"


def prompts_dir(settings: Settings) -> Path:
    return settings.effective_prompts_dir


def existing_file(directory: Path, prompt_id: str) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        candidate = directory / f"{prompt_id}{ext}"
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    return None


def missing_prompts(settings: Settings) -> list[str]:
    """Prompt ids with no playable file: GET DATA would answer -1, which looks like a hang-up."""
    directory = prompts_dir(settings)
    return [pid for pid in catalogue(settings) if existing_file(directory, pid) is None]


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
    directory = prompts_dir(settings)
    manifest = _load_manifest(directory)
    states = []
    for pid, text in catalogue(settings).items():
        path = existing_file(directory, pid)
        entry = manifest.get(f"{pid}.wav")
        if path is None:
            state = "missing"
        elif path.name != f"{pid}.wav" or entry is None or entry.get("sha256") != _sha256(path):
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


def render(text: str, target: Path, voice: str) -> None:
    """Speak ``text`` into ``target``: 8 kHz, mono, 16-bit signed PCM WAV, normalised."""
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    with tempfile.TemporaryDirectory(prefix="hotline-prompt-") as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            [espeak, "-v", voice, "-s", "170", "-w", str(raw), "--stdin"],
            input=text.encode("utf-8"), check=True, capture_output=True, timeout=60,
        )
        out = Path(tmp) / "out.wav"
        subprocess.run(
            [sox, str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
             str(out), "gain", "-n", "-3"],
            check=True, capture_output=True, timeout=60,
        )
        # same directory, then rename: Asterisk never sees half a file
        staged = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(out, staged)
        os.replace(staged, target)


def build_prompts(settings: Settings, *, force: bool = False) -> BuildReport:
    """Generate missing and stale prompts (all of ours with ``force``); site files are kept."""
    directory = prompts_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(directory)
    report = BuildReport()
    for state in inspect(settings):
        if state.state == "site":
            report.kept_site.append(state.prompt_id)
            continue
        if state.state == "generated" and not force:
            report.unchanged.append(state.prompt_id)
            continue
        target = directory / f"{state.prompt_id}.wav"
        try:
            render(state.text, target, settings.prompts_voice)
        except subprocess.CalledProcessError as exc:
            detail = exc.stderr.decode(errors="replace").strip() if exc.stderr else ""
            raise PromptBuildError(f"rendering {state.prompt_id} failed: {detail}") from exc
        manifest[target.name] = {
            "sha256": _sha256(target), "text": state.text, "voice": settings.prompts_voice,
        }
        _save_manifest(directory, manifest)
        report.generated.append(state.prompt_id)
    return report
