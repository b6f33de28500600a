"""The forwarder: claims outbox entries, sends each to the provincial endpoint, records what
the receiver said. Runs inside ``hotline serve`` (setting serve_forwarder) or alone
(``hotline forwarder run``); several may run against one PostgreSQL database.

Guarantees, and where they come from:

* nothing is lost: an entry leaves ``pending``/``inflight`` only when the receiver
  acknowledged it (delivered) or refused it as invalid (dead, re-queued by
  ``hotline outbox retry``); a forwarder that dies leaves its entries ``inflight`` with a lease
  that runs out, after which any forwarder takes them again;
* no two forwarders send one record at the same time: claiming is ``FOR UPDATE SKIP LOCKED``
  (storage.outbox), the lease is renewed while the batch is worked on, and a send only starts
  while the lease still outlasts the request timeout;
* per case in order: storage.outbox only offers an entry when all earlier entries of its
  ``project_no`` are delivered;
* repeats happen only for records whose acknowledgement we did not get (timeout, crash between
  the answer and the database update); the idempotency key lets the receiver drop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import secrets as pysecrets
import socket
import ssl
from collections.abc import AsyncIterator, Iterable

import aiohttp
from sqlalchemy.exc import SQLAlchemyError

from hotline.clock import utcnow
from hotline.logs import redact
from service.context import AppContext
from storage import outbox
from storage.models import OutboxEntry

from . import lookup, transport
from .outcome import Dead, Delivered, Outcome, Retry, backoff, classify
from .profile import Profile, ProfileError
from .profile import load as load_profile
from .record import Extra, build_record, idempotency_key

log = logging.getLogger("hotline.forwarder")

#: a send starts only if the lease outlasts the request by this much
LEASE_MARGIN = 1.0


def worker_name() -> str:
    host = socket.gethostname()[:40]
    return f"{host}:{os.getpid()}:{pysecrets.token_hex(3)}"


class _Lease:
    """The entries this forwarder holds and until when (renewed by a heartbeat)."""

    def __init__(self, entries: Iterable[OutboxEntry]) -> None:
        entries = list(entries)
        self.held = {e.id for e in entries}
        self.deadline = min(
            (e.claimed_until for e in entries if e.claimed_until), default=utcnow()
        )

    def allows(self, entry_id: int, seconds: float) -> bool:
        return entry_id in self.held and (
            utcnow() + dt.timedelta(seconds=seconds + LEASE_MARGIN) < self.deadline
        )


class Forwarder:
    def __init__(
        self,
        ctx: AppContext,
        profile: Profile,
        secrets: transport.Secrets,
        *,
        name: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.profile = profile
        self.secrets = secrets
        self.name = name or worker_name()
        self.rng = rng or random.Random()
        self._pause_until = 0.0  # loop time before which nothing is sent (429 Retry-After)
        self._http: aiohttp.ClientSession | None = None

    @classmethod
    def from_context(cls, ctx: AppContext, **kwargs: object) -> Forwarder:
        """Load and check the configured profile and secrets; raises ProfileError."""
        settings = ctx.settings
        profile = load_profile(settings)
        missing = profile.missing_values()
        if missing:
            raise ProfileError(
                f"profile {profile.name} needs values {missing}: set them in forwarder_values"
            )
        secrets = transport.Secrets.from_settings(settings)
        transport.check(profile, secrets)
        if settings.forwarder_lease_seconds < 2 * settings.forwarder_request_timeout + 1:
            raise ProfileError(
                "forwarder_lease_seconds must be at least 2 × forwarder_request_timeout + 1"
            )
        return cls(ctx, profile, secrets, **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ the loop
    async def run(self, stopping: asyncio.Event) -> None:
        log.info("forwarder started", extra={
            "worker": self.name, "profile": self.profile.name,
            "transport": self.profile.transport.kind,
        })
        async with self._session():
            while not stopping.is_set():
                try:
                    sent = await self.run_once(stopping)
                except (SQLAlchemyError, OSError) as exc:
                    log.warning("outbox unavailable, retrying",
                                extra={"error": redact(str(exc))[:300]})
                    sent = 0
                if sent == 0:
                    await _sleep(stopping, self.settings.forwarder_poll_interval)
        log.info("forwarder stopped", extra={"worker": self.name})

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[aiohttp.ClientSession]:
        ssl_ctx: ssl.SSLContext | bool = True
        if self.settings.forwarder_ca_file is not None:
            ssl_ctx = ssl.create_default_context(cafile=str(self.settings.forwarder_ca_file))
        connector = aiohttp.TCPConnector(limit=self.settings.forwarder_concurrency, ssl=ssl_ctx)
        timeout = aiohttp.ClientTimeout(total=self.settings.forwarder_request_timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            self._http = http
            try:
                yield http
            finally:
                self._http = None

    async def run_once(self, stopping: asyncio.Event | None = None) -> int:
        """Claim one batch and work it off; returns how many entries were claimed."""
        stopping = stopping or asyncio.Event()
        loop = asyncio.get_running_loop()
        pause = self._pause_until - loop.time()
        if pause > 0:
            await _sleep(stopping, pause)
            if stopping.is_set():
                return 0
        settings = self.settings
        batch = await outbox.claim(
            self.ctx.db, self.name, settings.forwarder_batch_size, settings.forwarder_lease_seconds
        )
        if not batch:
            return 0
        lease = _Lease(batch)
        heartbeat = asyncio.create_task(self._heartbeat(lease))
        unsent: list[int] = []
        try:
            extras = await lookup.extras(
                self.ctx.db, self.ctx.vault, (e.payload for e in batch),
                with_identity=self.profile.needs_evaluator,
            )
            gate = asyncio.Semaphore(settings.forwarder_concurrency)

            async def one(entry: OutboxEntry) -> None:
                async with gate:
                    if stopping.is_set() or loop.time() < self._pause_until:
                        unsent.append(entry.id)
                        return
                    extra = extras.get(entry.payload["rating_id"], Extra())
                    try:
                        sent = await self._deliver(entry, extra, lease)
                    except (SQLAlchemyError, OSError) as exc:
                        log.error("outbox unavailable mid-batch; the lease will run out",
                                  extra={"outbox_id": entry.id, "error": redact(str(exc))[:300]})
                        return
                    if not sent:
                        unsent.append(entry.id)

            await asyncio.gather(*(one(e) for e in batch))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if unsent:
            # never sent: back to pending without counting an attempt
            await outbox.release(self.ctx.db, self.name, unsent)
        return len(batch)

    async def _heartbeat(self, lease: _Lease) -> None:
        every = self.settings.forwarder_lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                lease.held, lease.deadline = await outbox.renew(
                    self.ctx.db, self.name, sorted(lease.held),
                    self.settings.forwarder_lease_seconds,
                )
            except (SQLAlchemyError, OSError) as exc:
                # the deadline stays where it was: sends stop before it passes
                log.warning("lease renewal failed", extra={"error": redact(str(exc))[:300]})

    # ------------------------------------------------------------------ one record
    def url_for(self, event: str) -> str:
        endpoint = self.settings.forwarder_endpoint
        path = self.profile.invalidation.path if event != "rating" else ""
        return endpoint.rstrip("/") + path if path else endpoint

    async def _deliver(self, entry: OutboxEntry, extra: Extra, lease: _Lease) -> bool:
        """Send one entry and record the outcome; False if it was not sent (lease too short,
        so it is given back untouched)."""
        payload = entry.payload
        event = payload.get("event", entry.event)
        key = idempotency_key(payload, self.profile)
        if event != "rating" and self.profile.invalidation.mode == "skip":
            await outbox.mark_delivered(self.ctx.db, entry.id, self.name)
            log.info("not pushed: the profile skips this event",
                     extra={"outbox_id": entry.id, "key": key, "event": event})
            return True
        try:
            url, request = await self.prepare(entry, extra)
        except Exception as exc:  # a bug or a bad profile value: nothing a retry can fix
            log.exception("cannot build the record", extra={"outbox_id": entry.id, "key": key})
            await self._record(entry, key, Dead(redact(f"cannot build the record: {exc}")[:500]))
            return True
        # checked after building (SM2 takes a while): the lease must outlast the request,
        # or another forwarder could take the entry over while it is still on the wire
        if not lease.allows(entry.id, self.settings.forwarder_request_timeout):
            return False
        await self._record(entry, key, await self.post(url, request))
        return True

    async def prepare(self, entry: OutboxEntry, extra: Extra) -> tuple[str, transport.Request]:
        """The URL and the signed request for one entry."""
        payload = entry.payload
        record = build_record(
            payload, self.profile, extra,
            fallback_reason=self.settings.bad_rating_fallback_reason,
        )
        key = idempotency_key(payload, self.profile)
        if self.profile.transport.kind == "sm2_envelope":  # pure-Python SM2: off the loop
            request = await asyncio.to_thread(
                transport.build, record, key, self.profile, self.secrets
            )
        else:
            request = transport.build(record, key, self.profile, self.secrets)
        return self.url_for(payload.get("event", entry.event)), request

    async def post(self, url: str, request: transport.Request) -> Outcome:
        """POST one request; what the answer means."""
        assert self._http is not None, "post() outside run()/run_once()"
        try:
            async with self._http.post(url, data=request.body, headers=request.headers) as resp:
                body = await resp.text(errors="replace")
                return classify(resp.status, resp.headers, body, self.profile.response)
        except TimeoutError:
            return Retry(f"no answer within {self.settings.forwarder_request_timeout:g} s")
        except aiohttp.ClientError as exc:
            return Retry(redact(f"{type(exc).__name__}: {exc}"))

    async def _record(self, entry: OutboxEntry, key: str, outcome: Outcome) -> None:
        db, attempts = self.ctx.db, entry.attempts + 1
        fields = {"outbox_id": entry.id, "key": key, "attempts": attempts}
        try:
            if isinstance(outcome, Delivered):
                kept = await outbox.mark_delivered(db, entry.id, self.name)
                log.info("delivered", extra=fields)
            elif isinstance(outcome, Dead):
                kept = await outbox.mark_dead(db, entry.id, self.name, outcome.reason)
                log.warning("refused by the receiver: dead-lettered",
                            extra={**fields, "reason": outcome.reason})
            else:
                kept = await self._retry(entry, outcome, fields)
        except (SQLAlchemyError, OSError) as exc:
            # the lease runs out and the record is sent again: a repeat, never a loss
            log.error("cannot record the outcome",
                      extra={**fields, "error": redact(str(exc))[:300]})
            return
        if not kept:
            log.warning("lease lost before the outcome was recorded", extra=fields)

    async def _retry(self, entry: OutboxEntry, outcome: Retry, fields: dict[str, object]) -> bool:
        settings = self.settings
        delay = backoff(
            entry.attempts + 1, settings.forwarder_backoff_base, settings.forwarder_backoff_max,
            self.rng,
        )
        if outcome.retry_after is not None:
            # the receiver said when: that wins over our own schedule, and holds every send
            delay = outcome.retry_after
            loop = asyncio.get_running_loop()
            self._pause_until = max(self._pause_until, loop.time() + delay)
        log.warning("not delivered, will retry",
                    extra={**fields, "error": outcome.error, "retry_in_seconds": round(delay, 3)})
        return await outbox.mark_retry(
            self.ctx.db, entry.id, self.name, outcome.error,
            utcnow() + dt.timedelta(seconds=delay),
        )


async def _sleep(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=max(0.0, seconds))


async def run(ctx: AppContext, stopping: asyncio.Event) -> None:
    """Worker entry point for ``hotline serve`` and ``hotline forwarder run``."""
    if not ctx.settings.forwarder_endpoint:
        # pull-only deployments: stay up (a worker that returns stops `hotline serve`)
        log.info("forwarder idle: forwarder_endpoint is not set (pull feed only)")
        await stopping.wait()
        return
    await Forwarder.from_context(ctx).run(stopping)
