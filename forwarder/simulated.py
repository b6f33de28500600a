"""For the forwarder tests and the benchmark only (never imported by the service): a
provincial receiver on 127.0.0.1 that checks signatures (HMAC, or SM2 signature + decryption
with a key pair the test generates), keeps an idempotent store by key, and records every breach
of the forwarder's promises — a key sent while the same key is still in flight, an entry of a
case arriving before the earlier one was acknowledged, a request after the key was already
acknowledged."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from forwarder import sm2
from hotline.clock import utcnow
from hotline.levels import Level
from hotline.settings import Settings, load_settings
from service.context import AppContext
from storage.models import Call, Case, OutboxEntry, Rating, RatingKind, RatingSource
from storage.ratings import RatingInput, project_no_for_call, save_rating, snapshot

HMAC_SECRET = "test-hmac-secret"
APP_MARK = "hotline-test"
APP_WORD = "app-word-secret"
VALUES = {"data_source": "123", "area_code": "530000", "task_code": "T-12345",
          "task_name": "12345热线服务", "dept_code": "11530000MB0000000X"}


@dataclass
class Arrival:
    key: str
    record: dict[str, Any]
    nth: int  # 1 for the first request with this key
    headers: dict[str, str]
    request: web.Request | None = None  # to misbehave at the connection level (a reset)


#: a receiver's behaviour: return a response (or None for "200, stored")
Behaviour = Callable[[Arrival], Awaitable[web.StreamResponse | None]]


@dataclass
class Receiver:
    transport: str = "json_hmac"
    #: keys per case in the order they must arrive (filled by the test)
    order: dict[str, list[str]] = field(default_factory=dict)
    behaviour: Behaviour | None = None
    #: replies later than this count as not acknowledged (the client gave up)
    client_timeout: float = 1e9

    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    acked: Counter[str] = field(default_factory=Counter)  # 2xx answered in time
    inflight: Counter[str] = field(default_factory=Counter)
    concurrent: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    after_ack: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # signature or envelope problems
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)  # key -> the path it was sent to
    bodies: list[bytes] = field(default_factory=list)
    #: requests that reached /elsewhere (where a redirect points): must stay empty
    strays: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sender_private, self.sender_public = sm2.generate_keypair()
        self.receiver_private, self.receiver_public = sm2.generate_keypair()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/push"

    async def start(self) -> None:
        if self._runner is None:
            app = web.Application()
            app.router.add_post("/push", self._handle)
            # /push/invalidate, /push/rectification, /push/feedback: a profile's paths
            app.router.add_post("/push/{kind}", self._handle)
            app.router.add_route("*", "/elsewhere", self._stray)
            self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
            await self._runner.setup()
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def go_down(self) -> None:
        """Stop listening: connections are refused until :meth:`start`."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def settings_for(self, tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
        values = {
            "database_url": database_url,
            "forwarder_endpoint": self.url,
            "forwarder_values": VALUES,
            "forwarder_hmac_secret": HMAC_SECRET,
            "forwarder_app_mark": APP_MARK,
            "forwarder_app_word": APP_WORD,
            "forwarder_sm2_private_key": self.sender_private,
            "forwarder_sm2_receiver_public_key": "04" + self.receiver_public,
            "forwarder_profile": "sm2_envelope" if self.transport == "sm2_envelope" else "default",
            "forwarder_batch_size": 20,
            "forwarder_concurrency": 4,
            "forwarder_request_timeout": 1.0,
            "forwarder_backoff_base": 0.05,
            "forwarder_backoff_max": 0.3,
            "forwarder_lease_seconds": 3.0,
            "forwarder_poll_interval": 0.05,
        }
        values.update(overrides)
        # isolated from the developer's environment and files, as the tests' settings are
        for key in list(os.environ):
            if key.startswith("HOTLINE_") and not key.startswith("HOTLINE_TEST_"):
                os.environ.pop(key)
        return load_settings(Path(os.devnull), data_dir=tmp_path / "data", **values)

    @property
    def elsewhere(self) -> str:
        return f"http://127.0.0.1:{self.port}/elsewhere"

    async def _stray(self, request: web.Request) -> web.StreamResponse:
        self.strays.append(f"{request.method} {request.path}")
        return web.json_response({"code": "0", "msg": "ok"})

    # ----------------------------------------------------------------- checks
    def _unwrap(self, request_headers: dict[str, str], body: bytes) -> dict[str, Any] | str:
        if self.transport == "json_hmac":
            ts = request_headers.get("X-Timestamp", "")
            want = hmac.new(HMAC_SECRET.encode(), ts.encode() + body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, request_headers.get("X-Signature", "")):
                return "bad HMAC signature"
            if abs(time.time() * 1000 - int(ts)) > 300_000:
                return "stale timestamp"
            return json.loads(body)  # type: ignore[no-any-return]
        envelope = json.loads(body)
        if set(envelope) != {"appMark", "time", "sign", "params"}:
            return f"envelope fields {sorted(envelope)}"
        if envelope["appMark"] != APP_MARK:
            return "wrong appMark"
        signed = (envelope["time"] + envelope["appMark"] + APP_WORD).encode()
        if not sm2.verify(envelope["sign"], signed, self.sender_public):
            return "bad SM2 signature"
        try:
            plain = sm2.decrypt(envelope["params"], self.receiver_private)
        except sm2.Sm2Error as exc:
            return f"cannot decrypt: {exc}"
        return json.loads(plain)  # type: ignore[no-any-return]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = dict(request.headers)
        self.headers_seen.append(headers)
        self.bodies.append(body)
        unwrapped = self._unwrap(headers, body)
        if isinstance(unwrapped, str):
            self.bad.append(unwrapped)
            return web.json_response({"code": "401", "msg": unwrapped}, status=401)
        record = unwrapped
        key = headers.get("Idempotency-Key", "")
        expected = f"{record.get('projectNo')}:{record.get('assessNumber')}"
        if not key.startswith(expected):
            self.bad.append(f"key {key!r} does not match the record {expected!r}")
        self.requests[key] += 1
        self.paths[key] = request.path
        if self.acked[key]:
            self.after_ack.append(key)
        if self.inflight[key]:
            self.concurrent.append(key)
        project = record.get("projectNo", "")
        chain = self.order.get(project, [])
        if key in chain:
            earlier = chain[: chain.index(key)]
            if any(not self.acked[k] for k in earlier):
                self.out_of_order.append(key)
        self.inflight[key] += 1
        started = time.monotonic()
        try:
            arrival = Arrival(key=key, record=record, nth=self.requests[key], headers=headers,
                              request=request)
            response = await self.behaviour(arrival) if self.behaviour else None
            if response is None:
                self.stored.setdefault(key, record)  # idempotent: a repeat changes nothing
                response = web.json_response({"code": "0", "msg": "ok"})
            # 409 is the shipped profiles' "already have it": an acknowledgement too
            answered = 200 <= response.status < 300 or response.status == 409
            if answered and time.monotonic() - started < self.client_timeout:
                self.acked[key] += 1
            return response
        finally:
            self.inflight[key] -= 1

    def assert_clean(self) -> None:
        assert self.bad == []
        assert self.out_of_order == []
        assert self.after_ack == []


