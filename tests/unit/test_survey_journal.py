"""The local journal (storage.journal) and the survey's fold of it (ivr.survey_journal.fold):
durable appends, a torn last line after a crash, appends racing a seal, net effect per call."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ivr.survey_journal import VERSION, fold
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
