"""The prompt catalogue and ``hotline prompts build``: texts from the settings, the check for
missing files, site recordings never overwritten, the Chinese digits SAY DIGITS plays on the
回访's zh channel (``<sounds>/zh/digits/<d>``), and a real (small) espeak-ng + sox render into
Asterisk's 8 kHz mono 16-bit WAV."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import pytest

from hotline.settings import Settings, load_settings
from ivr import prompts
from service.cli import main


def make(tmp_path: Path, **kw: object) -> Settings:
    return load_settings(Path("/dev/null"), data_dir=tmp_path / "data", **kw)


@pytest.fixture
def fake_render(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Render without espeak: a file whose bytes are the text (fast, deterministic)."""
    rendered: list[str] = []

    def render(text: str, target: Path, voice: str, **kw: object) -> None:
        rendered.append(target.stem)
        target.write_bytes(f"{voice}:{text}:{kw}".encode())

    monkeypatch.setattr(prompts, "render", render)
    return rendered


def test_menu_text_follows_the_keypad_map(tmp_path: Path) -> None:
    """Issue 3: "非常满意请按1，满意请按2，基本满意请按3，不满意请按4，非常不满意请按5"."""
    texts = prompts.catalogue(make(tmp_path))
    assert texts[prompts.SURVEY_MENU] == (
        "非常满意请按1，满意请按2，基本满意请按3，不满意请按4，非常不满意请按5。"
    )
    reversed_site = make(tmp_path, keypad_map={"1": 5, "2": 4, "3": 3, "4": 2, "5": 1})
    assert prompts.catalogue(reversed_site)[prompts.SURVEY_MENU].startswith("非常不满意请按1，")


def test_the_welcome_is_the_greeting_and_the_menu_in_one_prompt(tmp_path: Path) -> None:
    """Issue 13: one prompt, so a key pressed as the greeting ends is not lost between two
    AGI commands; it follows the keypad map like the menu."""
    reversed_site = make(tmp_path, keypad_map={"1": 5, "2": 4, "3": 3, "4": 2, "5": 1})
    texts = prompts.catalogue(reversed_site)
    assert texts[prompts.SURVEY_WELCOME] == (
        "您好，请您对本次通话的服务进行评价。" + texts[prompts.SURVEY_MENU]
    )


def test_reason_menu_text_follows_the_reason_setting(tmp_path: Path) -> None:
    texts = prompts.catalogue(make(tmp_path))
    assert texts[prompts.SURVEY_REASONS] == (
        "请选择不满意的原因：服务态度请按1，办理效率请按2，办理结果请按3，政策规定请按4，其他请按5。"
    )
    custom = make(tmp_path, survey_reasons=[{"key": "1", "code": "A1", "label": "态度差"}])
    assert prompts.catalogue(custom)[prompts.SURVEY_REASONS] == "请选择不满意的原因：态度差请按1。"


def test_every_prompt_the_survey_plays_is_in_the_catalogue(tmp_path: Path) -> None:
    ids = set(prompts.catalogue(make(tmp_path)))
    declared = {
        v for k, v in vars(prompts).items() if k.startswith(("SURVEY_", "CALLBACK_"))
    }
    assert declared | set(prompts.DIGIT_PROMPTS) == ids
    assert prompts.sound_name("survey-menu") == "hotline/survey-menu"


def test_chinese_digits_are_in_the_catalogue_with_yao_for_one(tmp_path: Path) -> None:
    """SAY DIGITS on a zh channel plays digits/<d> from sounds/zh: 零 幺 二 … 九 (1 as 幺, as
    telephone and case numbers are read; 一 is too close to 七 on a telephone line)."""
    texts = prompts.catalogue(make(tmp_path))
    assert [texts[f"zh/digits/{d}"] for d in "0123456789"] == list("零幺二三四五六七八九")
    assert prompts.DIGIT_PROMPTS == tuple(f"zh/digits/{d}" for d in "0123456789")
    assert prompts.LANGUAGE == "zh"
    assert prompts.sound_name("zh/digits/4") == "zh/digits/4"


