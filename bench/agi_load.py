"""A FastAGI load generator playing Asterisk's side: every call is a new connection with a
fresh ``linkedid`` (a call already stored takes a shorter path and would measure the wrong
thing), answers at once, and presses 2 at the menu.

Lean on purpose (byte prefixes, no parsing of its own beyond what an answer needs), so that on a
2-core machine the generator costs the server as little CPU as possible.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ivr.agi.simulated import environment_lines

_EXPRESSION = re.compile(rb"\$\{[^{}]*\}")
_ENCODED = re.compile(rb"\$\{URIENCODE\(([^{}()]*)\)\}")
_run_ids = itertools.count(1)


@dataclass
class LoadResult:
    calls: int
    elapsed: float
    rated: int = 0  # the server set SURVEY_RESULT to 2
    failed: int = 0  # connection errors or timeouts
    commands: list[int] = field(default_factory=list)  # round trips per call
    #: linkedid → wall-clock time the key was answered (for keypress → receipt)
    keypress_at: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.calls / self.elapsed if self.elapsed else 0.0


def _environment(linkedid: str, route: str) -> bytes:
    lines = environment_lines(route=route, uniqueid=linkedid, callerid="13800138000")
    return "".join(f"{line}\n" for line in lines).encode()


def _full_variable(line: bytes, linkedid: bytes) -> bytes:
    """``GET FULL VARIABLE "<expression>"``: the linkedid is known, everything else unset."""
    expression = line[len(b"GET FULL VARIABLE "):].strip().strip(b'"')
    value = expression.replace(b"${CHANNEL(linkedid)}", linkedid)
    # innermost first, as Asterisk does: ${URIENCODE(${X})} → ${URIENCODE()} → "";
    # ${URIENCODE(<linkedid>)} → the linkedid (letters, digits and dots need no encoding)
    while True:
        unwrapped = _EXPRESSION.sub(b"", _ENCODED.sub(rb"\1", value))
        if unwrapped == value:
            break
        value = unwrapped
    return b"200 result=1 (" + value + b")\n"


def _answer(line: bytes, linkedid: bytes) -> bytes:
    if line.startswith(b"GET DATA"):
        return b"200 result=2\n"
    if line.startswith(b"STREAM FILE"):
        return b"200 result=0 endpos=16000\n"
    if line.startswith(b"GET FULL VARIABLE"):
        return _full_variable(line, linkedid)
    if line.startswith(b"GET VARIABLE"):
        return b"200 result=0\n"
    if line.startswith(b"SET VARIABLE"):
        return b"200 result=1\n"
    if line.startswith(b"CHANNEL STATUS"):
        return b"200 result=6\n"
    if line.startswith((b"VERBOSE", b"ANSWER", b"NOOP")):
        return b"200 result=1\n"
    return b"510 Invalid or unknown command\n"


async def one_call(
    port: int, linkedid: str, result: LoadResult, *, route: str = "survey",
    hold: asyncio.Event | None = None, at_menu: Callable[[], None] | None = None,
    within: float = 120.0,
) -> None:
    """One call; ``hold``: the caller thinks at the menu until it is set (sessions stay open)."""
    lid = linkedid.encode()
    count = 0
    rated = False
    try:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(_environment(linkedid, route))
                while line := await reader.readline():
                    count += 1
                    if line.startswith(b"GET DATA"):
                        if at_menu is not None:
                            at_menu()
                        if hold is not None:
                            await hold.wait()
                        result.keypress_at[linkedid] = time.time()
                    elif line.startswith(b"SET VARIABLE SURVEY_RESULT"):
                        rated = b"2" in line[len(b"SET VARIABLE SURVEY_RESULT"):]
                    writer.write(_answer(line, lid))
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        result.failed += 1
        return
    result.commands.append(count)
    result.rated += rated


async def run_load(
    port: int, calls: int, in_flight: int, *, route: str = "survey", prefix: str = "",
    within: float = 120.0,
) -> LoadResult:
    """``calls`` calls, ``in_flight`` of them open at any moment, as fast as the server goes."""
    run = next(_run_ids)
    base = prefix or f"{int(time.time())}{run:03d}"
    numbers = iter(range(calls))
    result = LoadResult(calls=calls, elapsed=0.0)

    async def lane() -> None:
        for n in numbers:
            await one_call(port, f"{base}.{n}", result, route=route, within=within)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(in_flight, calls))))
    result.elapsed = time.perf_counter() - started
    return result


async def run_paced(
    port: int, calls: int, per_second: float, *, prefix: str = "", within: float = 120.0,
) -> LoadResult:
    """``calls`` calls started at a steady ``per_second`` whatever the server does."""
    base = prefix or f"{int(time.time())}{next(_run_ids):03d}"
    result = LoadResult(calls=calls, elapsed=0.0)
    started = time.perf_counter()
    tasks = []
    for n in range(calls):
        delay = started + n / per_second - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(
            one_call(port, f"{base}.{n}", result, within=within)))
    await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - started
    return result


T = TypeVar("T")


async def hold_at_menu(
    port: int, sessions: int, prefix: str, while_open: Callable[[], Awaitable[T]]
) -> T:
    """Open ``sessions`` surveys that all wait at the menu, run ``while_open()`` once every one
    is there (and settled), then let them finish; returns what ``while_open`` returned."""
    hold = asyncio.Event()
    all_there = asyncio.Event()
    waiting = 0

    def at_menu() -> None:
        nonlocal waiting
        waiting += 1
        if waiting >= sessions:
            all_there.set()

    result = LoadResult(calls=sessions, elapsed=0.0)
    tasks = [asyncio.create_task(one_call(port, f"{prefix}.{n}", result, hold=hold,
                                          at_menu=at_menu, within=300))
             for n in range(sessions)]
    try:
        await asyncio.wait_for(all_there.wait(), timeout=240)
        await asyncio.sleep(0.5)
        return await while_open()
    finally:
        hold.set()
        await asyncio.gather(*tasks)
