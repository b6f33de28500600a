"""What the benchmarks share: a fresh database per run, a server in its own process (so its CPU
time and memory can be read from /proc), free ports, and the one way a figure is printed.

A figure line is ``name  value unit  goal  verdict``: the goal is printed beside every figure,
and ratios are taken against a floor measured in the same run (the machine is shared and
noisy, so an absolute rate from another day says little).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import typing
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hotline.settings import Settings
from storage import migrate
from storage.pg_admin import PgAdmin

#: where a benchmark creates (and drops) its own PostgreSQL database
PG = PgAdmin.from_env("HOTLINE_BENCH_PG")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def figure(name: str, value: float | int | str, unit: str = "", goal: str = "",
           ok: bool | None = None) -> None:
    """One line per figure, its goal beside it (``ok`` None: a figure without a goal)."""
    shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
    verdict = "" if ok is None else ("met" if ok else "NOT MET")
    print(f"{name:<46} {shown:>12} {unit:<10} {goal:<16} {verdict}".rstrip(), flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def fresh_database(kind: str, workdir: Path) -> AsyncIterator[str]:
    """A migrated, empty database for one run: a SQLite file in ``workdir``, or a PostgreSQL
    database of its own, dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        await migrate.upgrade_async(url)
        yield url
        return
    name = f"hotline_bench_{uuid.uuid4().hex[:10]}"
    url = await PG.create(name)
    try:
        await migrate.upgrade_async(url)
        yield url
    finally:
        await PG.drop(name)


def server_env(workdir: Path, database_url: str, **settings: object) -> dict[str, str]:
    """Settings of a server process: only what is asked is served, nothing of the developer's
    own HOTLINE_* environment leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    values: dict[str, object] = {
        "data_dir": workdir / "data",
        "database_url": database_url,
        "serve_http": False,
        "serve_forwarder": False,
        "serve_scheduler": False,
        "serve_default_ratings": False,
        "fastagi_check_prompts": False,
        **settings,
    }
    for key, value in values.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
        env[f"HOTLINE_{key.upper()}"] = shown
    env["HOTLINE_CONFIG"] = os.devnull
    return env


@dataclass
class ServerProcess:
    """A server in its own process: started, waited for (its port answers), measured, stopped."""

    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> ServerProcess:
        self.process = await asyncio.to_thread(self._spawn)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start: see {self.log_path}\n"
                                   + self.log_path.read_text()[-2000:])
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return self
        raise RuntimeError(f"server did not listen on {self.port} within 60 s")

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log,
                                    cwd=PROJECT_ROOT)

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_bytes(self) -> int:
        pages = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1])
        return pages * PAGE_SIZE


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def add_event_loop_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--event-loop``: the service's setting ``event_loop`` (its choices and its default)."""
    field = Settings.model_fields["event_loop"]
    parser.add_argument("--event-loop", choices=list(typing.get_args(field.annotation)),
                        default=field.default,
                        help=f"{what} (the service's setting event_loop; default: %(default)s)")
