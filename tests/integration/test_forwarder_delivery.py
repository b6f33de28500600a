"""The forwarder against a real receiver on 127.0.0.1, on SQLite and PostgreSQL: the record's
every field (HMAC and SM2 transports), failures of every kind, dead-letter and re-queue, a
forwarder killed mid-batch, invalidations, and the evaluator's identity kept out of logs."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import logging
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from forwarder import cli as fcli
from forwarder.simulated import (
    Arrival,
    Receiver,
    add_call_rating,
    add_case_ratings,
)
from forwarder.worker import Forwarder
from hotline.clock import utcnow
from hotline.levels import Level
from hotline.logs import JsonFormatter
from hotline.settings import Settings
from service.context import AppContext
from storage import outbox
from storage.models import OutboxStatus, Rating, RatingSource
from storage.ratings import enqueue
from tests.conftest import make_settings
from tests.helpers.forwarding import all_in, context, forwarding, outbox_entries
from tests.waiting import wait_until

RATED = dt.datetime(2026, 3, 1, 16, 30, 5, tzinfo=dt.UTC)  # 2026-03-02 00:30:05 in Beijing


def settled(ctx: AppContext) -> Callable[[], Any]:
    async def check() -> bool:
        done = (OutboxStatus.DELIVERED, OutboxStatus.DEAD)
        return all(e.status in done for e in await outbox_entries(ctx))

    return check


COMMON = {
    "assessNumber": 1, "pf": "6", "assessTime": "2026-03-02 00:30:05",
    "areaCode": "530000", "taskCode": "T-12345", "taskName": "12345热线服务",
    "handleUserName": "A1001", "handleUserPageCode": "A1001", "dataSource": "123",
    "userProp": "1", "isValid": "1",
}


async def _three_kinds(ctx: AppContext) -> None:
    await add_call_rating(ctx, "1700000000.1", Level.SATISFIED, department="D01", rated_at=RATED)
    await add_call_rating(ctx, "1700000000.2", Level.VERY_DISSATISFIED, reasons=["1", "3"],
                          department="D01", rated_at=RATED)
    await add_call_rating(ctx, "1700000000.3", Level.BASICALLY_SATISFIED,
                          source=RatingSource.DEFAULT, rated_at=RATED)


EXPECTED = {
    "CALL-1700000000.1:1": {
        **COMMON, "projectNo": "CALL-1700000000.1", "satisfaction": 4, "deptCode": "D01",
        "isDefault": "0",
    },
    "CALL-1700000000.2:1": {
        **COMMON, "projectNo": "CALL-1700000000.2", "satisfaction": 1, "deptCode": "D01",
        "evalDetail": "1,3", "isDefault": "0",
    },
    # no department of its own: the hotline centre's code from forwarder_values
    "CALL-1700000000.3:1": {
        **COMMON, "projectNo": "CALL-1700000000.3", "satisfaction": 3,
        "deptCode": "11530000MB0000000X", "isDefault": "1",
    },
}


@pytest.mark.parametrize("transport", ["json_hmac", "sm2_envelope"])
async def test_every_field_of_keypad_bad_and_default_ratings(
    tmp_path: Path, database_url: str, transport: str
) -> None:
    async with Receiver(transport=transport) as rx:
        settings = rx.settings_for(tmp_path, database_url)
        async with context(settings) as ctx:
            await _three_kinds(ctx)
            async with forwarding(ctx):
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx))
        rx.assert_clean()
        assert rx.stored == EXPECTED
        assert dict(rx.requests) == dict.fromkeys(EXPECTED, 1)
        for headers in rx.headers_seen:
            assert headers["Content-Type"].startswith("application/json")
        if transport == "sm2_envelope":
            # the record itself never travels in clear
            assert all(b"projectNo" not in body for body in rx.bodies)


async def test_bad_rating_always_carries_a_reason_or_text(
    tmp_path: Path, database_url: str
) -> None:
    async with Receiver() as rx:
        settings = rx.settings_for(tmp_path, database_url, bad_rating_fallback_reason="99")
        async with context(settings) as ctx:
            await add_call_rating(ctx, "1.1", Level.DISSATISFIED)  # skipped the reason menu
            await add_call_rating(ctx, "1.2", Level.DISSATISFIED, comment="等了很久没人管")
            await add_call_rating(ctx, "1.3", Level.SATISFIED)
            async with forwarding(ctx):
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx))
    assert rx.stored["CALL-1.1:1"]["evalDetail"] == "99"
    assert rx.stored["CALL-1.2:1"]["writingEvaluation"] == "等了很久没人管"
    assert "evalDetail" not in rx.stored["CALL-1.2:1"]
    assert "evalDetail" not in rx.stored["CALL-1.3:1"]
    assert "writingEvaluation" not in rx.stored["CALL-1.3:1"]


async def test_failures_of_every_kind_end_in_exactly_one_delivery_in_order(
    tmp_path: Path, database_url: str
) -> None:
    """500s, answers too late (timeouts), connections refused while the receiver is down:
    every record ends up stored once, acknowledged once, and per case in order."""
    rx = Receiver(client_timeout=0.5)

    async def flaky(arrival: Arrival) -> web.StreamResponse | None:
        if arrival.nth == 1:
            return web.json_response({"msg": "internal error"}, status=500)
        if arrival.nth == 2 and hash(arrival.key) % 2:
            await asyncio.sleep(0.8)  # beyond the client's timeout: processed, ack lost
            return None
        if arrival.nth == 2:
            return web.Response(status=503, text="maintenance")
        return None

    rx.behaviour = flaky
    await rx.start()
    try:
        settings = rx.settings_for(tmp_path, database_url, forwarder_request_timeout=0.5,
                                   forwarder_lease_seconds=2.5)
        async with context(settings) as ctx:
            calls = [await add_call_rating(ctx, f"9.{n}", Level.SATISFIED) for n in range(10)]
            rx.order = await add_case_ratings(ctx, 10, second_every=2)
            await rx.go_down()
            async with forwarding(ctx):
                await asyncio.sleep(0.6)  # refused connections meanwhile
                assert rx.requests == {}
                await rx.start()
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx), within=60)
            entries = await outbox_entries(ctx)
    finally:
        await rx.close()
    expected = set(calls) | {k for keys in rx.order.values() for k in keys}
    assert set(rx.stored) == expected
    assert all(rx.acked[k] == 1 for k in expected), "acknowledged more than once"
    rx.assert_clean()
    assert all(e.attempts >= 3 for e in entries)
    errors = " ".join(e.last_error or "" for e in entries)
    # the last error of each: the timeout or the 503 of the second request
    assert "no answer within 0.5 s" in errors and "HTTP 503: maintenance" in errors


async def test_429_retry_after_holds_every_send(tmp_path: Path, database_url: str) -> None:
    times: list[float] = []
    loop = asyncio.get_running_loop()

    async def limited(arrival: Arrival) -> web.StreamResponse | None:
        times.append(loop.time())
        if len(times) == 1:
            return web.json_response({"msg": "slow down"}, status=429,
                                     headers={"Retry-After": "1"})
        return None

    async with Receiver(behaviour=limited) as rx:
        settings = rx.settings_for(tmp_path, database_url, forwarder_concurrency=1,
                                   forwarder_backoff_max=2.0)
        async with context(settings) as ctx:
            for n in range(3):
                await add_call_rating(ctx, f"4.{n}", Level.SATISFIED)
            async with forwarding(ctx):
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx))
    assert len(times) == 4
    assert times[1] - times[0] >= 0.9  # nothing at all went out during the pause


async def _cli(settings: Settings, *argv: str) -> tuple[int, str]:
    """Run a ``hotline forwarder|outbox`` command as the user would (it runs its own loop)."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    fcli.register(sub)
    args = parser.parse_args(list(argv))
    out = io.StringIO()

    def call() -> int:
        with redirect_stdout(out):
            return int(args.handler(settings, args))

    code = await asyncio.to_thread(call)
    return code, out.getvalue()


