"""SM2 envelopes made off the forwarder's event loop (issue 13).

An envelope's costly part is the record's encryption: two point multiplications in pure
Python, about half a millisecond (OpenSSL's SM2 is no faster here). The signature covers
only the time, so it is made once a second. Both run in a process of their own (setting
``forwarder_sm2_processes``, default 1): in the forwarder's process they took the core that
the HTTP requests and the database work need, and more threads there only fight over the
GIL. The process is spawned, builds its point tables once, and is given a batch's
plaintexts in chunks, so that passing them costs per chunk, not per record, and a batch's
first requests leave while its later chunks are being encrypted. The ciphertext holds no
time: the envelope is put together when its request leaves, with the time of that second.

``forwarder_sm2_processes = 0`` keeps the work on one thread of the forwarder's process
(a machine with a single core).

A process that dies (killed, out of memory) fails the chunks it had with
:class:`EnvelopeProcessDied`; the forwarder then sends none of their records — they go back
to the outbox untouched, and go again — and the next chunk starts a new process.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from . import sm2, transport
from .profile import TransportConfig

log = logging.getLogger("hotline.forwarder")

#: plaintexts given to the process at once: large enough that passing them costs little per
#: record, small enough that a batch's first requests need not wait for the whole batch
CHUNK = 32

T = TypeVar("T")


class EnvelopeProcessDied(RuntimeError):
    """The process making the envelopes ended before it answered."""


# ------------------------------------------------------------------ in the envelope process
_CFG: TransportConfig | None = None
_SECRETS: transport.Secrets | None = None
_WARM_CPU = 0.0  # this process's CPU when it was ready: start-up is not per-record work


def _start(cfg: TransportConfig, secrets: transport.Secrets, own_process: bool) -> None:
    """The process's (or the thread's) set-up: the keys, and the point tables built once."""
    global _CFG, _SECRETS, _WARM_CPU
    parent = multiprocessing.parent_process()
    if own_process and parent is not None:
        # a Ctrl-C on the terminal reaches the whole process group: the forwarder stops this
        # process itself
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # and a forwarder killed outright (SIGKILL, out of memory) cannot: this process would
        # wait for work forever (it holds its own queue's other end), so it ends with it
        threading.Thread(target=_end_with, args=(parent,), daemon=True,
                         name="hotline-sm2-parent").start()
    _CFG, _SECRETS = cfg, secrets
    sm2.warm(secrets.sm2_receiver_public_key)
    _WARM_CPU = time.process_time()


def _end_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()  # returns when the parent process has ended
    os._exit(0)


def _report(value: T) -> tuple[int, float, T]:
    """``value`` with this process's id and the CPU it spent since it was ready."""
    return os.getpid(), time.process_time() - _WARM_CPU, value


def _ready() -> tuple[int, float, None]:
    return _report(None)


def _encrypt(plains: list[bytes]) -> tuple[int, float, list[str]]:
    assert _CFG is not None and _SECRETS is not None, "envelope process not started"
    cfg, secrets = _CFG, _SECRETS
    return _report(transport.envelope_params_many(plains, cfg, secrets))


def _sign(ts: str) -> tuple[int, float, str]:
    assert _CFG is not None and _SECRETS is not None, "envelope process not started"
    return _report(transport.envelope_signature(ts, _CFG, _SECRETS))


