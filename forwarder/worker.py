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
  the answer and the database update); the idempotency key lets the receiver drop them;
* a failing endpoint is backed off as one (forwarder.breaker): one line per state change, one
  probe at a time, never every due record at once;
* the worker does not die (issue 8, defect 1): a batch that fails in an unexpected way is
  logged and the loop goes on after a backoff; its entries come back when their lease ends.

Leases are timed on this process's monotonic clock from the moment the claim was asked for
(before the database set it), so they end here no later than in the database, whatever the
host's wall clock says; the database's own clock sets and compares them there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets as pysecrets
import socket
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

from hotline.logs import redact
from service.context import AppContext
from storage import outbox, outbox_wake
from storage.models import OutboxStatus

from . import lookup, transport
from .breaker import Breaker, Change, State
from .envelopes import EnvelopeProcessDied, Envelopes
from .http_client import HttpClient, HttpError
from .outcome import (
    DELIVERED,
    Dead,
    Delivered,
    Outcome,
    Retry,
    acknowledged_by_status,
    backoff,
    classify,
)
from .profile import Profile, ProfileError
from .profile import load as load_profile
from .record import Extra, build_record, idempotency_key

log = logging.getLogger("hotline.forwarder")

#: a send starts only if the lease outlasts the request by this much
LEASE_MARGIN = 1.0
#: batches worked on at once by one forwarder
LANES = 2
#: after a wake-up, wait this long before claiming: commits arriving meanwhile share the claim
#: (at hundreds of commits a second, a claim each would keep the event loop busy)
WAKE_GATHER = 0.05


def worker_name() -> str:
    host = socket.gethostname()[:40]
    return f"{host}:{os.getpid()}:{pysecrets.token_hex(3)}"


