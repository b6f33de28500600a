"""The local journal (storage.journal) and the survey's fold of it (ivr.survey_journal.fold):
durable appends, a torn last line after a crash, appends racing a seal, net effect per call."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from ivr.survey_journal import VERSION, SurveyJournal, fold
from storage.journal import CURRENT, Journal


def rec(linkedid: str, op: str, at: str = "2026-03-01T01:00:00+00:00", **kw: object) -> dict:
    return {"v": VERSION, "linkedid": linkedid, "op": op, "at": at, **kw}


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_new_line(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    journal.append({"n": 1})
    with open(tmp_path / CURRENT, "ab") as fh:  # a crash in the middle of an append
        fh.write(b'{"n": 2, "trunc')
    journal.append({"n": 3})
    assert [r["n"] for r in Journal.read(journal.current)] == [1, 3]


def test_appends_racing_seals_lose_nothing(tmp_path: Path) -> None:
    """Writers in threads while the replayer seals over and over: every record is in exactly
    one file (an append never lands in a file already set aside... and read)."""
    journal = Journal(tmp_path)
    stop = threading.Event()

    def writer(w: int) -> None:
        for n in range(200):
            journal.append({"w": w, "n": n})

    def sealer() -> None:
        while not stop.is_set():
            journal.seal()

    seal_thread = threading.Thread(target=sealer)
    seal_thread.start()
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    seal_thread.join()
    seen = [(r["w"], r["n"]) for p in journal.files() for r in Journal.read(p)]
    assert sorted(seen) == [(w, n) for w in range(4) for n in range(200)]
    for w in range(4):  # each writer's records stay in order across files
        assert [n for ww, n in seen if ww == w] == list(range(200))
    assert all(os.stat(p).st_mode & 0o077 == 0 for p in journal.files())  # personal data


def test_seal_and_remove(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal.is_empty()
    journal.seal()  # nothing to seal
    journal.append({"n": 1})
    journal.seal()
    [sealed] = journal.sealed()
    assert not journal.current.exists() and not journal.is_empty()
    journal.remove(sealed)
    assert journal.is_empty()


def test_fold_the_last_save_wins_and_a_vote_beats_not_rated() -> None:
    vote1 = {"level": 4, "reason_codes": None, "comment_recording": None, "final": False,
             "rated_at": "2026-03-01T01:00:01+00:00"}
    vote2 = {**vote1, "reason_codes": ["2"], "final": True}
    nets = fold([
        rec("a", "begin", live=True, info={"agent_id": "A1", "queue": None}),
        rec("b", "begin", live=False, info={"abandoned": True}),
        rec("a", "save", vote=vote1, info={"agent_id": None, "queue": "q"}),
        rec("a", "save", vote=vote2),
        rec("a", "begin", live=False),  # the hang-up handler after the vote
        rec("c", "not_rated"),
        {"v": 99, "linkedid": "d", "op": "save"},  # unknown form: skipped, not guessed
    ])
    assert list(nets) == ["a", "b", "c"]
    assert nets["a"].vote == vote2 and nets["a"].live
    assert nets["a"].info == {"agent_id": "A1", "queue": "q"}
    assert nets["b"].vote is None and nets["b"].not_rated_at is not None
    assert nets["b"].info == {"abandoned": True}
    assert nets["c"].not_rated_at is not None


async def test_a_burst_of_appends_is_written_in_groups_and_each_is_durable_on_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: 500 surveys journalling at once cost a few fsyncs, not 500; an append returns
    only once its record is on disk (issue 8 defect 3: the next prompt waits for durability)."""
    journal = SurveyJournal(tmp_path, deadline=1.0)
    syncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        syncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)

    async def survey(n: int) -> None:
        await journal.append(rec(f"call-{n}", "begin", live=True))
        on_disk = {r["linkedid"] for p in journal.log.files() for r in Journal.read(p)}
        assert f"call-{n}" in on_disk
        await journal.append(rec(f"call-{n}", "save", vote={"level": 2}))

    await asyncio.gather(*(survey(n) for n in range(500)))
    records = [r for p in journal.log.files() for r in Journal.read(p)]
    assert len(records) == 1000 and all(journal.holds(f"call-{n}") for n in range(500))
    for n in range(500):  # each call's steps in order
        assert [r["op"] for r in records if r["linkedid"] == f"call-{n}"] == ["begin", "save"]
    assert 2 <= len(syncs) < 50


async def test_a_failed_group_write_fails_every_append_in_it(tmp_path: Path) -> None:
    journal = SurveyJournal(tmp_path / "journal", deadline=1.0)
    (tmp_path / "journal").write_text("a file where the directory should be")
    results = await asyncio.gather(*(journal.append(rec(f"c{n}", "begin")) for n in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert not journal.holds("c0")


def test_the_breaker_opens_only_when_the_database_answers_nobody(tmp_path: Path) -> None:
    """Issue 13: a step that missed its deadline while other writes succeed (a burst) leaves the
    breaker closed; with no write succeeding for a whole deadline (an outage) it opens."""
    journal = SurveyJournal(tmp_path, deadline=0.2)
    journal.db_failed()  # nothing ever succeeded
    assert journal.db_down()
    journal.db_ok()
    journal.db_answered()
    journal.db_failed()  # another caller's write succeeded just now
    assert not journal.db_down()
    time.sleep(0.25)
    journal.db_failed()
    assert journal.db_down()