async def test_rejected_record_is_dead_lettered_with_reason_and_requeued(
    tmp_path: Path, database_url: str
) -> None:
    broken = {"on": True}

    async def strict(arrival: Arrival) -> web.StreamResponse | None:
        if broken["on"] and arrival.key == "GD000001:1":
            return web.json_response({"code": "E1001", "msg": "deptCode 不存在"}, status=422)
        return None

    async with Receiver(behaviour=strict) as rx:
        settings = rx.settings_for(tmp_path, database_url)
        async with context(settings) as ctx:
            rx.order = await add_case_ratings(ctx, 3, second_every=1)
            async with forwarding(ctx):
                await wait_until(settled_or_blocked(ctx, blocked=1))
                code, out = await _cli(settings, "outbox", "status")
                assert code == 0
                assert "dead-letter 1" in out and "pending     1" in out
                code, out = await _cli(settings, "outbox", "dead")
                assert "GD000001:1" in out and "HTTP 422: deptCode 不存在" in out
                dead = [e for e in await outbox_entries(ctx) if e.status == OutboxStatus.DEAD]
                assert [(e.project_no, e.assess_number, e.attempts) for e in dead] == [
                    ("GD000001", 1, 1)
                ]
                assert "GD000001:2" not in rx.requests  # its case waits behind it
                broken["on"] = False  # the cause is fixed on the province's side
                code, out = await _cli(settings, "outbox", "retry", str(dead[0].id))
                assert (code, out.strip()) == (0, f"re-queued {dead[0].id}")
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx))
            code, out = await _cli(settings, "outbox", "status", "--json")
            figures = json.loads(out)
            assert figures["delivered"] == 6 and figures["dead"] == 0
            assert figures["oldest_pending_age_seconds"] is None
    rx.assert_clean()
    assert rx.requests["GD000001:1"] == 2 and rx.requests["GD000001:2"] == 1


