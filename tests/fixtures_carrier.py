"""The carrier simulator and the service beside the Asterisk sandbox, for end-to-end calls.

``carrier`` (session): a started :class:`~sandbox.carrier.Carrier` facing the ``asterisk``
instance over the PJSIP trunk, on the ports and run directory derived from it (AMI port + 2,
SIP port + 1, RTP range above the hotline's; ``<run dir>-carrier``), exactly as ``hotline call``
derives them. Numbering scheme of its simulated citizens: sandbox/carrier.py.
``carrier_ami``: an AMI client logged in to the carrier, closed after the test.
``hotline_service`` (module): the service's real FastAGI worker (``service.agi.run``) on the
sandbox's FastAGI port, with a fresh SQLite database and the real prompts (espeak-ng), so the
survey runs for real; yields its :class:`AppContext` (``.db`` to read what calls stored). Module
scope: another module may start its own server on the same port once this one has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ami.client import AmiClient, AmiError
from ivr import prompts
from sandbox.carrier import Carrier
from sandbox.instance import AsteriskSandbox
from sandbox.root import SandboxError
from service import agi as server
from service.context import AppContext

#: the survey's digit timeout in these tests: short, so silence paths end quickly
DIGIT_TIMEOUT_MS = 3000


@pytest.fixture(scope="session")
def carrier(asterisk: AsteriskSandbox) -> Iterator[Carrier]:
    from tests.conftest import missing

    sim = Carrier.for_hotline(asterisk, die_with_parent=True)
    try:
        sim.start()
    except SandboxError as exc:
        missing(f"the carrier simulator beside the Asterisk sandbox ({exc})")
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
async def carrier_ami(carrier: Carrier) -> AsyncIterator[AmiClient]:
    client = carrier.ami()
    try:
        await client.connect()
    except AmiError as exc:
        pytest.fail(f"cannot log in to the carrier's AMI: {exc}\n{carrier.sandbox.log_tail()}")
    yield client
    await client.close()


async def _listening(host: str, port: int, task: asyncio.Task[None]) -> None:
    """Wait until the FastAGI server accepts connections (or its task failed)."""
    for _ in range(100):
        if task.done():
            task.result()  # raises the worker's error
            raise RuntimeError("the FastAGI worker stopped at once")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"FastAGI server not listening on {host}:{port}")


def _fresh_database(template: Path, directory: Path) -> Path:
    target = directory / "hotline.db"
    target.write_bytes(template.read_bytes())  # a migrated copy: no migration per module
    return target


@pytest.fixture(scope="module")
async def hotline_service(
    asterisk: AsteriskSandbox, sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AppContext]:
    base = asterisk.settings
    assert base is not None
    db_file = _fresh_database(sqlite_template, tmp_path_factory.mktemp("hotline-service"))
    settings = base.model_copy(update={
        "database_url": f"sqlite+aiosqlite:///{db_file}",
        "survey_digit_timeout_ms": DIGIT_TIMEOUT_MS,
    })
    # idempotent: keeps what another module (or a site recording) already put there
    prompts.build_prompts(settings)
    ctx = AppContext.create(settings)
    stopping = asyncio.Event()
    worker = asyncio.create_task(server.run(ctx, stopping))
    try:
        # the probe connection is a session without environment: the server logs and drops it
        await _listening(settings.fastagi_host, settings.fastagi_port, worker)
        yield ctx
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            await worker
        await ctx.close()
