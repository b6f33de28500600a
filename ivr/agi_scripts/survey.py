"""The survey as a classic AGI script (stdin/stdout), for sites that run AGI locally instead of
over FastAGI. Same flow, same database, same settings (``HOTLINE_CONFIG`` or ``HOTLINE_*``
in Asterisk's environment)::

    exten => s,n,AGI(/opt/hotline/.venv/bin/python,-m,ivr.agi_scripts.survey)

Differences from FastAGI handled here: the hang-up arrives as SIGHUP (not a ``HANGUP`` line;
the default action would kill us mid-save), and stdout belongs to Asterisk, so logs go to
stderr only. An optional argument names another route (default ``survey``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from hotline import logs
from hotline.channel_vars import AGI_ERROR_INTERNAL
from hotline.settings import Settings, SettingsError, load_settings
from ivr.agi.channel import AgiChannel, ChannelGone
from ivr.agi.server import VAR_ERROR, load_handler
from service.agi import ROUTES
from service.context import AppContext


class FdWriter:
    """Blocking writes to a pipe: one small command line at a time, to a reader (Asterisk) that
    is waiting for it, so the stream machinery of asyncio is not worth its private parts."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._closed = False

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionResetError("stdout closed")
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BrokenPipeError as exc:
                raise ConnectionResetError("Asterisk closed the pipe") from exc
            view = view[written:]

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                os.close(self._fd)

    async def wait_closed(self) -> None:
        return None


async def open_stdio(
    stdin_fd: int = 0, stdout_fd: int = 1
) -> tuple[asyncio.StreamReader, FdWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(stdin_fd, "rb", buffering=0, closefd=False)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader, FdWriter(stdout_fd)


async def run(settings: Settings, route: str = "survey") -> str:
    reader, writer = await open_stdio()
    channel = AgiChannel(reader, writer, read_timeout=settings.fastagi_read_timeout)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, channel.note_hangup)
    ctx = AppContext.create(settings)
    try:
        await channel.read_environment()
        handler = load_handler(ROUTES[route])
        return str(await handler(ctx, channel))
    except ChannelGone:
        return "gone"
    except Exception:
        with contextlib.suppress(Exception):
            await channel.set_variable(VAR_ERROR, AGI_ERROR_INTERNAL)
        raise
    finally:
        await channel.close()
        await ctx.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    route = args[0] if args else "survey"
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"hotline AGI: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)  # stderr: stdout is the protocol
    if route not in ROUTES:
        print(f"hotline AGI: unknown route {route!r}", file=sys.stderr)
        return 2
    asyncio.run(run(settings, route))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
