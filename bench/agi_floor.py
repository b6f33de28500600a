"""The floor the survey is measured against: a bare asyncio FastAGI server with no logic and
no database, doing a fixed 4-command exchange (what a survey minimally says to Asterisk: who
is the call, the welcome with the menu, the result, the thanks).

    .venv/bin/python -m bench.agi_floor --port 14573

Run in its own process by ``bench.fastagi_survey``, exactly like the real server, so both are
measured by the same load generator on the same machine in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

COMMANDS = (
    b'GET FULL VARIABLE "${CHANNEL(linkedid)}"\n',
    b"GET DATA hotline/survey-welcome 6000 1\n",
    b'SET VARIABLE SURVEY_RESULT "2"\n',
    b'STREAM FILE hotline/survey-thanks ""\n',
)


async def _session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while (await reader.readline()) not in (b"\n", b""):
            pass  # the AGI environment, up to its blank line
        for command in COMMANDS:
            writer.write(command)
            await writer.drain()
            if not await reader.readline():
                break
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def serve(host: str, port: int) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    server = await asyncio.start_server(_session, host, port, reuse_address=True, backlog=4096)
    async with server:
        await stopping.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
