"""Prompts spoken from data at call time: a department's name, the 整改 result a department
wrote for the citizen (issue 10 "Back to the citizen"). They cannot be in the catalogue
(ivr/prompts.py), whose texts are known when ``hotline prompts build`` runs, so each is rendered
with the catalogue's TTS (espeak-ng + sox, :func:`ivr.prompts.render`) on first use and cached
per text: ``<kind>-<hash of the text>.wav`` in the prompts directory, so the same text is
rendered once, however many calls say it, and a studio recording dropped under that name wins.

Rendering needs the prompts directory to be Asterisk's (``fastagi_check_prompts`` on: Asterisk
shares this host); otherwise only a file already there is used. A failure is never the call's:
the caller logs it and the dialog goes on without that prompt.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from hotline.settings import Settings
from ivr import prompts

log = logging.getLogger("hotline.ivr.spoken")


def prompt_id(kind: str, text: str) -> str:
    """``callback-result-1a2b3c4d5e6f``: one name per text (sha1, 12 hex digits)."""
    return f"{kind}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


async def spoken_prompt(settings: Settings, kind: str, text: str | None) -> str | None:
    """The prompt id saying ``text``, rendered if need be; None when there is nothing to say or
    it cannot be said (logged: without the text, never with it — it may name a person)."""
    if not text or not text.strip():
        return None
    pid = prompt_id(kind, text.strip())
    directory = settings.effective_prompts_dir
    if prompts.existing_file(directory, pid) is not None:
        return pid
    if not settings.fastagi_check_prompts:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(prompts.render, text.strip(), directory / f"{pid}.wav",
                                settings.prompts_voice)
    except Exception as exc:  # any failure: the dialog goes on without this prompt
        log.warning("spoken prompt not rendered", extra={"kind": kind, "prompt": pid,
                                                          "error": type(exc).__name__})
        return None
    return pid
