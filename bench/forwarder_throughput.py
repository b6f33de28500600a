"""How many records a second one forwarder pushes to a receiver on 127.0.0.1.

    .venv/bin/python -m bench.forwarder_throughput --records 5000
    .venv/bin/python -m bench.forwarder_throughput --records 5000 --transport sm2_envelope \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench   # a migrated DB

Uses the test receiver (signature checks included), so the figure includes signing, the
database bookkeeping per record and a real HTTP round trip; not the province's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from forwarder.simulated import Receiver, add_backlog
from forwarder.worker import Forwarder
from service.context import AppContext
from storage import migrate, outbox


async def _drained(ctx: AppContext) -> None:
    while True:
        figures = await outbox.counts(ctx.db)
        if figures.pending + figures.inflight == 0:
            return
        await asyncio.sleep(0.2)


async def bench(records: int, transport: str, database_url: str | None, concurrency: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    url = database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    await migrate.upgrade_async(url)
    async with Receiver(transport=transport) as rx:
        settings = rx.settings_for(
            workdir, url, forwarder_concurrency=concurrency, forwarder_batch_size=100,
            forwarder_request_timeout=10.0, forwarder_lease_seconds=60.0,
        )
        ctx = AppContext.create(settings)
        try:
            await add_backlog(ctx, records, prefix=f"B{int(time.time())}-")
            stopping = asyncio.Event()
            started = time.perf_counter()
            task = asyncio.create_task(Forwarder.from_context(ctx).run(stopping))
            await _drained(ctx)
            elapsed = time.perf_counter() - started
            stopping.set()
            await task
        finally:
            await ctx.close()
    print(f"{records} records, {transport}, {url.split(':', 1)[0]}, concurrency {concurrency}: "
          f"{elapsed:.1f} s, {records / elapsed:.0f} records/s, receiver problems: {rx.bad}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--transport", choices=["json_hmac", "sm2_envelope"], default="json_hmac")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(bench(args.records, args.transport, args.database_url, args.concurrency))


if __name__ == "__main__":
    main()