# --------------------------------------------------------------------------- ratings
async def add_call_rating(
    ctx: AppContext,
    linkedid: str,
    level: Level,
    *,
    source: str = RatingSource.KEYPAD,
    reasons: list[str] | None = None,
    comment: str | None = None,
    caller: str | None = "13812345678",
    agent: str = "A1001",
    department: str | None = None,
    rated_at: dt.datetime | None = None,
) -> str:
    """A 一次一评 rating of a call; returns its idempotency key."""
    async with ctx.db.transaction() as s:
        call = Call(linkedid=linkedid, agent_id=agent)
        if caller:
            protected = ctx.vault.protect(caller)
            call.caller_enc, call.caller_hash, call.caller_masked = (
                protected.encrypted, protected.digest, protected.masked,
            )
        s.add(call)
        await s.flush()
        await save_rating(s, RatingInput(
            project_no=project_no_for_call(linkedid), kind=RatingKind.PER_CALL, source=source,
            level=level, reason_codes=reasons, comment_text=comment, call_id=call.id,
            agent_id=agent, department_code=department, rated_at=rated_at,
        ))
    return f"{project_no_for_call(linkedid)}:1"


async def add_case_ratings(
    ctx: AppContext, count: int, *, second_every: int = 0, prefix: str = "GD", batch: int = 500
) -> dict[str, list[str]]:
    """``count`` 一事一评 ratings on cases ``{prefix}000001``…; every ``second_every``-th case
    also gets an additional evaluation (assessNumber 2). Returns the keys per case in order."""
    order: dict[str, list[str]] = defaultdict(list)
    for start in range(0, count, batch):
        async with ctx.db.transaction() as s:
            for n in range(start, min(count, start + batch)):
                number = f"{prefix}{n + 1:06d}"
                case = Case(case_number=number, department_code="D01",
                            department_name="市住建局")
                s.add(case)
                await s.flush()
                levels = [Level.SATISFIED]
                if second_every and n % second_every == 0:
                    levels.append(Level.VERY_SATISFIED)
                for assess, level in enumerate(levels, 1):
                    await save_rating(s, RatingInput(
                        project_no=number, kind=RatingKind.PER_CASE, source=RatingSource.CALLBACK,
                        level=level, assess_number=assess, case_id=case.id, case_number=number,
                        department_code="D01",
                    ))
                    order[number].append(f"{number}:{assess}")
    return dict(order)


async def add_backlog(
    ctx: AppContext, count: int, *, second_every: int = 0, prefix: str = "BL"
) -> dict[str, list[str]]:
    """Like :func:`add_case_ratings` but in bulk (thousands in a second): the rows are what
    save_rating writes — the rating and a pending entry carrying its snapshot."""
    order: dict[str, list[str]] = defaultdict(list)
    ratings: list[Rating] = []
    now = utcnow()
    for n in range(count):
        number = f"{prefix}{n + 1:06d}"
        assessments = 2 if second_every and n % second_every == 0 else 1
        for assess in range(1, assessments + 1):
            ratings.append(Rating(
                project_no=number, assess_number=assess, kind=RatingKind.PER_CASE,
                source=RatingSource.CALLBACK, level=int(Level.SATISFIED), rated_at=now,
                department_code="D01", valid=True, created_at=now, updated_at=now,
            ))
            order[number].append(f"{number}:{assess}")
    async with ctx.db.transaction() as s:
        s.add_all(ratings)
        await s.flush()
        s.add_all([
            OutboxEntry(
                rating_id=r.id, project_no=r.project_no, assess_number=r.assess_number,
                event="rating", payload=snapshot(r, r.project_no), ready_at=now,
                next_attempt_at=now, created_at=now,
            )
            for r in ratings
        ])
    return dict(order)

