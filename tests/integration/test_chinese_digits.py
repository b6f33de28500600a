"""SAY DIGITS speaks Chinese on the 回访: on real Asterisk 22, a call from the hotline through
the carrier simulator into the real ``callback`` dialplan context (which sets the channel's
language to zh) plays the digits ``hotline prompts build`` rendered into ``<sounds>/zh/digits``,
and the service's own ``hotline/<id>`` prompts still play on that zh channel (main/file.c falls
back from ``sounds/zh/hotline/<id>`` to ``sounds/hotline/<id>``).

What proves it is *our* files that were played, not Asterisk's English digits: the kernel
(inotify, on the host directories the sandbox bind-mounts) reports which files Asterisk opened;
Asterisk's verbose log says ``Playing 'digits/4…' (language 'zh')``; and SAY DIGITS takes as long
as our files last (English digits last 60 % longer). On the same call, switched to English,
SAY DIGITS leaves our files alone: the measure tells the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import secrets
import struct
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ami.client import AmiClient
from ivr import prompts
from ivr.agi import protocol as p
from ivr.agi.channel import AgiChannel
from sandbox.carrier import Behaviour, Carrier, number, random_tag
from sandbox.instance import AsteriskSandbox
from sandbox.root import CHROOT_RUN_DIR
from tests.conftest import make_settings

CASE_DIGITS = "0123456789"


# ------------------------------------------------------------------------ without Asterisk
def test_sandbox_mounts_the_zh_folder_at_sounds_zh(tmp_path: Path) -> None:
    """from_settings bind-mounts the digits' folder at <astdatadir>/sounds/zh, beside
    sounds/hotline; a root's own sounds/zh (a Chinese sound pack) is not linked over it."""
    settings = make_settings(tmp_path)
    root = tmp_path / "root"
    for folder in ("usr/share/asterisk/documentation", "usr/share/asterisk/sounds/en",
                   "usr/share/asterisk/sounds/zh"):
        (root / folder).mkdir(parents=True)
    sandbox = AsteriskSandbox.from_settings(settings, root=root, run_dir=tmp_path / "run")
    assert sandbox.mounts == {
        "share/sounds/hotline": prompts.prompts_dir(settings),
        "share/sounds/zh": prompts.language_dir(settings),
    }
    command = sandbox._command("true")
    pairs = list(zip(command[command.index(str(root)) + 1::2],
                     command[command.index(str(root)) + 2::2], strict=False))
    assert (str(prompts.language_dir(settings)), f"{CHROOT_RUN_DIR}/share/sounds/zh") in pairs
    sounds = tmp_path / "run" / "share" / "sounds"
    (sounds).mkdir(parents=True)
    (sounds / "zh").symlink_to("/usr/share/asterisk/sounds/zh")  # left by an older start
    sandbox.render()
    assert (sounds / "en").is_symlink()
    assert (sounds / "zh").is_dir() and not (sounds / "zh").is_symlink()  # the mount point
    assert prompts.language_dir(settings).is_dir()


