"""Group commit for one kind of single-row write: the rows that arrive while earlier ones are in
the database go together, as ONE statement, when a connection is free.

Under a burst (1,000 calls reaching the survey at once) each write alone is a statement, a round
trip and a turn of the busy event loop while it holds one of a few connections: the writes queue
for seconds, past the survey's save deadline, and are journalled (issue 13). Gathered, a
thousand rows are a few statements. When the database is idle a row is sent at once, alone: no
write ever waits for others to arrive.

A row still waiting for its batch can be withdrawn (its caller gave up and journalled it): it is
left out of the batch, so it cannot also land later. ``on_sent`` tells the caller the moment its
row is in the database. A batch that fails is retried row by row, so one bad row fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Row = TypeVar("Row")
Result = TypeVar("Result")


@dataclass
class _Waiting(Generic[Row, Result]):
    row: Row
    done: asyncio.Future[Result]
    on_sent: Callable[[bool], None] | None


class WriteBatcher(Generic[Row, Result]):
    """``write`` takes rows and returns one result per row, in order; at most ``in_flight`` of
    its statements run at once (``slots``: the connections they share with other writes), each
    with at most ``max_rows`` rows."""

    def __init__(
        self,
        write: Callable[[Sequence[Row]], Awaitable[Sequence[Result]]],
        slots: asyncio.Semaphore,
        *,
        max_rows: int = 200,
    ) -> None:
        self._write = write
        self._slots = slots
        self.max_rows = max_rows
        self._queue: list[_Waiting[Row, Result]] = []
        self._senders: set[asyncio.Task[None]] = set()
        #: statements sent (a figure for tests and benchmarks)
        self.statements = 0

    async def submit(self, row: Row, on_sent: Callable[[bool], None] | None = None) -> Result:
        """The row's result once its batch is written. ``on_sent(True)`` when the batch goes to
        the database, ``on_sent(False)`` when it is back. Cancelling the caller before its
        batch is sent withdraws the row."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(row, done, on_sent))
        if len(self._senders) <= len(self._queue) // self.max_rows:
            sender = asyncio.ensure_future(self._send())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await done

    async def _send(self) -> None:
        async with self._slots:
            while self._queue:
                batch = [w for w in self._queue[:self.max_rows] if not w.done.done()]
                del self._queue[:self.max_rows]
                if not batch:
                    continue
                try:
                    await self._write_batch(batch)
                except BaseException:  # cancelled (shutdown): its callers must not wait forever
                    for waiting in batch:
                        waiting.done.cancel()
                    raise

    async def _write_batch(self, batch: list[_Waiting[Row, Result]]) -> None:
        _tell(batch, True)
        try:
            try:
                results = await self._written([w.row for w in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0], error=exc)
                else:
                    await self._one_by_one(batch)
                return
        finally:
            _tell(batch, False)
        for waiting, result in zip(batch, results, strict=True):
            _settle(waiting, result)

    async def _one_by_one(self, batch: list[_Waiting[Row, Result]]) -> None:
        """After a batch failed: each row alone, so one bad row fails alone."""
        for waiting in batch:
            if waiting.done.done():
                continue
            try:
                [result] = await self._written([waiting.row])
            except Exception as exc:
                _settle(waiting, error=exc)
            else:
                _settle(waiting, result)

    async def _written(self, rows: list[Row]) -> Sequence[Result]:
        self.statements += 1
        results = await self._write(rows)
        if len(results) != len(rows):
            raise RuntimeError(f"{len(results)} results for {len(rows)} rows")
        return results


def _tell(batch: list[_Waiting[Row, Result]], sent: bool) -> None:
    for waiting in batch:
        if waiting.on_sent is not None:
            waiting.on_sent(sent)


def _settle(waiting: _Waiting[Row, Result], result: Result | None = None, *,
            error: BaseException | None = None) -> None:
    if waiting.done.done():  # its caller gave up meanwhile
        return
    if error is not None:
        waiting.done.set_exception(error)
    else:
        waiting.done.set_result(result)  # type: ignore[arg-type]



def first_of_each(keys: Sequence[Hashable]) -> list[bool]:
    """For each key of a batch, whether it is the first with that key: a row for the same
    call twice in one statement would meet itself, so the later one is answered as "already
    stored" and decides against what is there."""
    seen: set[Hashable] = set()
    first = []
    for key in keys:
        first.append(key not in seen)
        seen.add(key)
    return first
