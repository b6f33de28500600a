"""The prompt catalogue and ``hotline prompts build``: texts from the settings, the check for
missing files, site recordings never overwritten, the Chinese digits SAY DIGITS plays on the
回访's zh channel (``<sounds>/zh/digits/<d>``), the composites (a menu of several prompts as ONE
file, issue 13) made from their parts' files and rebuilt when a part changed, and a real (small)
espeak-ng + sox render into Asterisk's 8 kHz mono 16-bit WAV."""

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
    """Render without espeak: a file whose bytes are the text (fast, deterministic); a
    composite is its parts' bytes joined by "+"."""
    rendered: list[str] = []

    def render(text: str, target: Path, voice: str, **kw: object) -> None:
        rendered.append(target.stem)
        target.write_bytes(f"{voice}:{text}:{kw}".encode())

    def concatenate(sources: list[Path], target: Path) -> None:
        rendered.append(target.stem)
        target.write_bytes(b"+".join(s.read_bytes() for s in sources))

    monkeypatch.setattr(prompts, "render", render)
    monkeypatch.setattr(prompts, "concatenate", concatenate)
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
        v for k, v in vars(prompts).items()
        if k.startswith(("SURVEY_", "CALLBACK_")) and isinstance(v, str)
    }
    composites = {c.id for c in prompts.COMPOSITES.values()}
    assert declared | composites | set(prompts.DIGIT_PROMPTS) == ids
    assert prompts.sound_name("survey-menu") == "hotline/survey-menu"


def test_composites_say_their_parts_in_order(tmp_path: Path) -> None:
    """Issue 13: each menu of several prompts is one prompt of the catalogue (one GET DATA);
    its text is its parts' texts in order, and follows the keypad map like them."""
    reversed_site = make(tmp_path, keypad_map={"1": 5, "2": 4, "3": 3, "4": 2, "5": 1})
    texts = prompts.catalogue(reversed_site)
    retry = prompts.retry_of(prompts.SURVEY_MENU)
    assert (retry.id, retry.parts) == ("survey-menu-retry",
                                       (prompts.SURVEY_INVALID, prompts.SURVEY_MENU))
    assert texts[retry.id] == "输入有误。" + texts[prompts.SURVEY_MENU]
    assert texts[retry.id].startswith("输入有误。非常不满意请按1，")
    invite = prompts.CALLBACK_INVITE_MENU
    assert texts[invite.id] == "".join(texts[p] for p in invite.parts)
    assert {c.id for c in prompts.COMPOSITES.values()} == {
        "survey-menu-retry", "survey-reasons-retry", "callback-resolved-retry",
        "callback-invite-menu", "callback-resolved-menu", "callback-level-menu"}
    assert {prompts.retry_of(m).parts for m in prompts.RETRIED_MENUS} <= set(prompts.COMPOSITES)
    # a single prompt is itself; several are their composite; anything else is a flow's bug
    assert prompts.played_as((prompts.SURVEY_MENU,)) == prompts.SURVEY_MENU
    assert prompts.played_as(invite.parts) == "callback-invite-menu"
    with pytest.raises(LookupError, match="not a composite"):
        prompts.played_as((prompts.SURVEY_MENU, prompts.SURVEY_INVALID))
    with pytest.raises(KeyError):
        prompts.retry_of(prompts.SURVEY_COMMENT_OFFER)  # not a menu with "输入有误"


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
    # and in three composites (the retry, the 回访's menus), which are made again from it
    with_menu = ["callback-invite-menu", "callback-level-menu", "survey-menu-retry"]
    assert {pid for pid, st in states.items() if st == "stale"} == {
        "survey-menu", "survey-welcome", *with_menu}
    assert prompts.build_prompts(changed).generated == ["survey-menu", "survey-welcome",
                                                         *with_menu]
    assert fake_render == ["survey-menu", "survey-welcome", *with_menu]