def test_digits_live_in_the_zh_folder_beside_the_prompts(tmp_path: Path) -> None:
    """As in Asterisk's sounds tree: …/sounds/hotline/<id> and …/sounds/zh/digits/<d>."""
    settings = make(tmp_path)
    sounds = tmp_path / "data" / "sounds"
    assert prompts.prompts_dir(settings) == sounds / "hotline"
    assert prompts.language_dir(settings) == sounds / "zh"
    assert prompts.place(settings, "zh/digits/1") == (sounds / "zh", "digits/1")
    assert prompts.place(settings, "survey-menu") == (sounds / "hotline", "survey-menu")
    site = make(tmp_path, prompts_dir=tmp_path / "asterisk" / "sounds" / "hotline")
    assert prompts.language_dir(site) == tmp_path / "asterisk" / "sounds" / "zh"


def test_missing_prompts_are_listed_and_any_asterisk_format_counts(tmp_path: Path) -> None:
    settings = make(tmp_path)
    assert set(prompts.missing_prompts(settings)) == set(prompts.catalogue(settings))
    directory = settings.effective_prompts_dir
    directory.mkdir(parents=True)
    (directory / "survey-menu.sln16").write_bytes(b"\0\0" * 100)
    (directory / "survey-welcome.wav").write_bytes(b"")  # empty: unplayable, still missing
    missing = prompts.missing_prompts(settings)
    assert "survey-menu" not in missing and "survey-welcome" in missing
    assert "zh/digits/7" in missing  # the start-up check covers the digits too
    digits = prompts.language_dir(settings) / "digits"
    digits.mkdir(parents=True)
    (digits / "7.gsm").write_bytes(b"\0" * 33)  # a Chinese sound pack's file
    assert "zh/digits/7" not in prompts.missing_prompts(settings)


def test_build_generates_then_leaves_unchanged_prompts_alone(
    tmp_path: Path, fake_render: list[str]
) -> None:
    settings = make(tmp_path)
    first = prompts.build_prompts(settings)
    assert sorted(first.generated) == sorted(prompts.catalogue(settings))
    assert prompts.missing_prompts(settings) == []
    fake_render.clear()
    second = prompts.build_prompts(settings)
    assert second.generated == [] and fake_render == []
    assert prompts.build_prompts(settings, force=True).generated == second.unchanged


def test_build_renders_the_digits_into_the_zh_folder_with_its_own_manifest(
    tmp_path: Path, fake_render: list[str]
) -> None:
    settings = make(tmp_path)
    report = prompts.build_prompts(settings)
    assert set(prompts.DIGIT_PROMPTS) <= set(report.generated)
    digits = prompts.language_dir(settings) / "digits"
    assert sorted(p.name for p in digits.iterdir()) == [f"{d}.wav" for d in "0123456789"]
    # rendered with the digits' padding (even rhythm when SAY DIGITS strings them together)
    assert (digits / "1.wav").read_bytes().decode() == (
        f"{settings.prompts_voice}:幺:{{'pad': {prompts.DIGIT_PAD_SECONDS}}}")
    assert not (prompts.prompts_dir(settings) / "zh").exists()
    manifest = json.loads((prompts.language_dir(settings) / prompts.MANIFEST).read_text())
    assert sorted(manifest) == [f"digits/{d}.wav" for d in "0123456789"]
    assert manifest["digits/1.wav"]["text"] == "幺"
    assert not any("digits" in k for k in json.loads(
        (prompts.prompts_dir(settings) / prompts.MANIFEST).read_text()))
    states = {s.prompt_id: s.state for s in prompts.inspect(settings)}
    assert {states[d] for d in prompts.DIGIT_PROMPTS} == {"generated"}


def test_installed_chinese_sound_pack_is_kept(tmp_path: Path, fake_render: list[str]) -> None:
    """A site with Chinese sound files (any format) keeps them; SAY DIGITS plays the pack."""
    settings = make(tmp_path)
    digits = prompts.language_dir(settings) / "digits"
    digits.mkdir(parents=True)
    (digits / "1.gsm").write_bytes(b"pack yi")
    (digits / "2.wav").write_bytes(b"pack er")
    report = prompts.build_prompts(settings, force=True)
    assert {"zh/digits/1", "zh/digits/2"} <= set(report.kept_site)
    assert not (digits / "1.wav").exists()
    assert (digits / "2.wav").read_bytes() == b"pack er"
    assert "1" not in fake_render and "3" in fake_render
    # a generated digit the site later replaced is recognised by its hash
    (digits / "3.wav").write_bytes(b"studio san")
    again = prompts.build_prompts(settings, force=True)
    assert "zh/digits/3" in again.kept_site
    assert (digits / "3.wav").read_bytes() == b"studio san"


