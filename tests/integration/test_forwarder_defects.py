"""Issue 8, the forwarder's defects, each against a real receiver on 127.0.0.1 and the real
databases (SQLite and PostgreSQL): a redirect is never a delivery (defect 2), the worker
survives the unexpected and absurd Retry-After values (defect 1), a failing endpoint is backed
off as one (defect 12), an "already have it" answer to a resend is a delivery (defect 14), and
leases follow the database's clock (defect 10)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from forwarder import lookup
from forwarder.simulated import Arrival, Receiver, add_call_rating, add_case_ratings
from hotline.levels import Level
from storage import outbox
from storage.models import OutboxStatus
from tests.helpers.forwarding import all_in, context, forwarding, outbox_entries
from tests.waiting import wait_until


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int, text: str = "") -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= level and text in r.getMessage()]


@pytest.fixture
def lines() -> Iterator[_Lines]:
    handler = _Lines()
    logger = logging.getLogger("hotline.forwarder")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


async def test_a_redirect_is_never_followed_nor_a_delivery(
    tmp_path: Path, database_url: str, lines: _Lines
) -> None:
    """Defect 2: a 302 became a body-less GET whose 200 marked the rating delivered; a 307
    re-posted the signed record to wherever Location said."""
    rx = Receiver()

    async def moved(arrival: Arrival) -> web.StreamResponse | None:
        if arrival.nth <= 3:
            status = {1: 302, 2: 307, 3: 301}[arrival.nth]
            return web.Response(status=status, headers={"Location": rx.elsewhere})
        return None

    rx.behaviour = moved
    async with rx:
        settings = rx.settings_for(tmp_path, database_url)
        async with context(settings) as ctx:
            keys = [await add_call_rating(ctx, f"3.{n}", Level.SATISFIED) for n in range(3)]
            async with forwarding(ctx):
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx), within=30)
            entries = await outbox_entries(ctx)
    assert rx.strays == [], "a redirect was followed"
    assert all(rx.requests[k] == 4 for k in keys)  # three failures, then the delivery
    assert all(e.attempts == 4 for e in entries)
    rx.assert_clean()
    # logged once (per place it points to), not once per attempt
    assert len(lines.at(logging.WARNING, "redirect")) == 1


async def test_an_unexpected_error_in_a_batch_does_not_end_the_worker(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, lines: _Lines
) -> None:
    """Defect 1: any exception escaping a batch ended the worker, and `hotline serve` with it
    (FastAGI included)."""
    real = lookup.extras_in
    failures = {"left": 2}

    async def broken(*args: object, **kwargs: object) -> object:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("a bug in the lookup")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lookup, "extras_in", broken)
    async with Receiver() as rx:
        settings = rx.settings_for(tmp_path, database_url, forwarder_lease_seconds=2.5,
                                   forwarder_request_timeout=0.5)
        async with context(settings) as ctx:
            keys = [await add_call_rating(ctx, f"6.{n}", Level.SATISFIED) for n in range(3)]
            async with forwarding(ctx) as task:
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx), within=30)
                assert not task.done()
    assert set(rx.stored) == set(keys)
    assert len(lines.at(logging.ERROR, "batch failed")) == 2


@pytest.mark.parametrize("retry_after", ["999999999999999", "86400"])
async def test_an_absurd_retry_after_is_clamped_to_the_longest_backoff(
    tmp_path: Path, database_url: str, retry_after: str
) -> None:
    """Defect 1: 12+ digits overflowed `timedelta` and killed the worker; a day-long one paused
    every send for a day. Obeyed only up to forwarder_backoff_max (0.3 s here)."""

    async def limited(arrival: Arrival) -> web.StreamResponse | None:
        if arrival.nth == 1:
            return web.Response(status=429, headers={"Retry-After": retry_after})
        return None

    async with Receiver(behaviour=limited) as rx:
        settings = rx.settings_for(tmp_path, database_url)
        async with context(settings) as ctx:
            keys = [await add_call_rating(ctx, f"2.{n}", Level.SATISFIED) for n in range(3)]
            async with forwarding(ctx) as task:
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx), within=15)
                assert not task.done()
    assert set(rx.stored) == set(keys)
    rx.assert_clean()


async def test_a_failing_endpoint_is_backed_off_as_one(
    tmp_path: Path, database_url: str, lines: _Lines
) -> None:
    """Defect 12: a receiver answering 500 got every due record at once (≈ 97 requests/s in
    the fault run), one warning line each. With the breaker: a few requests, then one probe
    at a time, and one line per state change."""
    failing = {"on": True}
    during: list[str] = []

    async def down(arrival: Arrival) -> web.StreamResponse | None:
        if failing["on"]:
            during.append(arrival.key)
            return web.Response(status=500, text="internal error")
        return None

    async with Receiver(behaviour=down) as rx:
        settings = rx.settings_for(
            tmp_path, database_url, forwarder_breaker_failures=3, forwarder_backoff_base=0.1,
            forwarder_backoff_max=0.5, forwarder_batch_size=50,
        )
        async with context(settings) as ctx:
            order = await add_case_ratings(ctx, 120)
            async with forwarding(ctx):
                await asyncio.sleep(3.0)
                failing["on"] = False
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx), within=30)
    assert set(rx.stored) == {k for keys in order.values() for k in keys}
    # open after 3 failures (+ what was already in flight: concurrency 4), then one probe
    # per pause of 0.05..0.5 s: about a dozen in 3 s; without the breaker, hundreds
    assert len(during) <= 25, f"{len(during)} requests hit the failing endpoint in 3 s"
    warnings = lines.at(logging.WARNING)
    opened = lines.at(logging.WARNING, "endpoint failing")
    assert opened and len(warnings) == len(opened), [r.getMessage() for r in warnings]
    assert len(opened) <= len(during)
    assert len(lines.at(logging.INFO, "endpoint answers again")) == 1


async def test_a_duplicate_answer_to_a_resend_counts_as_delivered(
    tmp_path: Path, database_url: str
) -> None:
    """Defect 14: the receiver stored the record but its answer came too late; the resend
    was answered "already have it" (409), which no shipped profile took as delivered: dead-
    lettered, and the case's next evaluation blocked behind it."""
    rx = Receiver(client_timeout=0.5)

    async def slow_then_duplicate(arrival: Arrival) -> web.StreamResponse | None:
        if arrival.nth == 1:
            rx.stored.setdefault(arrival.key, arrival.record)
            await asyncio.sleep(0.8)  # past the client's timeout: stored, ack lost
            return web.json_response({"code": "0", "msg": "ok"})
        if arrival.key in rx.stored:
            return web.json_response({"code": "409", "msg": "数据重复"}, status=409)
        return None

    rx.behaviour = slow_then_duplicate
    await rx.start()
    try:
        settings = rx.settings_for(tmp_path, database_url, forwarder_request_timeout=0.5,
                                   forwarder_lease_seconds=2.5)
        async with context(settings) as ctx:
            rx.order = await add_case_ratings(ctx, 4, second_every=1)
            async with forwarding(ctx):
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx), within=30)
            entries = await outbox_entries(ctx)
    finally:
        await rx.close()
    assert {e.status for e in entries} == {OutboxStatus.DELIVERED}
    assert set(rx.stored) == {k for keys in rx.order.values() for k in keys}
    assert all(n == 2 for n in rx.requests.values())


