"""Prompts spoken from data at call time (ivr/spoken.py): the department's name and the 整改
result for the citizen (issue 10 "Back to the citizen"), rendered with the catalogue's real TTS
(espeak-ng + sox), cached per text, and never the call's failure."""

from __future__ import annotations

import logging
import shutil
import wave
from pathlib import Path
from typing import Any

import pytest

from ivr import prompts, spoken
from tests.conftest import make_settings, missing

TEXT = "已对窗口工作人员进行批评教育，并为您重新办理。"


def test_the_text_names_its_file() -> None:
    a, b = spoken.prompt_id("callback-result", TEXT), spoken.prompt_id("callback-result", "x")
    assert a.startswith("callback-result-") and len(a) == len("callback-result-") + 12
    assert a != b and a == spoken.prompt_id("callback-result", TEXT)


async def test_rendered_once_per_text_with_the_real_tts(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        missing("espeak-ng and sox")
    settings = make_settings(tmp_path)
    pid = await spoken.spoken_prompt(settings, "callback-result", TEXT)
    assert pid == spoken.prompt_id("callback-result", TEXT)
    path = settings.effective_prompts_dir / f"{pid}.wav"
    with wave.open(str(path)) as w:  # what Asterisk's wav format plays: 8 kHz mono 16-bit
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() / 8000 > 2.0  # a sentence was spoken, not a click
    stamp = path.stat().st_mtime_ns
    assert await spoken.spoken_prompt(settings, "callback-result", TEXT) == pid
    assert path.stat().st_mtime_ns == stamp  # cached: not rendered again


async def test_a_render_failure_leaves_the_prompt_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    # whatever level earlier tests configured
    caplog.set_level(logging.WARNING, logger="hotline.ivr.spoken")

    def broken(*_: Any, **__: Any) -> None:
        raise prompts.PromptBuildError("espeak-ng is not installed")

    monkeypatch.setattr(prompts, "render", broken)
    settings = make_settings(tmp_path)
    assert await spoken.spoken_prompt(settings, "callback-result", TEXT) is None
    assert "not rendered" in caplog.text and TEXT not in caplog.text
    assert await spoken.spoken_prompt(settings, "callback-result", "  ") is None


async def test_asterisk_elsewhere_uses_only_a_file_already_there(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fastagi_check_prompts=False)
    assert await spoken.spoken_prompt(settings, "callback-result", TEXT) is None
    pid = spoken.prompt_id("callback-result", TEXT)
    settings.effective_prompts_dir.mkdir(parents=True, exist_ok=True)
    (settings.effective_prompts_dir / f"{pid}.wav").write_bytes(b"\0" * 64)  # a site recording
    assert await spoken.spoken_prompt(settings, "callback-result", TEXT) == pid
