"""How many records a second one forwarder pushes to a receiver on 127.0.0.1, for the default
profile (JSON+HMAC) and the SM2 envelope, each against a floor measured in the same run: a bare
aiohttp POST loop (one kept-alive session, the same concurrency, bodies built beforehand, no
database) to the same receiver. Issue 13's goals: ≥ 5,000 records/s (default) and ≥ 1,000
(SM2).

    .venv/bin/python -m bench.forwarder_throughput --records 5000
    .venv/bin/python -m bench.forwarder_throughput --records 5000 --event-loop asyncio
    .venv/bin/python -m bench.forwarder_throughput --records 5000 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench   # a migrated DB

The receiver runs in its own process and only counts keys and answers (the province's
latency and signature checks are not the forwarder's cost); the forwarder's figure includes
claiming, building and signing every record, the HTTP round trip and recording the outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.common import add_event_loop_option
from forwarder.simulated import Receiver, add_backlog
from forwarder.worker import Forwarder
from hotline import event_loop
from service.context import AppContext
from storage import migrate, outbox

GOALS = {"json_hmac": 5000.0, "sm2_envelope": 1000.0}
PROFILE = {"json_hmac": "default", "sm2_envelope": "sm2_envelope"}


# ---------------------------------------------------------------------- the receiver process
def _serve(port: int) -> None:
    keys: set[str] = set()

    async def push(request: web.Request) -> web.Response:
        await request.read()
        keys.add(request.headers.get("Idempotency-Key", ""))
        return web.json_response({"code": "0", "msg": "ok"})

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"keys": len(keys)})

    async def reset(request: web.Request) -> web.Response:
        keys.clear()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/push", push)
    app.router.add_get("/count", count)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                handle_signals=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _receiver_count(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(f"{base}/count") as resp:
        return int((await resp.json())["keys"])


# ---------------------------------------------------------------------- the two figures
@dataclass(frozen=True)
class Figure:
    rate: float  # records (requests) a second
    cpu_ms: float  # this process's CPU per record, all its threads (the receiver's is apart)
    #: the SM2 envelope process's CPU per record (its start-up apart), beside this process's
    envelope_cpu_ms: float = 0.0


async def floor(base: str, bodies: list[bytes], concurrency: int) -> Figure:
    """Records/s of a bare POST loop: the most this receiver and aiohttp allow here."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        await http.post(f"{base}/reset")
        queue = list(enumerate(bodies))
        queue.reverse()

        async def lane() -> None:
            while queue:
                n, body = queue.pop()
                headers = {"Content-Type": "application/json", "Idempotency-Key": f"F{n}:1"}
                async with http.post(f"{base}/push", data=body, headers=headers) as resp:
                    await resp.read()

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert await _receiver_count(http, base) == len(bodies)
    return Figure(len(bodies) / elapsed, 1000 * cpu / len(bodies))


async def forwarder(
    base: str, records: int, transport: str, database_url: str | None, concurrency: int,
    batch: int,
) -> Figure:
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    await migrate.upgrade_async(url)
    keys = Receiver(transport=transport)  # only for its settings and key pairs
    settings = keys.settings_for(
        workdir, url, forwarder_endpoint=f"{base}/push", forwarder_concurrency=concurrency,
        forwarder_batch_size=batch, forwarder_request_timeout=10.0,
        forwarder_lease_seconds=60.0, forwarder_profile=PROFILE[transport],
        log_level="WARNING",
    )
    ctx = AppContext.create(settings)
    try:
        async with aiohttp.ClientSession() as http:
            await http.post(f"{base}/reset")
            await add_backlog(ctx, records, prefix=f"B{int(time.time())}-")
            stopping = asyncio.Event()
            # start-up (checking the profile, starting the SM2 envelope process and building
            # its point tables) is not throughput
            worker = Forwarder.from_context(ctx)
            await worker.start()
            started, cpu = time.perf_counter(), time.process_time()
            task = asyncio.create_task(worker.run(stopping))
            # watched from the receiver's side while it runs: polling the outbox's figures
            # (three queries) every few ms would compete with the forwarder for the database.
            # Seldom while far from the end (each look is an aiohttp request in this process,
            # whose CPU the figure counts: 5 % of it at every 20 ms), often near it.
            while True:
                received = await _receiver_count(http, base)
                if received >= records or task.done():
                    break
                await asyncio.sleep(0.1 if received < 0.8 * records else 0.01)
            while True:  # then until every outcome is recorded
                figures = await outbox.counts(ctx.db)
                if figures.pending + figures.inflight == 0 or task.done():
                    break
                await asyncio.sleep(0.01)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            stopping.set()
            await task
            received = await _receiver_count(http, base)
            if received != records or figures.dead:
                raise SystemExit(f"receiver got {received} of {records}, {figures.dead} dead")
            envelope_cpu = worker.envelopes.cpu_seconds() if worker.envelopes else 0.0
    finally:
        await ctx.close()
    return Figure(records / elapsed, 1000 * cpu / records, 1000 * envelope_cpu / records)


async def bench(args: argparse.Namespace) -> None:
    port = _free_port()
    proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,), daemon=True)
    proc.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                async with aiohttp.ClientSession() as http:
                    await _receiver_count(http, base)
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        db = (args.database_url or "sqlite").split(":", 1)[0]
        body = b'{"projectNo":"BENCH000001","assessNumber":1,"satisfaction":4}' * 4
        bare = await floor(base, [body] * args.records, args.concurrency)
        print(f"floor: bare aiohttp POST loop, {args.records} requests, concurrency "
              f"{args.concurrency}: {bare.rate:,.0f} requests/s, client CPU "
              f"{bare.cpu_ms:.3f} ms/request")
        for transport in args.transport:
            size = args.records if transport == "json_hmac" else args.sm2_records
            got = await forwarder(base, size, transport, args.database_url, args.concurrency,
                                  args.batch)
            goal = GOALS[transport]
            verdict = "ok" if got.rate >= goal else "below goal"
            print(f"forwarder {PROFILE[transport]} ({transport}, {db}), {size} records: "
                  f"{got.rate:,.0f} records/s = {got.rate / bare.rate:.2f} × floor   "
                  f"(goal ≥ {goal:,.0f}/s: {verdict})")
            # the CPU figure moves less than the rates on a shared machine: what the
            # forwarder costs per record, beside what the floor's client costs per request
            print(f"forwarder {PROFILE[transport]} CPU: {got.cpu_ms:.3f} ms/record = "
                  f"{got.cpu_ms / bare.cpu_ms:.1f} × the floor's client per request")
            if got.envelope_cpu_ms:
                print(f"forwarder {PROFILE[transport]} envelope process CPU: "
                      f"{got.envelope_cpu_ms:.3f} ms/record (all told "
                      f"{got.cpu_ms + got.envelope_cpu_ms:.3f} ms/record)")
    finally:
        proc.terminate()
        proc.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--sm2-records", type=int, default=2000)
    parser.add_argument("--transport", nargs="+", choices=list(GOALS), default=list(GOALS))
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch", type=int, default=200)
    add_event_loop_option(parser, "the floor's and the forwarder's loop")
    args = parser.parse_args()
    event_loop.run(bench(args), args.event_loop)


if __name__ == "__main__":
    main()