def endpoint_of(url: str) -> str:
    """What a breaker is kept per: scheme, host and port (paths of one server share it)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _Lease:
    """The entries this forwarder holds and until when (loop time; renewed by a heartbeat)."""

    def __init__(self, entries: Iterable[outbox.Claimed], deadline: float) -> None:
        self.held = {e.id for e in entries}
        self.deadline = deadline

    def allows(self, entry_id: int, seconds: float, now: float) -> bool:
        return entry_id in self.held and now + seconds + LEASE_MARGIN < self.deadline


class _Result(NamedTuple):
    entry: outbox.Claimed
    key: str
    outcome: Outcome


@dataclass
class _Batch:
    """One claimed batch while it is worked on."""

    lease: _Lease
    extras: dict[int, Extra]
    #: SM2: each entry's envelope params, being made off the loop (forwarder.envelopes)
    params: dict[int, asyncio.Future[str]] = field(default_factory=dict)
    #: SM2: entries whose record could not be built, and why
    unbuildable: dict[int, Exception] = field(default_factory=dict)
    #: the envelope process died: some entries were not sent
    envelopes_lost: bool = False

    def extra(self, entry: outbox.Claimed) -> Extra:
        return self.extras.get(entry.payload["rating_id"], _NO_EXTRA)

    def settle(self) -> None:
        """Envelopes no longer needed are not made; a failure nobody read is not logged as
        one ("exception was never retrieved")."""
        for future in self.params.values():
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()


_NO_EXTRA = Extra()


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
        self._breakers: dict[str, Breaker] = {}
        self._redirects_logged: set[str] = set()
        self._urls: dict[str, str] = {}  # by event (url_for)
        self._http: HttpClient | None = None
        # requests in flight, across lanes: never more than the connection pool holds, or a
        # request would spend its timeout waiting for a connection
        self._gate = asyncio.Semaphore(ctx.settings.forwarder_concurrency)
        # SQLite has one writer at a time and makes the others sleep in its busy handler (up
        # to 100 ms a try): the lanes take turns here instead (issue 13, throughput)
        self._sqlite_writes = asyncio.Lock() if ctx.db.is_sqlite else None
        self.envelopes = (
            Envelopes(profile.transport, secrets, ctx.settings.forwarder_sm2_processes)
            if profile.transport.kind == "sm2_envelope" else None
        )

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

    def breaker(self, url: str) -> Breaker:
        """The breaker of ``url``'s endpoint (kept by URL too: no parsing per record)."""
        found = self._breakers.get(url)
        if found is not None:
            return found
        endpoint = endpoint_of(url)
        found = self._breakers.get(endpoint)
        if found is None:
            s = self.settings
            found = self._breakers[endpoint] = Breaker(
                s.forwarder_breaker_failures, s.forwarder_backoff_base, s.forwarder_backoff_max,
                self.rng,
            )
        self._breakers[url] = found
        return found

    def _writes(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Around each outbox write transaction: one lane at a time on SQLite."""
        if self._sqlite_writes is None:
            return contextlib.nullcontext()
        return self._sqlite_writes

    # ------------------------------------------------------------------ the loop
    async def start(self) -> None:
        """What must be ready before the first batch: the SM2 envelope process (its imports
        and point tables, about a second). :meth:`run` does it; a caller may do it before."""
        if self.envelopes is not None:
            await self.envelopes.start()

    async def run(self, stopping: asyncio.Event) -> None:
        try:
            try:
                await self.start()
            except EnvelopeProcessDied:
                pass  # said by forwarder.envelopes; the first batch starts another process
            await self._run(stopping)
        finally:
            if self.envelopes is not None:
                await self.envelopes.close()

    async def _run(self, stopping: asyncio.Event) -> None:
        log.info("forwarder started", extra={
            "worker": self.name, "profile": self.profile.name,
            "transport": self.profile.transport.kind,
        })
        signal = outbox_wake.signal_of(self.ctx.db)
        # other processes' commits arrive by NOTIFY (PostgreSQL); this one's directly
        # a lost LISTEN connection is retried soon: meanwhile only the poll finds new entries
        listening = asyncio.create_task(outbox_wake.listen(
            self.ctx.db, signal, stopping, min(5.0, self.settings.forwarder_backoff_max)
        ))
        try:
            async with self._session():
                # two lanes: one claims and records in the database while the other's
                # requests are on the wire. Claims are atomic, so no entry is in both lanes,
                # and an entry in flight in one lane holds back its case's later entries in
                # the other.
                await asyncio.gather(*(self._lane(stopping, signal) for _ in range(LANES)))
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
        log.info("forwarder stopped", extra={"worker": self.name})

    async def _lane(self, stopping: asyncio.Event, signal: outbox_wake.Signal) -> None:
        settings = self.settings
        errors = 0  # batches in a row that failed
        while not stopping.is_set():
            # taken before looking: an entry committed after the look sets this ticket
            ticket = signal.ticket()
            try:
                sent = await self.run_once(stopping)
                errors = 0
            except (SQLAlchemyError, OSError) as exc:
                errors += 1
                log.warning("outbox unavailable, retrying",
                            extra={"error": redact(str(exc))[:300], "failures": errors})
                sent = 0
            except EnvelopeProcessDied:
                # said once by forwarder.envelopes; the batch's unsent entries are back in
                # the outbox, and the next batch starts a new process
                errors += 1
                sent = 0
            except Exception:
                # a bug or the unforeseen: never the end of the worker (nor of `hotline
                # serve`); the batch's entries come back when their lease runs out
                errors += 1
                log.exception("forwarder batch failed; going on after a pause",
                              extra={"failures": errors})
                sent = 0
            if errors:
                await _sleep(stopping, backoff(
                    errors, settings.forwarder_poll_interval, settings.forwarder_backoff_max,
                    self.rng,
                ))
            elif sent == 0:
                # woken by a commit (issue 13: keypress → receipt), else the poll; then a
                # short pause, so that a burst of commits costs one claim, not one each
                await _sleep(stopping, settings.forwarder_poll_interval, ticket)
                await _sleep(stopping, WAKE_GATHER)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[HttpClient]:
        settings = self.settings
        ssl_ctx = None
        if settings.forwarder_ca_file is not None:
            ssl_ctx = ssl.create_default_context(cafile=str(settings.forwarder_ca_file))
        # one pool of kept-alive connections for the worker's whole life
        async with HttpClient(
            timeout=settings.forwarder_request_timeout, limit=settings.forwarder_concurrency,
            ssl_context=ssl_ctx,
        ) as http:
            self._http = http
            try:
                yield http
            finally:
                self._http = None

    async def run_once(self, stopping: asyncio.Event | None = None) -> int:
        """Claim one batch and work it off; returns how many entries were claimed."""
        stopping = stopping or asyncio.Event()
        loop = asyncio.get_running_loop()
        settings = self.settings
        main = self.breaker(settings.forwarder_endpoint)
        pause = main.wait(loop.time())
        if pause > 0:
            await _sleep(stopping, pause)
            if stopping.is_set():
                return 0
        # while the endpoint is failing, one record goes as the probe: claim no more
        limit = settings.forwarder_batch_size if main.state == State.CLOSED else 1
        asked = loop.time()
        async with self._writes():
            batch, extras = await self._claim(limit)
        if not batch:
            return 0
        work = _Batch(_Lease(batch, asked + settings.forwarder_lease_seconds), extras)
        heartbeat = asyncio.create_task(self._heartbeat(work.lease))
        unsent: list[int] = []
        results: list[_Result] = []
        try:
            if self.envelopes is not None:
                self._encrypt(batch, work)
            gate = self._gate
            entries = iter(batch)  # shared: each entry is taken by one sender

            async def sender() -> None:
                for entry in entries:
                    params = work.params.get(entry.id)
                    if params is not None and not params.done():
                        # the envelope is awaited before a place among the requests in
                        # flight is taken: a record waiting for its encryption holds none
                        with contextlib.suppress(Exception):  # seen again in _envelope()
                            await params
                    async with gate:
                        try:
                            result = await self._deliver(entry, work, stopping)
                        except Exception:  # one record's bug must not sink the batch
                            log.exception("cannot send the record; its lease will run out",
                                          extra={"outbox_id": entry.id})
                            continue
                    if result is None:
                        unsent.append(entry.id)
                    else:
                        results.append(result)

            # as many senders as requests may be in flight, not a task per record (issue 13:
            # hundreds of tasks waiting on the gate cost more than the sends)
            senders = min(settings.forwarder_concurrency, len(batch))
            await asyncio.gather(*(sender() for _ in range(senders)))
        finally:
            work.settle()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await self._record(results)
        if unsent:
            # never sent: back to pending without counting an attempt
            async with self._writes():
                await outbox.release(self.ctx.db, self.name, unsent)
        if work.envelopes_lost:
            raise EnvelopeProcessDied("the SM2 envelope process died during a batch")
        return len(batch)

    def _encrypt(self, batch: list[outbox.ClaimedEntry], work: _Batch) -> None:
        """SM2: every record of the batch built now and its encryption started off the loop
        (forwarder.envelopes), so that it is ready, or nearly, when its turn to be sent
        comes."""
        assert self.envelopes is not None
        ids: list[int] = []
        plains: list[bytes] = []
        for entry in batch:
            if self.profile.skips(entry.payload.get("event", entry.event)):
                continue
            try:
                plain = transport.dumps(self._record_of(entry, work.extra(entry)))
            except Exception as exc:  # a bug or a bad profile value: dead-lettered when sent
                work.unbuildable[entry.id] = exc
                continue
            ids.append(entry.id)
            plains.append(plain)
        work.params = dict(zip(ids, self.envelopes.encrypt(plains), strict=True))

    def _record_of(self, entry: outbox.Claimed, extra: Extra) -> dict[str, object]:
        return build_record(
            entry.payload, self.profile, extra,
            fallback_reason=self.settings.bad_rating_fallback_reason,
        )

    async def _claim(self, limit: int) -> tuple[list[outbox.ClaimedEntry], dict[int, Extra]]:
        """A batch and what its records need beyond the snapshots, read in the claim's own
        transaction (one transaction per batch, not two); a failed lookup undoes the claim."""
        async with self.ctx.db.transaction() as session:
            batch = await outbox.claim_in(
                session, self.name, limit, self.settings.forwarder_lease_seconds
            )
            if not batch:
                return batch, {}
            extras = await lookup.extras_in(
                session, self.ctx.vault, (e.payload for e in batch),
                with_identity=self.profile.needs_evaluator,
            )
        return batch, extras

    async def _heartbeat(self, lease: _Lease) -> None:
        every = self.settings.forwarder_lease_seconds / 3
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            asked = loop.time()
            try:
                async with self._writes():
                    lease.held, _ = await outbox.renew(
                        self.ctx.db, self.name, sorted(lease.held),
                        self.settings.forwarder_lease_seconds,
                    )
                lease.deadline = asked + self.settings.forwarder_lease_seconds
            except (SQLAlchemyError, OSError) as exc:
                # the deadline stays where it was: sends stop before it passes
                log.warning("lease renewal failed", extra={"error": redact(str(exc))[:300]})

    # ------------------------------------------------------------------ one record
    def url_for(self, event: str) -> str:
        endpoint = self.settings.forwarder_endpoint
        path = self.profile.path_for(event)
        url = self._urls[event] = endpoint.rstrip("/") + path if path else endpoint
        return url

    async def _deliver(
        self, entry: outbox.Claimed, work: _Batch, stopping: asyncio.Event
    ) -> _Result | None:
        """Send one entry; its result, or None if it was not sent (a stop, the breaker, a
        lease too short, or its envelope process died: it is given back untouched)."""
        lease = work.lease
        loop = asyncio.get_running_loop()
        timeout = self.settings.forwarder_request_timeout
        if stopping.is_set() or not lease.allows(entry.id, timeout, loop.time()):
            return None
        payload = entry.payload
        event = payload.get("event", entry.event)
        key = idempotency_key(payload, self.profile)
        if self.profile.skips(event):
            log.info("not pushed: the profile skips this event",
                     extra={"outbox_id": entry.id, "key": key, "event": event})
            return _Result(entry, key, DELIVERED)
        url = self._urls.get(event) or self.url_for(event)
        breaker = self.breaker(url)
        if breaker.wait(loop.time()) > 0:
            return None  # the endpoint is failing: not even the cost of building
        try:
            # JSON+HMAC is built right here; an SM2 envelope waits for its ciphertext
            request = (self._build(entry, work, key) if self.envelopes is None
                       else await self._envelope(entry, work, key))
        except EnvelopeProcessDied:
            work.envelopes_lost = True
            return None
        except Exception as exc:  # a bug or a bad profile value: nothing a retry can fix
            log.exception("cannot build the record", extra={"outbox_id": entry.id, "key": key})
            return _Result(entry, key, Dead(redact(f"cannot build the record: {exc}")[:500]))
        # checked after building (SM2 takes a while): the lease must outlast the request,
        # or another forwarder could take the entry over while it is still on the wire
        if stopping.is_set() or not lease.allows(entry.id, timeout, loop.time()):
            return None
        if not breaker.allows(loop.time()):
            return None
        outcome = await self.post(url, request)
        self._observe(url, breaker, outcome)
        return _Result(entry, key, outcome)

    def _observe(self, url: str, breaker: Breaker, outcome: Outcome) -> None:
        """Tell the endpoint's breaker; log its state changes (one line each) and a redirect
        (once per place it points to)."""
        now = asyncio.get_running_loop().time()
        change: Change | None
        if isinstance(outcome, Retry):
            change = breaker.failure(now, outcome.retry_after)
            if outcome.redirect is not None and outcome.redirect not in self._redirects_logged:
                self._redirects_logged.add(outcome.redirect)
                log.error("the endpoint answers with a redirect, which is never followed: "
                          "check forwarder_endpoint",
                          extra={"endpoint": endpoint_of(url), "error": outcome.error,
                                 "location": outcome.redirect})
        else:
            change = breaker.success(now)  # a refusal (dead) is an answer too
        if change is None:
            return
        if change.state == State.OPEN:
            log.warning("endpoint failing: sends paused, then one probe",
                        extra={"endpoint": endpoint_of(url), "failures": change.failures,
                               "error": getattr(outcome, "error", ""),
                               "pause_seconds": round(change.pause, 3)})
        else:
            log.info("endpoint answers again: sending resumed",
                     extra={"endpoint": endpoint_of(url)})

    def _build(self, entry: outbox.Claimed, work: _Batch, key: str) -> transport.Request:
        """The signed JSON request for one entry (``key``: its idempotency key)."""
        return transport.build(
            self._record_of(entry, work.extra(entry)), key, self.profile, self.secrets
        )

    async def _envelope(self, entry: outbox.Claimed, work: _Batch, key: str) -> transport.Request:
        """The SM2 envelope request for one entry, its ciphertext made in the envelope
        process (:meth:`_encrypt`)."""
        assert self.envelopes is not None
        failed = work.unbuildable.get(entry.id)
        if failed is not None:
            raise failed
        params = await work.params[entry.id]
        # the time and its signature of the second the request leaves in
        ts, signature = await self.envelopes.signed_time()
        return transport.envelope_request(
            key, ts, signature, params, self.profile.transport, self.secrets
        )

    async def post(self, url: str, request: transport.Request) -> Outcome:
        """POST one request; what the answer means. Redirects are never followed."""
        assert self._http is not None, "post() outside run()/run_once()"
        try:
            resp = await self._http.post(url, request.body, request.headers)
        except TimeoutError:
            return Retry(f"no answer within {self.settings.forwarder_request_timeout:g} s")
        except (HttpError, OSError) as exc:  # refused, reset, TLS, a garbled answer
            return Retry(redact(f"{type(exc).__name__}: {exc}"))
        if acknowledged_by_status(resp.status, self.profile.response):
            return DELIVERED  # the body is not even decoded
        return classify(
            resp.status, resp.headers, resp.text(), self.profile.response,
            retry_after_cap=self.settings.forwarder_backoff_max,
        )

    async def _record(self, results: list[_Result]) -> None:
        """Every outcome of the batch in one transaction."""
        if not results:
            return
        settings = self.settings
        finished: list[outbox.Finished] = []
        # a line per record only at DEBUG, and its fields only built then (issue 13)
        debug = log.isEnabledFor(logging.DEBUG)
        for r in results:
            if isinstance(r.outcome, Delivered):
                finished.append(outbox.Finished(r.entry.id, OutboxStatus.DELIVERED))
                if debug:
                    log.debug("delivered", extra={"outbox_id": r.entry.id, "key": r.key,
                                                  "attempts": r.entry.attempts + 1})
                continue
            attempts = r.entry.attempts + 1
            fields = {"outbox_id": r.entry.id, "key": r.key, "attempts": attempts}
            if isinstance(r.outcome, Dead):
                finished.append(outbox.Finished(r.entry.id, OutboxStatus.DEAD, r.outcome.reason))
                log.warning("refused by the receiver: dead-lettered",
                            extra={**fields, "reason": r.outcome.reason})
            else:
                delay = backoff(attempts, settings.forwarder_backoff_base,
                                settings.forwarder_backoff_max, self.rng)
                if r.outcome.retry_after is not None:  # the receiver said when (clamped)
                    delay = max(delay, r.outcome.retry_after)
                finished.append(outbox.Finished(
                    r.entry.id, OutboxStatus.PENDING, r.outcome.error, delay
                ))
                # one line per attempt only at DEBUG: the breaker logs the endpoint's state
                log.debug("not delivered, will retry",
                          extra={**fields, "error": r.outcome.error,
                                 "retry_in_seconds": round(delay, 3)})
        try:
            async with self._writes():
                kept = await outbox.finish_many(self.ctx.db, self.name, finished)
        except (SQLAlchemyError, OSError) as exc:
            # the leases run out and the records are sent again: a repeat, never a loss
            log.error("cannot record the outcomes", extra={
                "entries": len(finished), "error": redact(str(exc))[:300],
            })
            return
        tally = {status: 0 for status in (OutboxStatus.DELIVERED, OutboxStatus.PENDING,
                                          OutboxStatus.DEAD)}
        for f in finished:
            if f.entry_id in kept:
                tally[f.status] += 1
        # one line per batch, not per record: at thousands a second the log would be the load
        log.info("batch sent", extra={
            "delivered": tally[OutboxStatus.DELIVERED], "retry": tally[OutboxStatus.PENDING],
            "dead": tally[OutboxStatus.DEAD],
        })
        lost = [f.entry_id for f in finished if f.entry_id not in kept]
        if lost:
            log.warning("lease lost before the outcome was recorded",
                        extra={"outbox_ids": lost[:20], "entries": len(lost)})


async def _sleep(
    stopping: asyncio.Event, seconds: float, wake: asyncio.Event | None = None
) -> None:
    if wake is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=max(0.0, seconds))
        return
    if wake.is_set():
        return
    waits = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def run(ctx: AppContext, stopping: asyncio.Event) -> None:
    """Worker entry point for ``hotline serve`` and ``hotline forwarder run``."""
    if not ctx.settings.forwarder_endpoint:
        # pull-only deployments: stay up (a worker that returns stops `hotline serve`)
        log.info("forwarder idle: forwarder_endpoint is not set (pull feed only)")
        await stopping.wait()
        return
    await Forwarder.from_context(ctx).run(stopping)
