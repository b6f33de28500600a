"""storage.write_batch: group commit of single-row writes (issue 13: a burst's call rows in a
few statements instead of a thousand)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from storage.write_batch import WriteBatcher


class Table:
    """A fake statement: records each batch; held until ``gate`` opens; a row "bad" fails."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, rows: Sequence[str]) -> list[str]:
        self.batches.append(list(rows))
        await self.gate.wait()
        if "bad" in rows:
            raise ValueError("bad row")
        return [row.upper() for row in rows]


async def test_a_lone_row_goes_at_once_and_rows_arriving_meanwhile_go_together() -> None:
    table = Table()
    table.gate.clear()
    batcher = WriteBatcher(table.write, asyncio.Semaphore(10))
    first = asyncio.ensure_future(batcher.submit("a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert table.batches == [["a"]]  # not waiting for company
    later = [asyncio.ensure_future(batcher.submit(r)) for r in ("b", "c", "d")]
    await asyncio.sleep(0)
    table.gate.set()
    assert await first == "A"
    assert [await f for f in later] == ["B", "C", "D"]
    assert table.batches == [["a"], ["b", "c", "d"]]
    assert batcher.statements == 2


async def test_batches_are_at_most_max_rows_and_run_side_by_side() -> None:
    table = Table()
    table.gate.clear()
    batcher = WriteBatcher(table.write, asyncio.Semaphore(10), max_rows=2)
    futures = [asyncio.ensure_future(batcher.submit(str(n))) for n in range(5)]
    await asyncio.sleep(0.01)
    assert len(table.batches) >= 2 and all(len(b) <= 2 for b in table.batches)
    table.gate.set()
    assert [await f for f in futures] == [str(n) for n in range(5)]
    assert sorted(r for b in table.batches for r in b) == [str(n) for n in range(5)]


async def test_a_withdrawn_row_is_left_out_of_its_batch() -> None:
    table = Table()
    table.gate.clear()
    batcher = WriteBatcher(table.write, asyncio.Semaphore(10))
    busy = asyncio.ensure_future(batcher.submit("a"))
    await asyncio.sleep(0)
    withdrawn = asyncio.ensure_future(batcher.submit("b"))
    kept = asyncio.ensure_future(batcher.submit("c"))
    await asyncio.sleep(0)
    withdrawn.cancel()  # its caller gave up (the survey journalled the step)
    table.gate.set()
    assert (await busy, await kept) == ("A", "C")
    assert table.batches == [["a"], ["c"]]


async def test_a_failed_batch_is_written_row_by_row_so_one_bad_row_fails_alone() -> None:
    table = Table()
    table.gate.clear()
    batcher = WriteBatcher(table.write, asyncio.Semaphore(10))
    busy = asyncio.ensure_future(batcher.submit("a"))
    await asyncio.sleep(0)
    rows = [asyncio.ensure_future(batcher.submit(r)) for r in ("b", "bad", "c")]
    await asyncio.sleep(0)
    table.gate.set()
    assert await busy == "A"
    assert await rows[0] == "B" and await rows[2] == "C"
    with pytest.raises(ValueError, match="bad row"):
        await rows[1]
    assert table.batches == [["a"], ["b", "bad", "c"], ["b"], ["bad"], ["c"]]


async def test_on_sent_tells_when_the_row_is_in_the_database() -> None:
    table = Table()
    table.gate.clear()
    seen: list[bool] = []
    slots = asyncio.Semaphore(1)
    await slots.acquire()  # every connection busy: the row waits, not in the database
    batcher = WriteBatcher(table.write, slots)
    row = asyncio.ensure_future(batcher.submit("a", seen.append))
    await asyncio.sleep(0.01)
    assert seen == [] and table.batches == []
    slots.release()
    await asyncio.sleep(0.01)
    assert seen == [True]
    table.gate.set()
    assert await row == "A"
    assert seen == [True, False]


async def test_a_write_giving_the_wrong_number_of_results_fails_its_rows() -> None:
    async def short(rows: Sequence[str]) -> list[str]:
        return []

    batcher = WriteBatcher(short, asyncio.Semaphore(1))
    with pytest.raises(RuntimeError, match="0 results for 1 rows"):
        await batcher.submit("a")