def settled_or_blocked(ctx: AppContext, blocked: int) -> Callable[[], Any]:
    async def check() -> bool:
        entries = await outbox_entries(ctx)
        pending = [e for e in entries if e.status in (OutboxStatus.PENDING, OutboxStatus.INFLIGHT)]
        return len(pending) == blocked and any(e.status == OutboxStatus.DEAD for e in entries)

    return check


async def test_requeue_all_dead(tmp_path: Path, database_url: str) -> None:
    async def refuse(arrival: Arrival) -> web.StreamResponse | None:
        return web.Response(status=400, text="bad request") if arrival.nth == 1 else None

    async with Receiver(behaviour=refuse) as rx:
        settings = rx.settings_for(tmp_path, database_url)
        async with context(settings) as ctx:
            for n in range(3):
                await add_call_rating(ctx, f"5.{n}", Level.SATISFIED)
            async with forwarding(ctx):
                await wait_until(all_in(OutboxStatus.DEAD, ctx))
                refused = await outbox_entries(ctx)
                assert all(e.last_error == "HTTP 400: bad request" for e in refused)
                assert await _cli(settings, "outbox", "retry", "--all-dead") == (
                    0, "re-queued 3 dead-lettered entries\n"
                )
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx))


async def test_forwarder_killed_mid_batch_loses_nothing(
    tmp_path: Path, database_url: str
) -> None:
    """The task is cancelled with requests in flight (as a crash would leave it). A second
    forwarder takes over once the leases run out; only records whose acknowledgement was not
    recorded are sent again."""

    async def slow(arrival: Arrival) -> web.StreamResponse | None:
        await asyncio.sleep(0.05)
        return None

    async with Receiver(behaviour=slow) as rx:
        settings = rx.settings_for(tmp_path, database_url, forwarder_lease_seconds=2.5,
                                   forwarder_request_timeout=0.5, forwarder_batch_size=10)
        async with context(settings) as ctx:
            rx.order = await add_case_ratings(ctx, 60, second_every=3)
            first = asyncio.create_task(Forwarder.from_context(ctx, name="first").run(
                asyncio.Event()))
            await wait_until(lambda: _at_least(rx, 15))
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            before = {f"{e.project_no}:{e.assess_number}" for e in await outbox_entries(ctx)
                      if e.status == OutboxStatus.DELIVERED}
            assert any(e.status == OutboxStatus.INFLIGHT for e in await outbox_entries(ctx))
            async with forwarding(ctx, name="second"):
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx), within=60)
    expected = {k for keys in rx.order.values() for k in keys}
    assert set(rx.stored) == expected
    repeated = {k for k, n in rx.requests.items() if n > 1}
    assert not repeated & before, "a record marked delivered was sent again"
    assert rx.bad == [] and rx.out_of_order == []


async def _at_least(rx: Receiver, n: int) -> bool:
    return sum(rx.acked.values()) >= n


async def test_clean_stop_gives_unsent_entries_back(tmp_path: Path, database_url: str) -> None:
    async def slow(arrival: Arrival) -> web.StreamResponse | None:
        await asyncio.sleep(0.2)
        return None

    async with Receiver(behaviour=slow) as rx:
        settings = rx.settings_for(tmp_path, database_url, forwarder_batch_size=20,
                                   forwarder_concurrency=2)
        async with context(settings) as ctx:
            await add_case_ratings(ctx, 20)
            async with forwarding(ctx):
                await wait_until(lambda: _at_least(rx, 2))
            entries = await outbox_entries(ctx)
    statuses = {e.status for e in entries}
    assert OutboxStatus.INFLIGHT not in statuses  # in-flight requests finished, rest released
    pending = [e for e in entries if e.status == OutboxStatus.PENDING]
    assert pending and all(e.attempts == 0 and e.claimed_by is None for e in pending)


