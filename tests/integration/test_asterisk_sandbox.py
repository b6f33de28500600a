"""The real Asterisk 22 sandbox: AMI login and CoreStatus, a Local channel whose FastAGI
half receives a DTMF digit sent by the other half, and a second instance that starts beside
the first and leaves no process behind when stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ami.client import AmiClient
from sandbox.instance import AsteriskSandbox
from sandbox.root import ASTERISK_BIN

pytestmark = pytest.mark.asterisk


async def test_ami_core_status(asterisk: AsteriskSandbox, ami: AmiClient) -> None:
    status = await ami.send({"Action": "CoreStatus"})
    assert status.ok
    assert int(status["CoreCurrentCalls"]) >= 0
    assert status["CoreStartupTime"].count(":") == 2  # HH:MM:SS
    assert status["CoreStartupDate"]
    assert ami.banner is not None and ami.banner.startswith("Asterisk Call Manager/")
    channels = await ami.send_list({"Action": "CoreShowChannels"})
    assert isinstance(channels, list)


async def test_ami_user_has_no_command_permission(ami: AmiClient) -> None:
    # manager.conf grants neither "command" nor "system" writes to the service's user
    response = await ami.send({"Action": "Command", "Command": "core show uptime"}, check=False)
    assert not response.ok and "Permission denied" in response.message


async def test_fastagi_receives_dtmf_over_local_channel(
    asterisk: AsteriskSandbox, ami: AmiClient
) -> None:
    settings = asterisk.settings
    assert settings is not None
    env: dict[str, str] = {}
    digit: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def probe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (line := (await reader.readline()).decode().rstrip("\n")) != "":
                key, _, value = line.partition(": ")
                env[key] = value
            for _ in range(10):  # the caller half keeps pressing 7; catch one press
                writer.write(b"WAIT FOR DIGIT 2000\n")
                await writer.drain()
                reply = (await reader.readline()).decode().strip()
                assert reply.startswith("200 result="), reply
                code = int(reply.split("=", 1)[1].split()[0])
                if code > 0:
                    digit.set_result(chr(code))
                    return
            digit.set_result("")
        except Exception as exc:  # hand any failure to the test
            if not digit.done():
                digit.set_exception(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(probe, settings.fastagi_host, settings.fastagi_port)
    try:
        with ami.events("OriginateResponse") as outcomes:
            response = await ami.send({
                "Action": "Originate",
                "Channel": "Local/s@sandbox-test-caller",
                "Context": "sandbox-test", "Exten": "s", "Priority": 1,
                "Async": True, "Timeout": 10000,
                "ActionID": "sandbox-dtmf-probe",
            })
            assert response.ok
            async with asyncio.timeout(20):
                pressed = await digit
                outcome = await outcomes.get()
    finally:
        server.close()
        await server.wait_closed()
    assert pressed == "7"
    assert env["agi_network_script"] == "probe"
    assert env["agi_context"] == "sandbox-test"
    assert outcome.action_id == "sandbox-dtmf-probe"
    assert outcome["Response"] == "Success" and outcome["Reason"] == "4"  # answered


async def test_recording_lands_in_the_prompts_directory(
    asterisk: AsteriskSandbox, ami: AmiClient
) -> None:
    settings = asterisk.settings
    assert settings is not None
    target = settings.effective_prompts_dir / "recordings" / "sandbox-probe.wav"
    target.unlink(missing_ok=True)
    with ami.events("OriginateResponse") as outcomes:
        await ami.send({
            "Action": "Originate", "Channel": "Local/s@sandbox-test-record",
            "Application": "Playback", "Data": "silence/1&beep",
            "Async": True, "ActionID": "sandbox-record-probe",
        })
        async with asyncio.timeout(10):
            outcome = await outcomes.get()
    assert outcome["Reason"] == "4"
    for _ in range(100):  # the file is complete once the Local pair has hung up
        if target.exists() and target.stat().st_size > 44:  # more than a WAV header
            break
        await asyncio.sleep(0.1)
    assert target.exists() and target.stat().st_size > 44
    target.unlink()


def _asterisk_pids(root: Path) -> set[int]:
    """Processes running the root's asterisk binary (any instance)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "root").resolve() == root.resolve() and (
                (entry / "cmdline").read_bytes().split(b"\0")[0].decode() == ASTERISK_BIN
            ):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def test_second_instance_runs_beside_and_stops_cleanly(
    asterisk: AsteriskSandbox, tmp_path: Path
) -> None:
    carrier = AsteriskSandbox(
        name="carrier", root=asterisk.root, run_dir=tmp_path / "carrier",
        conf_dir=asterisk.conf_dir, ami_port=15039, sip_port=15062, trunk_peer="hotline",
        peer_sip_port=asterisk.sip_port, rtp_start=16200, rtp_end=16399,
        fastagi_port=14574,
    )
    before = _asterisk_pids(asterisk.root)
    carrier.start()
    try:
        pid = carrier.pid()
        assert pid is not None and pid not in before
        assert "hotline" in carrier.cli("pjsip show endpoints")
        assert "carrier" in asterisk.cli("pjsip show endpoints")  # both answer at once
    finally:
        carrier.stop()
    assert not carrier.is_running()
    assert not Path(f"/proc/{pid}").exists()
    assert _asterisk_pids(asterisk.root) == before  # nothing of the carrier is left
    assert asterisk.is_running()
    assert "fully booted" in asterisk.cli("core waitfullybooted")