def test_composites_are_made_from_their_parts_and_rebuilt_when_a_part_changes(
    tmp_path: Path, fake_render: list[str]
) -> None:
    """Issue 13: "输入有误" + the menu is one file made of the two prompts' files; a site's
    studio take of a part flows into every composite that says it."""
    settings = make(tmp_path)
    directory = settings.effective_prompts_dir
    prompts.build_prompts(settings)
    retry = directory / "survey-menu-retry.wav"
    assert retry.read_bytes() == b"+".join(
        (directory / f"{p}.wav").read_bytes() for p in ("survey-invalid", "survey-menu"))
    manifest = json.loads((directory / prompts.MANIFEST).read_text())
    assert [p[:2] for p in manifest["survey-menu-retry.wav"]["parts"]] == [
        ["survey-invalid", "survey-invalid.wav"], ["survey-menu", "survey-menu.wav"]]

    (directory / "survey-invalid.wav").write_bytes(b"studio: shuru youwu")
    states = {s.prompt_id: s.state for s in prompts.inspect(settings)}
    assert states["survey-invalid"] == "site"
    retries = {"survey-menu-retry", "survey-reasons-retry", "callback-resolved-retry"}
    assert {pid for pid, st in states.items() if st == "stale"} == retries
    fake_render.clear()
    report = prompts.build_prompts(settings)
    assert set(report.generated) == retries and set(fake_render) == retries
    assert report.kept_site == ["survey-invalid"]
    assert retry.read_bytes().startswith(b"studio: shuru youwu+")
    assert (directory / "survey-invalid.wav").read_bytes() == b"studio: shuru youwu"
    assert prompts.build_prompts(settings).generated == []  # nothing changed since


def test_a_site_recording_in_another_format_replaces_ours_and_feeds_the_composites(
    tmp_path: Path, fake_render: list[str]
) -> None:
    """A site drops survey-menu.sln16 beside the WAV we generated: ours is removed (Asterisk
    could pick either), and the composites saying the menu are made from the site's file."""
    settings = make(tmp_path)
    directory = settings.effective_prompts_dir
    prompts.build_prompts(settings)
    (directory / "survey-menu.sln16").write_bytes(b"studio menu, 16 kHz")
    [menu] = [s for s in prompts.inspect(settings) if s.prompt_id == "survey-menu"]
    assert (menu.state, menu.path) == ("site", directory / "survey-menu.sln16")
    assert menu.superseded == directory / "survey-menu.wav"
    report = prompts.build_prompts(settings)
    assert report.retired == ["survey-menu"] and report.kept_site == ["survey-menu"]
    assert not (directory / "survey-menu.wav").exists()
    assert "survey-menu.wav" not in json.loads((directory / prompts.MANIFEST).read_text())
    assert set(report.generated) == {"survey-menu-retry", "callback-invite-menu",
                                     "callback-level-menu"}
    assert (directory / "survey-menu-retry.wav").read_bytes().endswith(b"+studio menu, 16 kHz")
    manifest = json.loads((directory / prompts.MANIFEST).read_text())
    assert manifest["callback-level-menu.wav"]["parts"][1][:2] == [
        "survey-menu", "survey-menu.sln16"]
    assert prompts.missing_prompts(settings) == []


def test_a_site_recording_of_a_composite_is_kept(tmp_path: Path, fake_render: list[str]) -> None:
    """A site may record a whole menu itself; the build never overwrites it, even when a part
    changes, and it counts as present."""
    settings = make(tmp_path)
    directory = settings.effective_prompts_dir
    directory.mkdir(parents=True)
    (directory / "callback-invite-menu.gsm").write_bytes(b"studio invitation, menu and hint")
    report = prompts.build_prompts(settings)
    assert report.kept_site == ["callback-invite-menu"]
    assert not (directory / "callback-invite-menu.wav").exists()
    changed = make(tmp_path, keypad_map={"1": 5, "2": 4, "3": 3, "4": 2, "5": 1})
    again = prompts.build_prompts(changed)
    assert "callback-invite-menu" in again.kept_site
    assert "callback-invite-menu" not in again.generated
    assert prompts.missing_prompts(changed) == []


def test_composites_count_as_prompts_for_the_start_up_check(
    tmp_path: Path, fake_render: list[str]
) -> None:
    """``hotline serve`` refuses to start while a prompt is missing: a composite too."""
    settings = make(tmp_path)
    prompts.build_prompts(settings)
    (settings.effective_prompts_dir / "callback-resolved-menu.wav").unlink()
    assert prompts.missing_prompts(settings) == ["callback-resolved-menu"]