def test_site_recording_is_never_overwritten(tmp_path: Path, fake_render: list[str]) -> None:
    """A site replaces any prompt by dropping a file of the same name."""
    settings = make(tmp_path)
    directory = settings.effective_prompts_dir
    directory.mkdir(parents=True)
    studio = directory / "survey-thanks.wav"
    studio.write_bytes(b"studio recording")
    report = prompts.build_prompts(settings, force=True)
    assert report.kept_site == ["survey-thanks"]
    assert studio.read_bytes() == b"studio recording"
    # a generated file the site later replaced is recognised by its hash
    (directory / "survey-menu.wav").write_bytes(b"another studio take")
    again = prompts.build_prompts(settings, force=True)
    assert set(again.kept_site) == {"survey-thanks", "survey-menu"}
    assert (directory / "survey-menu.wav").read_bytes() == b"another studio take"


def test_changed_text_regenerates_only_the_prompts_saying_it(
    tmp_path: Path, fake_render: list[str]
) -> None:
    prompts.build_prompts(make(tmp_path))
    fake_render.clear()
    changed = make(tmp_path, keypad_map={"1": 5, "2": 4, "3": 3, "4": 2, "5": 1})
    states = {s.prompt_id: s.state for s in prompts.inspect(changed)}
    assert states["survey-menu"] == "stale" and states["survey-thanks"] == "generated"
    assert states["survey-welcome"] == "stale"  # the menu is in the welcome too
    assert prompts.build_prompts(changed).generated == ["survey-menu", "survey-welcome"]
    assert fake_render == ["survey-menu", "survey-welcome"]


def test_missing_tool_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompts.shutil, "which", lambda name: None)
    with pytest.raises(prompts.PromptBuildError, match="espeak-ng is not installed"):
        prompts.render("你好", tmp_path / "x.wav", "cmn-latn-pinyin")


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                    reason="espeak-ng and sox not installed")
def test_real_render_is_asterisk_wav(tmp_path: Path) -> None:
    """A real espeak-ng (Mandarin) + sox render: 8 kHz, mono, 16-bit PCM, a second or more."""
    target = tmp_path / "survey-invalid.wav"
    prompts.render("输入有误。", target, "cmn-latn-pinyin")
    with wave.open(str(target)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getcomptype() == "NONE"
        assert w.getnframes() > 4000


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                    reason="espeak-ng and sox not installed")
def test_real_digit_render_is_trimmed_and_padded(tmp_path: Path) -> None:
    """A digit: espeak-ng's own silence cut, exactly the padding around the speech."""
    plain, digit = tmp_path / "plain.wav", tmp_path / "1.wav"
    prompts.render("幺", plain, "cmn-latn-pinyin")
    before, after = prompts.DIGIT_PAD_SECONDS
    prompts.render("幺", digit, "cmn-latn-pinyin", pad=(before, after))
    with wave.open(str(digit)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        frames = w.readframes(w.getnframes())
    with wave.open(str(plain)) as w:
        plain_frames = w.getnframes()
    samples = [abs(int.from_bytes(frames[i:i + 2], "little", signed=True))
               for i in range(0, len(frames), 2)]
    assert len(samples) < plain_frames  # shorter than espeak-ng's own timing
    assert 0.2 < len(samples) / 8000 < 0.8
    # the padding is silence (but for dither and the resampler's ringing, 10 ms at most)
    lead, tail, ring = int(before * 8000), int(after * 8000), 80
    assert max(samples[:lead - ring]) < 50 and max(samples[-tail + ring:]) < 50
    assert max(samples[lead:lead + 400]) > 1000  # speech starts right after it


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                    reason="espeak-ng and sox not installed")
def test_cli_build_and_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("HOTLINE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOTLINE_CONFIG", "/dev/null")
    assert main(["prompts", "check"]) == 1
    assert main(["prompts", "build"]) == 0
    assert main(["prompts", "check"]) == 0
    out = capsys.readouterr().out
    assert "generated: 27" in out and "all 27 prompts present" in out  # 17 prompts, 10 digits
    digits = tmp_path / "data" / "sounds" / "zh" / "digits"
    assert sorted(p.name for p in digits.iterdir()) == [f"{d}.wav" for d in "0123456789"]
