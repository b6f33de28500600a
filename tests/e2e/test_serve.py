"""`hotline serve` as a user runs it: one process, every worker, clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import covered_years_file

HOTLINE = str(Path(sys.executable).with_name("hotline"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({"HOTLINE_DATA_DIR": str(tmp_path / "data"), "HOTLINE_LOG_FORMAT": "json",
                # /readyz answers 200 on any date (tests.conftest.covered_years_file)
                "HOTLINE_WORKDAY_OVERRIDES_FILE": str(covered_years_file(tmp_path))})
    env.update(extra)
    return env


def _wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read()


def _stop(proc: subprocess.Popen[bytes], seconds: float) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return err.decode()


def test_serve_runs_every_worker_on_the_embedded_default_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    http_port, agi_port = _free_port(), _free_port()
    env = _env(
        tmp_path, HOTLINE_HTTP_PORT=str(http_port), HOTLINE_FASTAGI_PORT=str(agi_port)
    )
    subprocess.run([HOTLINE, "prompts", "build"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        [HOTLINE, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _wait_port(http_port, proc)
        _wait_port(agi_port, proc)
        assert _get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200
        _, body = _get(f"http://127.0.0.1:{http_port}/api/v1/openapi.json")
        assert json.loads(body)["openapi"].startswith("3.")
        assert (tmp_path / "data" / "hotline.db").exists()  # migrated SQLite, no server needed
    finally:
        log = _stop(proc, 40)
    assert proc.returncode == 0, log
    assert '"service started"' in log or "service started" in log
    for worker in ("http", "fastagi", "forwarder", "scheduler", "default_ratings"):
        assert worker in log, f"worker {worker} not started"
    assert "service stopped" in log


def test_serve_refuses_a_bad_setting_naming_it(tmp_path: Path) -> None:
    env = _env(tmp_path, HOTLINE_FASTAGI_PORT="70000")
    proc = subprocess.run([HOTLINE, "serve"], env=env, capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert b"HOTLINE_FASTAGI_PORT" in proc.stderr


def test_help_lists_the_subcommands() -> None:
    out = subprocess.run([HOTLINE, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("serve", "db", "token", "asterisk", "prompts", "outbox", "campaign", "call"):
        assert command in out


def test_serve_with_asterisk_starts_and_stops_the_sandbox(tmp_path: Path) -> None:
    """README's first command ends in `hotline serve --asterisk`: Asterisk comes up with the
    service's configuration (AMI answers with the service's user) and goes away on stop."""
    from ami.client import AmiClient
    from sandbox.instance import AsteriskSandbox
    from sandbox.root import SandboxError, unavailable_reason
    from tests.conftest import make_settings, missing

    if reason := unavailable_reason():
        missing(f"Asterisk 22 sandbox ({reason})")
    try:  # the root is shared and cached; serve would build it, but not within this timeout
        AsteriskSandbox.from_settings(make_settings(tmp_path / "probe")).ensure_built()
    except SandboxError as exc:
        missing(f"Asterisk 22 root ({exc})")
    ports = {name: _free_port() for name in ("HTTP", "FASTAGI", "AMI", "ASTERISK_SIP")}
    env = _env(tmp_path, **{f"HOTLINE_{k}_PORT": str(v) for k, v in ports.items()},
               HOTLINE_ASTERISK_RTP_START="17000", HOTLINE_ASTERISK_RTP_END="17099")
    proc = subprocess.Popen(
        [HOTLINE, "serve", "--asterisk"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _wait_port(ports["HTTP"], proc, seconds=90)

        async def core_status() -> str | None:
            client = AmiClient("127.0.0.1", ports["AMI"], "hotline", "hotline-sandbox-secret")
            await client.connect()
            try:
                return (await client.send({"Action": "CoreStatus"})).get("Response")
            finally:
                await client.close()

        assert asyncio.run(core_status()) == "Success"
    finally:
        log = _stop(proc, 60)
    assert proc.returncode == 0, log
    with socket.socket() as s:  # AMI port closed: the sandbox stopped with the service
        assert s.connect_ex(("127.0.0.1", ports["AMI"])) != 0