async def test_leases_follow_the_database_clock_not_the_hosts(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 10: a forwarder on a host whose clock runs 10 minutes ahead took over leases
    that had not run out, and scheduled retries 10 minutes late."""
    import hotline.clock
    import storage.outbox
    from tests.conftest import make_settings

    async with context(make_settings(tmp_path, database_url=database_url)) as ctx:
        await add_case_ratings(ctx, 2)
        mine = await outbox.claim(ctx.db, "honest", limit=1, lease=30)
        assert len(mine) == 1
        real = hotline.clock.utcnow

        def ahead() -> dt.datetime:
            return real() + dt.timedelta(minutes=10)

        monkeypatch.setattr(storage.outbox, "utcnow", ahead)
        monkeypatch.setattr(hotline.clock, "utcnow", ahead)
        taken = await outbox.claim(ctx.db, "skewed", limit=10, lease=30)
        assert [e.id for e in taken] != [mine[0].id] and mine[0].id not in {e.id for e in taken}
        # a retry in 0.5 s is due in 0.5 s by the database's clock, whoever asks
        [other] = taken
        assert await outbox.mark_retry(ctx.db, other.id, "skewed", "HTTP 500", delay=0.5)
        monkeypatch.setattr(storage.outbox, "utcnow", real)
        monkeypatch.setattr(hotline.clock, "utcnow", real)
        await asyncio.sleep(0.7)
        again = await outbox.claim(ctx.db, "honest", limit=10, lease=30)
        assert [e.id for e in again] == [other.id]