@pytest.mark.parametrize("mode", ["resend", "skip"])
async def test_invalidation_after_review(tmp_path: Path, database_url: str, mode: str) -> None:
    profile = json.loads(json.dumps(_profile_dict("default")))
    profile["invalidation"] = {"mode": mode, "path": "/invalidate"}
    path = tmp_path / "site.json"
    path.write_text(json.dumps(profile), encoding="utf-8")
    async with Receiver() as rx:
        settings = rx.settings_for(tmp_path, database_url, forwarder_profile_file=path)
        async with context(settings) as ctx:
            key = await add_call_rating(ctx, "7.1", Level.VERY_DISSATISFIED, reasons=["2"])
            async with ctx.db.transaction() as s:
                rating = await s.scalar(select(Rating))
                assert rating is not None
                rating.valid, rating.invalid_reason = False, "恶意差评"
                rating.reviewed_by, rating.reviewed_at = "R01", utcnow()
                await s.flush()
                await enqueue(s, rating, event="invalidation")
            rx.order = {"CALL-7.1": [key, key + ":invalidation"]}
            async with forwarding(ctx):
                await wait_until(all_in(OutboxStatus.DELIVERED, ctx))
    rx.assert_clean()
    if mode == "skip":
        assert set(rx.stored) == {key}
        return
    assert set(rx.stored) == {key, key + ":invalidation"}
    sent = rx.stored[key + ":invalidation"]
    assert (sent["isValid"], sent["invalidReason"], sent["satisfaction"]) == ("0", "恶意差评", 1)
    assert rx.stored[key]["isValid"] == "1"


def _profile_dict(name: str) -> dict[str, Any]:
    import tomllib

    from forwarder.profile import BUILTIN_DIR

    return tomllib.loads((BUILTIN_DIR / f"{name}.toml").read_text(encoding="utf-8"))


async def test_identity_goes_only_to_the_endpoint_never_to_logs(
    tmp_path: Path, database_url: str
) -> None:
    profile = _profile_dict("default")
    profile["fields"] |= {
        "mobile": "evaluator_phone",
        "userName": "evaluator_phone_masked",
        "certKey": "evaluator_phone_sm3",
    }
    path = tmp_path / "with-identity.toml"
    path.write_text(_toml(profile), encoding="utf-8")
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)

    async def echo_back(arrival: Arrival) -> web.StreamResponse | None:
        # a careless receiver that quotes the whole record in its error
        if arrival.nth == 1:
            return web.Response(status=400, text=json.dumps(arrival.record, ensure_ascii=False))
        return None

    try:
        async with Receiver(behaviour=echo_back) as rx:
            settings = rx.settings_for(tmp_path, database_url, forwarder_profile_file=path)
            async with context(settings) as ctx:
                await add_call_rating(ctx, "8.1", Level.SATISFIED, caller="138-1234-5678")
                async with forwarding(ctx):
                    await wait_until(all_in(OutboxStatus.DEAD, ctx))
                    [entry] = await outbox_entries(ctx)
                    await outbox.retry(ctx.db, [entry.id], actor="li", role="admin")
                    await wait_until(all_in(OutboxStatus.DELIVERED, ctx))
                [entry] = await outbox_entries(ctx)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    sent = rx.stored["CALL-8.1:1"]
    assert sent["mobile"] == "13812345678"
    assert sent["userName"] == "138****5678"
    assert len(sent["certKey"]) == 64
    assert "13812345678" not in (entry.last_error or "")
    assert "13812345678" not in json.dumps(entry.payload)  # the outbox never held it
    text = "\n".join(lines)
    assert "forwarder" in text  # the logs were captured
    assert "13812345678" not in text


def _toml(data: dict[str, Any]) -> str:
    """Just enough TOML for a profile (tables of strings, lists, bools)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(v, ensure_ascii=False)

    top = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [
        f"[{k}]\n" + "\n".join(f"{json.dumps(kk)} = {value(vv)}" for kk, vv in v.items())
        for k, v in data.items() if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n\n" + "\n\n".join(tables) + "\n"


async def test_worker_idles_without_endpoint_and_refuses_a_bad_setup(
    tmp_path: Path, database_url: str
) -> None:
    from forwarder.profile import ProfileError
    from forwarder.worker import run

    async with context(make_settings(tmp_path, database_url=database_url)) as ctx:
        stopping = asyncio.Event()
        task = asyncio.create_task(run(ctx, stopping))
        await asyncio.sleep(0.1)
        assert not task.done()  # a pull-only site: the worker waits, `hotline serve` stays up
        stopping.set()
        await asyncio.wait_for(task, 5)
    rx = Receiver()
    for overrides, named in [
        ({"forwarder_hmac_secret": ""}, "forwarder_hmac_secret"),
        ({"forwarder_values": {}}, "data_source"),
        ({"forwarder_lease_seconds": 2.0}, "forwarder_lease_seconds"),
        ({"forwarder_profile": "sm2_envelope", "forwarder_app_word": ""}, "forwarder_app_word"),
    ]:
        settings = rx.settings_for(tmp_path, database_url, **overrides)
        async with context(settings) as ctx:
            with pytest.raises(ProfileError, match=named):
                await run(ctx, asyncio.Event())