def _silence_wav(path: Path, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))


@pytest.mark.skipif(not shutil.which("sox"), reason="sox not installed")
def test_a_part_sox_cannot_read_says_what_the_site_must_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site's "输入有误" in G.729: the three retries cannot be made from it; the others are
    built, and the error names each composite to record, its parts and its text."""
    monkeypatch.setattr(prompts, "render",
                        lambda text, target, voice, **kw: _silence_wav(target, 0.1))
    settings = make(tmp_path)
    directory = settings.effective_prompts_dir
    directory.mkdir(parents=True)
    (directory / "survey-invalid.g729").write_bytes(b"\x01" * 20)
    with pytest.raises(prompts.PromptBuildError) as caught:
        prompts.build_prompts(settings)
    message = str(caught.value)
    for retry in ("survey-menu-retry", "survey-reasons-retry", "callback-resolved-retry"):
        assert f"composite prompt {retry} cannot be built: its part survey-invalid is the " \
               "site recording survey-invalid.g729, a format sox cannot read" in message
        assert f"The site must record {retry} itself" in message
        assert f"{directory / retry}.<format>" in message
        assert not (directory / f"{retry}.wav").exists()
    assert "(survey-invalid + survey-menu: \"输入有误。非常满意请按1，" in message
    assert prompts.missing_prompts(settings) == [
        "callback-resolved-retry", "survey-menu-retry", "survey-reasons-retry"]
    # what could be made was made: the 回访's menus
    assert (directory / "callback-invite-menu.wav").exists()
    # the site records it: the build is content
    (directory / "survey-menu-retry.g729").write_bytes(b"\x02" * 20)
    (directory / "survey-reasons-retry.g729").write_bytes(b"\x02" * 20)
    (directory / "callback-resolved-retry.g729").write_bytes(b"\x02" * 20)
    assert prompts.build_prompts(settings).generated == []
    assert prompts.missing_prompts(settings) == []


@pytest.mark.skipif(not shutil.which("sox"), reason="sox not installed")
def test_a_part_file_sox_fails_on_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "survey-invalid.ogg"
    broken.write_bytes(b"not ogg")  # a format sox reads, but not this file
    _silence_wav(tmp_path / "survey-menu.wav", 0.2)
    with pytest.raises(prompts.UnreadablePart) as caught:
        prompts.concatenate([broken, tmp_path / "survey-menu.wav"], tmp_path / "out.wav")
    assert caught.value.source == broken and "sox cannot read it" in caught.value.detail
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.skipif(not shutil.which("sox"), reason="sox not installed")
def test_real_concatenation_of_parts_in_several_formats_is_asterisk_wav(tmp_path: Path) -> None:
    """sox joins a generated 8 kHz WAV, a site's 16 kHz raw .sln16 and a stereo 44.1 kHz WAV
    into one 8 kHz mono 16-bit WAV as long as the three, in order."""
    first = tmp_path / "survey-invalid.sln16"  # raw signed 16-bit, 16 kHz: 0.5 s of a tone
    samples = [int(8000 * __import__("math").sin(i / 5)) for i in range(8000)]
    first.write_bytes(b"".join(v.to_bytes(2, "little", signed=True) for v in samples))
    second = tmp_path / "survey-menu.wav"
    _silence_wav(second, 1.0)
    third = tmp_path / "callback-dnc-hint.wav"
    with wave.open(str(third), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(b"\0\0\0\0" * 22050)  # 0.5 s
    out = tmp_path / "composite.wav"
    prompts.concatenate([first, second, third], out)
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        frames = w.readframes(w.getnframes())
    assert abs(len(frames) / 2 / 8000 - 2.0) < 0.01
    loud = [abs(int.from_bytes(frames[i:i + 2], "little", signed=True))
            for i in range(0, len(frames), 2)]
    assert max(loud[:3800]) > 4000  # the tone first
    assert max(loud[4200:]) < 50  # then the silences


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
    # 17 prompts, 6 composites, 10 digits
    assert "generated: 33" in out and "all 33 prompts present" in out
    digits = tmp_path / "data" / "sounds" / "zh" / "digits"
    assert sorted(p.name for p in digits.iterdir()) == [f"{d}.wav" for d in "0123456789"]