# ------------------------------------------------------------------ in the forwarder
class Envelopes:
    """Encryptions and signatures for one forwarder, in ``processes`` processes (0: on a
    thread of this process). :meth:`start` before use, :meth:`close` after."""

    def __init__(self, cfg: TransportConfig, secrets: transport.Secrets, processes: int) -> None:
        self.cfg = cfg
        self.secrets = secrets
        self.processes = processes
        self._executor: Executor | None = None
        self._signatures: dict[int, asyncio.Future[str]] = {}  # by whole second
        self._current: tuple[int, tuple[str, str]] | None = None  # the second's, once known
        self._cpu: dict[int, float] = {}  # by process id: CPU spent on envelopes so far

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        """Start the process (its imports and tables: about a second), or set up the thread;
        returns when envelopes can be made."""
        await self._call(_ready)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        self._signatures.clear()
        self._current = None
        if executor is not None:
            # the chunk in progress is finished (milliseconds), the queued ones dropped
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: executor.shutdown(wait=True, cancel_futures=True)
            )

    def cpu_seconds(self) -> float:
        """CPU the envelope processes spent making envelopes (their start-up apart): what the
        forwarder's own process time does not show."""
        return sum(self._cpu.values()) if self.processes else 0.0

    def _start_executor(self) -> Executor:
        if self._executor is None:
            if self.processes:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start, initargs=(self.cfg, self.secrets, True),
                )
            else:
                thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hotline-sm2")
                thread.submit(_start, self.cfg, self.secrets, False)
                self._executor = thread
        return self._executor

    def _call(self, fn: Callable[..., tuple[int, float, T]], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` off the loop; its answer, or EnvelopeProcessDied."""
        loop = asyncio.get_running_loop()
        executor = self._start_executor()
        try:
            done = asyncio.wrap_future(executor.submit(fn, *args), loop=loop)
        except BrokenProcessPool as exc:  # died before this was even queued
            done = loop.create_future()
            done.set_exception(exc)
        answer: asyncio.Future[T] = loop.create_future()

        def settle(f: asyncio.Future[tuple[int, float, T]]) -> None:
            if answer.done():
                return
            if f.cancelled():
                answer.cancel()
                return
            exc = f.exception()
            if isinstance(exc, BrokenProcessPool):
                self._died(executor)
                answer.set_exception(EnvelopeProcessDied(
                    "the SM2 envelope process ended before it answered"
                ))
            elif exc is not None:
                answer.set_exception(exc)
            else:
                pid, cpu, value = f.result()
                self._cpu[pid] = cpu
                answer.set_result(value)

        done.add_done_callback(settle)
        return answer

    def _died(self, executor: Executor) -> None:
        """A process of ``executor`` died: it is dropped, the next call starts another."""
        if self._executor is not executor:
            return  # already replaced
        self._executor = None
        self._signatures.clear()
        self._current = None
        log.error("the SM2 envelope process died; its records stay in the outbox and go "
                  "again, and a new process is started")
        executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ use
    def encrypt(self, plains: list[bytes]) -> list[asyncio.Future[str]]:
        """The envelope ``params`` of each plaintext (the record's JSON), one future each,
        given to the process in chunks of :data:`CHUNK`."""
        out: list[asyncio.Future[str]] = []
        loop = asyncio.get_running_loop()
        for start in range(0, len(plains), CHUNK):
            chunk = plains[start:start + CHUNK]
            answers = [loop.create_future() for _ in chunk]
            self._call(_encrypt, chunk).add_done_callback(_spread(answers))
            out.extend(answers)
        return out

    async def signed_time(self, now: float | None = None) -> tuple[str, str]:
        """The envelope time of this second and its signature. The next second's signature
        is asked for at the same time, so it is ready when that second comes."""
        second = int(time.time() if now is None else now)
        current = self._current
        if current is not None and current[0] == second:
            return current[1]  # every envelope of a second after the first
        signature = self._signature(second)
        self._signature(second + 1)
        for stale in [s for s in self._signatures if s < second]:
            del self._signatures[stale]
        ts = transport.envelope_time(self.cfg, second)
        # shielded: a sender cancelled while waiting must not cancel the others' signature
        signed = (ts, await asyncio.shield(signature))
        self._current = (second, signed)
        return signed

    def _signature(self, second: int) -> asyncio.Future[str]:
        found = self._signatures.get(second)
        if found is None or (found.done() and found.exception() is not None):
            found = self._signatures[second] = self._call(
                _sign, transport.envelope_time(self.cfg, second)
            )
            # asked ahead: a failure nobody waited for is not "never retrieved"
            found.add_done_callback(_seen)
        return found


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _spread(
    answers: list[asyncio.Future[str]],
) -> Callable[[asyncio.Future[list[str]]], None]:
    """A chunk's answer to the futures of its records."""

    def spread(chunk: asyncio.Future[list[str]]) -> None:
        if chunk.cancelled():
            for a in answers:
                a.cancel()
            return
        exc = chunk.exception()
        values = chunk.result() if exc is None else [None] * len(answers)
        for answer, value in zip(answers, values, strict=True):
            if answer.done():
                continue
            if exc is not None:
                answer.set_exception(exc)
            else:
                answer.set_result(value)  # type: ignore[arg-type]

    return spread
