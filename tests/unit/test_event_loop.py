"""The event loop of `hotline serve` (setting ``event_loop``; issue 13: uvloop where installed,
asyncio's own loop where not, and a clear refusal when uvloop is demanded but missing)."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest

from hotline import event_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_auto_runs_on_uvloop_where_it_is_installed() -> None:
    pytest.importorskip("uvloop")
    assert event_loop.run(_loop_module(), "auto") == "uvloop"
    assert event_loop.run(_loop_module(), "uvloop") == "uvloop"


def test_asyncio_never_uses_uvloop() -> None:
    assert event_loop.run(_loop_module(), "asyncio") == "asyncio"


def _without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def import_module(name: str, *args: Any) -> Any:
        if name == "uvloop":
            raise ImportError("no uvloop on this platform")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", import_module)


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_uvloop(monkeypatch)
    assert event_loop.run(_loop_module(), "auto") == "asyncio"


def test_uvloop_demanded_but_missing_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_uvloop(monkeypatch)
    with pytest.raises(event_loop.EventLoopUnavailable, match="event_loop is uvloop"):
        event_loop.run(_loop_module(), "uvloop")
