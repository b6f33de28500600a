"""DOMAIN.md rule 9 under fire: the provincial receiver misbehaves in every way seen in the
fault runs — 500s, answers after the client gave up (stored, acknowledgement lost), connections
reset before and after storing, 429 with Retry-After, 301/302/307 redirects, "already have it"
answers, slow answers — for a bounded window while ratings keep arriving, then recovers. Every
rating must end delivered exactly once: the receiver stores by idempotency key, nothing is sent
again after a timely acknowledgement, nothing is dead-lettered by the fault."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import Counter
from pathlib import Path

from aiohttp import web

from forwarder.simulated import Arrival, Receiver, add_backlog
from storage.models import OutboxStatus
from tests.helpers.forwarding import all_in, context, forwarding, outbox_entries
from tests.waiting import wait_until

FAULT_SECONDS = 60.0  # issue 8: "fails … for a minute, then recovers"
CLIENT_TIMEOUT = 0.5
FAULTS = (
    "500", "timeout_stored", "timeout", "reset", "reset_stored", "429", "301", "302",
    "307", "slow",
)
#: about half the requests fail: enough successes between failures that the breaker keeps
#: closing again, so the faults meet a full stream of records, not just a probe now and then
SPREAD = FAULTS + ("ok",) * len(FAULTS)


def _fault(key: str, nth: int) -> str:
    """The same record meets different faults on each try (a stable spread, no randomness)."""
    return SPREAD[zlib.crc32(f"{key}/{nth}".encode()) % len(SPREAD)]


async def test_receiver_failing_then_recovering_loses_and_duplicates_nothing(
    tmp_path: Path, database_url: str
) -> None:
    rx = Receiver(client_timeout=CLIENT_TIMEOUT)
    faulty_until = {"t": 0.0}
    met: Counter[str] = Counter()

    async def hostile(arrival: Arrival) -> web.StreamResponse | None:
        key = arrival.key
        already = key in rx.stored
        fault = _fault(key, arrival.nth) if time.monotonic() < faulty_until["t"] else "ok"
        met[fault] += 1
        if already and fault in ("ok", "slow"):
            # a resend of what we have: the answer the shipped profiles call a duplicate
            return web.json_response({"code": "409", "msg": "数据重复"}, status=409)
        if fault == "500":
            return web.json_response({"msg": "internal error"}, status=500)
        if fault in ("timeout", "timeout_stored"):
            if fault == "timeout_stored":
                rx.stored.setdefault(key, arrival.record)
            await asyncio.sleep(CLIENT_TIMEOUT * 2)  # the client has given up by now
            return web.json_response({"code": "0", "msg": "ok"})
        if fault in ("reset", "reset_stored"):
            if fault == "reset_stored":
                rx.stored.setdefault(key, arrival.record)
            assert arrival.request is not None and arrival.request.transport is not None
            arrival.request.transport.abort()  # RST: no answer at all
            return web.Response(status=500)
        if fault == "429":
            return web.json_response({"msg": "too many"}, status=429,
                                     headers={"Retry-After": "1"})
        if fault in ("301", "302", "307"):
            return web.Response(status=int(fault), headers={"Location": rx.elsewhere})
        if fault == "slow":
            await asyncio.sleep(CLIENT_TIMEOUT / 4)
        return None  # stored and acknowledged

    rx.behaviour = hostile
    await rx.start()
    try:
        settings = rx.settings_for(
            tmp_path, database_url, forwarder_request_timeout=CLIENT_TIMEOUT,
            forwarder_lease_seconds=2.5, forwarder_batch_size=50, forwarder_concurrency=8,
            forwarder_backoff_base=0.05, forwarder_backoff_max=1.0, forwarder_breaker_failures=8,
        )
        async with context(settings) as ctx:
            rx.order = dict(await add_backlog(ctx, 500, second_every=4, prefix="A"))
            faulty_until["t"] = time.monotonic() + FAULT_SECONDS
            async with forwarding(ctx) as task:
                for wave in range(4):  # ratings keep arriving during the outage
                    await asyncio.sleep(FAULT_SECONDS / 5)
                    rx.order |= await add_backlog(ctx, 50, second_every=3, prefix=f"W{wave}-")
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx), within=90)
                assert not task.done()
            entries = await outbox_entries(ctx)
    finally:
        await rx.close()
    expected = {k for keys in rx.order.values() for k in keys}
    tried = len(expected)
    lost = len(expected - set(rx.stored))
    duplicated = len(rx.after_ack)  # sent again after a timely acknowledgement
    dead = sum(e.status == OutboxStatus.DEAD for e in entries)
    requests = sum(rx.requests.values())
    print(f"\naggregation receiver faults ({database_url.split(':')[0]}): tried {tried} / "
          f"lost {lost} / duplicated {duplicated} / dead-lettered {dead}; "
          f"{requests} requests, {len(rx.strays)} followed redirects; faults met: "
          + ", ".join(f"{f} {n}" for f, n in sorted(met.items())))
    assert (lost, duplicated, dead) == (0, 0, 0)
    assert rx.strays == []
    assert rx.bad == [] and rx.out_of_order == []
    assert len(entries) == tried
    assert all(met[f] >= 3 for f in FAULTS), f"not every kind of fault was met: {met}"
