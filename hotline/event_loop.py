"""Which event loop the long-running commands run on (setting ``event_loop``).

uvloop (libuv) does the same asyncio work with less CPU per socket operation: under
``bench.fastagi_survey`` the survey server took 2.6 ms of CPU per survey on it against 3.3 ms
on asyncio's own loop, and journalled 206 burst steps instead of 1,513 (issue 13). But under
``bench.asterisk_burst`` (1,000 real calls at once) the calls that arrive while the first ones
are served wait far longer to be taken in: the caller heard the survey 15 s after the call
reached it (p99) against 3.7 s on asyncio's loop. So asyncio's loop is the default; ``auto``
uses uvloop where it is installed (and asyncio's loop where not), ``uvloop`` insists.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

Choice = Literal["auto", "asyncio", "uvloop"]


class EventLoopUnavailable(RuntimeError):
    """``event_loop = "uvloop"`` on a machine without uvloop."""


def loop_factory(choice: Choice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop ``choice`` asks for; None: asyncio's default loop."""
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError as exc:
        if choice == "uvloop":
            raise EventLoopUnavailable(
                "event_loop is uvloop but uvloop is not installed (pip install uvloop), "
                "or set event_loop = auto"
            ) from exc
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def run(main: Coroutine[Any, Any, T], choice: Choice) -> T:
    """``asyncio.run(main)`` on the chosen loop."""
    try:
        factory = loop_factory(choice)
    except EventLoopUnavailable:
        main.close()  # never awaited: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