# ------------------------------------------------------------------------ on Asterisk
class OpenWatch:
    """The files opened in some directories, as the kernel reports them (inotify IN_OPEN).
    inotify watches inodes, so opens through the sandbox's bind mounts are seen too."""

    IN_OPEN = 0x20
    EVENT = struct.Struct("iIII")

    def __init__(self, *directories: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.watches: dict[int, Path] = {}
        for directory in directories:
            wd = libc.inotify_add_watch(self.fd, str(directory).encode(), self.IN_OPEN)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
            self.watches[wd] = directory

    def opened(self) -> list[Path]:
        found = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(data):
                wd, _mask, _cookie, length = self.EVENT.unpack_from(data, offset)
                offset += self.EVENT.size
                name = data[offset:offset + length].rstrip(b"\0").decode()
                offset += length
                if name:
                    found.append(self.watches[wd] / name)

    def close(self) -> None:
        os.close(self.fd)


@contextlib.contextmanager
def watching(*directories: Path) -> Iterator[OpenWatch]:
    watch = OpenWatch(*directories)
    try:
        yield watch
    finally:
        watch.close()


@dataclass
class Seen:
    """What the AGI side saw on the call."""

    language: str | None = None
    channel: str | None = None
    say_seconds: float = 0.0
    say_result: str | None = None
    case_prompt: p.StreamResult | None = None
    opened_zh: list[Path] = field(default_factory=list)
    opened_prompts: list[Path] = field(default_factory=list)
    opened_after_en: list[Path] = field(default_factory=list)
    language_after_switch: str | None = None


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


@pytest.mark.asterisk
async def test_say_digits_plays_our_chinese_digits_on_the_callback_channel(
    asterisk: AsteriskSandbox, carrier: Carrier, ami: AmiClient,
) -> None:
    settings = asterisk.settings
    assert settings is not None
    await asyncio.to_thread(prompts.build_prompts, settings)  # idempotent; real espeak-ng
    digits_dir = prompts.language_dir(settings) / "digits"
    prompts_dir = prompts.prompts_dir(settings)
    ours = {d: digits_dir / f"{d}.wav" for d in CASE_DIGITS}
    assert all(path.is_file() for path in ours.values())
    seen = Seen()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def callback_route(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Stands in for the service's ``callback`` route: what it says, and how."""
        channel = AgiChannel(reader, writer, read_timeout=30)
        try:
            env = await channel.read_environment()
            seen.language, seen.channel = env.get("language"), env.channel
            with watching(digits_dir, prompts_dir) as watch:
                started = time.monotonic()
                reply = await channel.execute(p.say_digits(CASE_DIGITS))
                seen.say_seconds = time.monotonic() - started
                seen.say_result = reply.result
                seen.opened_zh = watch.opened()
                seen.case_prompt = await channel.stream_file(
                    prompts.sound_name(prompts.CALLBACK_CASE_NUMBER))
                seen.opened_prompts = watch.opened()
                # control: the same channel in English says Asterisk's own digit, not ours
                await channel.set_variable("CHANNEL(language)", "en")
                seen.language_after_switch = await channel.get_full_variable(
                    "${CHANNEL(language)}")
                await channel.execute(p.say_digits("4"))
                seen.opened_after_en = watch.opened()
            done.set_result(None)
        except Exception as exc:  # hand any failure to the test
            if not done.done():
                done.set_exception(exc)
        finally:
            await channel.close()

    messages = asterisk.run_dir / "log" / "messages.log"
    log_start = messages.stat().st_size if messages.exists() else 0  # this call's lines only
    server = await asyncio.start_server(callback_route, settings.fastagi_host,
                                        settings.fastagi_port)
    channel_id = f"zh-digits-{secrets.token_hex(4)}"
    citizen = number(Behaviour.SILENT, tag=random_tag())  # answers, listens, says nothing
    try:
        with ami.events("Hangup") as hangups:
            response = await ami.send({
                "Action": "Originate", "Channel": f"PJSIP/{citizen}@carrier",
                "Context": settings.callback_context, "Exten": "s", "Priority": 1,
                "ChannelId": channel_id, "Timeout": 10000, "Async": True,
                "CallerID": "<12345>", "ActionID": channel_id,
            })
            assert response.ok
            async with asyncio.timeout(45):
                await done
                await anext(e async for e in hangups if e.get("Uniqueid") == channel_id)
    except TimeoutError:
        pytest.fail(f"the call did not run its course\n{asterisk.log_tail(40)}")
    finally:
        server.close()
        await server.wait_closed()

    # the dialplan (ivr/dialplans/callback.conf) made the channel Chinese before the AGI
    assert seen.language == "zh"
    # SAY DIGITS opened our ten files, in the case number's order, and nothing else
    assert seen.say_result == "0"
    assert seen.opened_zh == [ours[d] for d in CASE_DIGITS]
    # ... and took as long as they last (English: about 60 % longer)
    ours_seconds = sum(wav_seconds(path) for path in ours.values())
    assert abs(seen.say_seconds - ours_seconds) < 1.0, (seen.say_seconds, ours_seconds)
    # the service's own prompt still plays on the zh channel, from sounds/hotline
    assert seen.case_prompt is not None and not seen.case_prompt.failed
    assert seen.opened_prompts == [prompts_dir / f"{prompts.CALLBACK_CASE_NUMBER}.wav"]
    # switched to English, SAY DIGITS leaves our files alone: the measure tells them apart
    assert seen.language_after_switch == "en"
    assert seen.opened_after_en == []

    # Asterisk's own account (verbose, messages.log; file.c for SAY DIGITS, res_agi.c for
    # STREAM FILE, which adds its options): every digit, language zh
    with messages.open("rb") as f:
        f.seek(log_start)
        log = f.read().decode(errors="replace")
    assert seen.channel is not None
    played = re.findall(rf"<{re.escape(seen.channel)}> Playing '([^']+)\.\w+' "
                        r"(?:\([^)]*\) )*\(language '(\w+)'\)", log)
    assert played == [
        *[(f"digits/{d}", "zh") for d in CASE_DIGITS],
        (prompts.sound_name(prompts.CALLBACK_CASE_NUMBER), "zh"),
        ("digits/4", "en"),
    ], asterisk.log_tail(40)
