"""``hotline call`` end to end: the command (in a thread, as from a shell) places a call from the
carrier over PJSIP into the 12345 queue, a simulated agent answers and hangs up, the citizen
rates, and the command prints what the service (here the test's FastAGI worker) stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sandbox.carrier import Carrier
from sandbox.instance import AsteriskSandbox
from service import cli
from service.context import AppContext

pytestmark = pytest.mark.asterisk


def _config(path: Path, ctx: AppContext, **extra: object) -> Path:
    """The service's own settings as a settings file, as an operator would have them."""
    s = ctx.settings
    values: dict[str, object] = {
        "data_dir": s.data_dir, "database_url": s.database_url,
        "asterisk_root": s.asterisk_root, "asterisk_run_dir": s.effective_asterisk_run_dir,
        "ami_port": s.ami_port, "asterisk_sip_port": s.asterisk_sip_port,
        "fastagi_port": s.fastagi_port, "asterisk_rtp_start": s.asterisk_rtp_start,
        "asterisk_rtp_end": s.asterisk_rtp_end, **extra,
    }
    lines = [f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_hotline_call_prints_the_stored_rating(
    asterisk: AsteriskSandbox, carrier: Carrier, hotline_service: AppContext,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(tmp_path / "hotline.toml", hotline_service)
    argv = ["--config", str(config), "call", "--keys", "4,2,2", "--agent", "A5001",
            "--agent-seconds", "2", "--key-gap", "2", "--timeout", "60"]
    code = await asyncio.to_thread(cli.main, argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert carrier.is_running()  # it was running before: left running
    assert "queued; agent A5001 answers" in out
    assert ": rated" in out
    assert "agent    A5001 (queue hotline)" in out
    assert "level    4 不满意" in out
    assert "reasons  2 办理效率" in out


def test_hotline_call_needs_the_sandbox_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    assert cli.main(["--config", str(config), "call", "--keys", "1"]) == 1
    assert "Asterisk is not running" in capsys.readouterr().err
