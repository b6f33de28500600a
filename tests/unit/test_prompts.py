"""The prompt catalogue and ``hotline prompts build``: texts from the settings, the check for
missing files, site recordings never overwritten, and a real (small) espeak-ng + sox render
into Asterisk's 8 kHz mono 16-bit WAV."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from hotline.cli import main
from hotline.settings import Settings, load_settings
from ivr import prompts


def make(tmp_path: Path, **kw: object) -> Settings:
    return load_settings(Path("/dev/null"), data_dir=tmp_path / "data", **kw)


@pytest.fixture
def fake_render(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Render without espeak: a file whose bytes are the text (fast, deterministic)."""
    rendered: list[str] = []

    def render(text: str, target: Path, voice: str) -> None:
        rendered.append(target.stem)
        target.write_bytes(f"{voice}:{text}".encode())

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
    assert declared == ids
    assert prompts.sound_name("survey-menu") == "hotline/survey-menu"


def test_missing_prompts_are_listed_and_any_asterisk_format_counts(tmp_path: Path) -> None:
    settings = make(tmp_path)
    assert set(prompts.missing_prompts(settings)) == set(prompts.catalogue(settings))
    directory = settings.effective_prompts_dir
    directory.mkdir(parents=True)
    (directory / "survey-menu.sln16").write_bytes(b"\0\0" * 100)
    (directory / "survey-intro.wav").write_bytes(b"")  # empty: unplayable, still missing
    missing = prompts.missing_prompts(settings)
    assert "survey-menu" not in missing and "survey-intro" in missing


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


def test_changed_text_regenerates_only_that_prompt(tmp_path: Path, fake_render: list[str]) -> None:
    prompts.build_prompts(make(tmp_path))
    fake_render.clear()
    changed = make(tmp_path, keypad_map={"1": 5, "2": 4, "3": 3, "4": 2, "5": 1})
    states = {s.prompt_id: s.state for s in prompts.inspect(changed)}
    assert states["survey-menu"] == "stale" and states["survey-thanks"] == "generated"
    assert prompts.build_prompts(changed).generated == ["survey-menu"]
    assert fake_render == ["survey-menu"]


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
    assert "generated: 16" in out and "all 16 prompts present" in out
