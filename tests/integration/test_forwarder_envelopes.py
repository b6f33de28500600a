"""SM2 envelopes made in a process of their own (forwarder.envelopes, issue 13): what it
makes decrypts and verifies on the receiver's side, a process that dies fails only what it
had and the next call starts another, and a forwarder whose envelope process is killed
mid-run loses nothing and sends no record twice."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from forwarder import sm2, transport
from forwarder.envelopes import EnvelopeProcessDied, Envelopes
from forwarder.profile import load as load_profile
from forwarder.simulated import APP_MARK, APP_WORD, Arrival, Receiver, add_case_ratings
from forwarder.worker import Forwarder
from storage.models import OutboxStatus
from tests.helpers.forwarding import all_in, context
from tests.waiting import wait_until


def _envelopes(rx: Receiver, tmp_path: Path, processes: int) -> Envelopes:
    settings = rx.settings_for(tmp_path, "sqlite+aiosqlite:///unused.db")
    return Envelopes(load_profile(settings).transport, transport.Secrets.from_settings(settings),
                     processes)


def _envelope_processes() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children() if p.is_alive()]


@pytest.mark.parametrize("processes", [1, 0], ids=["own process", "thread"])
async def test_envelopes_decrypt_and_verify_on_the_receivers_side(
    tmp_path: Path, processes: int
) -> None:
    rx = Receiver(transport="sm2_envelope")
    envelopes = _envelopes(rx, tmp_path, processes)
    await envelopes.start()
    try:
        if processes:
            [child] = _envelope_processes()
            assert child.pid != os.getpid()
        plains = [f'{{"projectNo":"GD{n:04d}","satisfaction":5,"x":"满意"}}'.encode()
                  for n in range(70)]  # three chunks
        params = await asyncio.gather(*envelopes.encrypt(plains))
        ts, signature = await envelopes.signed_time()
        assert await envelopes.signed_time() == (ts, signature)  # one signature a second
    finally:
        await envelopes.close()
    assert [sm2.decrypt(p, rx.receiver_private) for p in params] == plains
    assert sm2.verify(signature, (ts + APP_MARK + APP_WORD).encode(), rx.sender_public)
    # the whole request, as the simulated province unwraps it
    request = transport.envelope_request("GD0000:1", ts, signature, params[0], envelopes.cfg,
                                         envelopes.secrets)
    assert rx._unwrap(request.headers, request.body) == {
        "projectNo": "GD0000", "satisfaction": 5, "x": "满意"
    }
    # the work done there is counted apart from the forwarder's own CPU (the benchmark)
    assert (envelopes.cpu_seconds() > 0) == bool(processes)


async def test_a_killed_envelope_process_fails_what_it_had_and_the_next_call_starts_another(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rx = Receiver(transport="sm2_envelope")
    envelopes = _envelopes(rx, tmp_path, 1)
    await envelopes.start()
    try:
        [first] = _envelope_processes()
        waiting = envelopes.encrypt([b'{"a":1}'] * 200)  # seconds of work queued
        os.kill(first.pid, signal.SIGKILL)  # type: ignore[arg-type]
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert results and all(isinstance(r, EnvelopeProcessDied) for r in results[-32:])
        assert "SM2 envelope process died" in caplog.text
        # the next call is served by a new process
        [params] = await asyncio.gather(*envelopes.encrypt([b'{"b":2}']))
        assert sm2.decrypt(params, rx.receiver_private) == b'{"b":2}'
        [second] = _envelope_processes()
        assert second.pid != first.pid
    finally:
        await envelopes.close()
    assert _envelope_processes() == []  # closed: nothing left running


_HOLDER = """
import asyncio, multiprocessing, os, sys
from forwarder import sm2, transport
from forwarder.envelopes import Envelopes
from forwarder.profile import TransportConfig

async def main():
    private, _ = sm2.generate_keypair()
    _, public = sm2.generate_keypair()
    secrets = transport.Secrets(app_mark="m", app_word="w", sm2_private_key=private,
                                sm2_receiver_public_key=public)
    envelopes = Envelopes(TransportConfig(kind="sm2_envelope"), secrets, 1)
    await envelopes.start()
    with open(sys.argv[1] + ".tmp", "w") as out:
        print(*(p.pid for p in multiprocessing.active_children()), file=out)
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    await asyncio.sleep(600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


async def test_the_envelope_process_ends_with_a_forwarder_killed_outright(
    tmp_path: Path,
) -> None:
    """A forwarder killed by SIGKILL (or the OOM killer) cannot stop its envelope process,
    which would otherwise wait for work forever; it notices and ends."""
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER, encoding="utf-8")
    pids = tmp_path / "pids"
    # no pipes: the envelope process inherits the holder's descriptors
    holder = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(pids),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(600):
        if pids.exists():
            break
        await asyncio.sleep(0.1)
    [child] = [int(pid) for pid in pids.read_text().split()]
    assert not _gone(child)
    holder.kill()
    await holder.wait()
    for _ in range(100):
        if _gone(child):
            break
        await asyncio.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the envelope process outlived its forwarder")


@pytest.fixture
def forwarder_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.WARNING)
    logger = logging.getLogger("hotline.forwarder")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


async def test_a_dead_envelope_process_loses_nothing_and_repeats_nothing(
    tmp_path: Path, database_url: str, forwarder_log: list[logging.LogRecord]
) -> None:
    """The envelope process is killed while the forwarder works through a backlog: the
    records it was encrypting were never sent, so they go back to the outbox untouched and
    go later, once each; every record arrives, in order per case, and the worker goes on."""
    killed: list[int] = []

    async def kill_once(arrival: Arrival) -> web.StreamResponse | None:
        if sum(rx.requests.values()) == 20 and not killed:
            for child in _envelope_processes():
                killed.append(child.pid)  # type: ignore[arg-type]
                os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        return None

    async with Receiver(transport="sm2_envelope", behaviour=kill_once) as rx:
        settings = rx.settings_for(tmp_path, database_url, forwarder_batch_size=40,
                                   forwarder_lease_seconds=30.0, forwarder_request_timeout=5.0)
        async with context(settings) as ctx:
            rx.order = await add_case_ratings(ctx, 100, second_every=4)
            stopping = asyncio.Event()
            task = asyncio.create_task(Forwarder.from_context(ctx, name="fwd").run(stopping))
            try:
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx), within=120)
                assert not task.done()
            finally:
                stopping.set()
                await asyncio.wait_for(task, 30)
    assert killed, "the envelope process was not killed"
    expected = {k for keys in rx.order.values() for k in keys}
    assert set(rx.stored) == expected
    assert set(rx.requests.values()) == {1}, "a record was sent twice"
    rx.assert_clean()
    assert any("SM2 envelope process died" in r.getMessage() for r in forwarder_log)
    assert _envelope_processes() == []
