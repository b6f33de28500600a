"""Rule 1 without the service (issue 8): Asterisk's own record of every 12345 call, read once the
service is back, so a call the FastAGI service never saw (it was down, unreachable, or both
instances were) is still recorded as not rated — then 邀评, then the default rating — never lost.

The dialplan emits one CEL user event ``hotline_call`` per call as it ends
(ivr/dialplans/survey.conf, ``[hotline-call-ledger]``); Asterisk's cel_custom writes it as one
JSON object a line (asterisk_conf/cel.conf, cel_custom.conf) to the file named by the setting
``asterisk_call_log``. This module:

* parses a line (pure: :func:`parse_line`), the dialplan's values being URI-encoded
  ``key=value`` pairs in the event's ``extra``;
* records each call (:func:`record`): a call the service never saw gets its row, ``not_rated``
  (``abandoned`` when no agent took it, which is never defaulted); a call the service knew only
  as ``pending`` (the API touched it, the survey never ran) becomes ``not_rated``; anything
  else is left as it is (a rating is never undone; a survey in progress is the stale job's);
* follows the file from where it stopped (:class:`LedgerReader`; the position is kept beside the
  data, and a rotated or truncated file is read again from its start). Reading a line twice is
  harmless: the row is keyed by linkedid.

Asterisk must write the file where the service can read it (the sandbox's log folder, or a
shared folder in production; README "what happens when…").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from sqlalchemy.ext.asyncio import AsyncSession

from hotline.channel_vars import CALL_LEDGER_EVENT
from hotline.clock import utcnow
from hotline.statuses import SurveyStatus
from ivr.survey_store import CallInfo
from service.context import AppContext
from storage.calls import upsert_call
from storage.models import Call

log = logging.getLogger("hotline.ivr.ledger")

#: the CEL user event the dialplan emits ([hotline-call-ledger])
EVENT = CALL_LEDGER_EVENT
#: the position file, in the data directory
STATE_FILE = "call-ledger.position"
#: at most this much of the file per pass (the rest is read on the next pass)
CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class LedgerEntry:
    """One call as Asterisk logged it: what its channel knew (the survey's own
    :class:`~ivr.survey_store.CallInfo`) and when it ended."""

    info: CallInfo
    ended_at: dt.datetime | None = None

    @property
    def started_at(self) -> dt.datetime | None:
        """A linkedid is the first channel's uniqueid, ``<unix time>.<sequence>``: the call's
        start (None for a site whose uniqueids carry a system name)."""
        head = self.info.linkedid.split(".", 1)[0]
        if not head.isdigit():
            return None
        try:
            return dt.datetime.fromtimestamp(int(head), dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None


def _field(record: dict[str, object], *names: str) -> str | None:
    lowered = {k.lower(): v for k, v in record.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value not in (None, ""):
            return str(value)
    return None


def _extra(raw: str | None) -> dict[str, str]:
    """CELGenUserEvent's extra arrives as ``{"extra": "<text>"}`` (or the bare text)."""
    text = raw or ""
    try:
        blob = json.loads(text)
        if isinstance(blob, dict):
            text = str(blob.get("extra", ""))
    except ValueError:
        pass
    return dict(parse_qsl(text, keep_blank_values=True))


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_line(line: str) -> LedgerEntry | None:
    """One line of the file; None for anything that is not a complete ``hotline_call`` event
    (another event, a torn or garbled line). Never raises."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    if EVENT not in (_field(record, "eventtype"), _field(record, "usereventname", "userdeftype")):
        return None
    linkedid = _field(record, "linkedid")
    if not linkedid or len(linkedid) > 64:
        return None
    values = _extra(_field(record, "extra", "eventextra"))

    def value(name: str, length: int) -> str | None:
        text = values.get(name) or None
        return text[:length] if text else None

    info = CallInfo(
        linkedid=linkedid,
        uniqueid=(_field(record, "uniqueid") or "")[:64] or None,
        channel=(_field(record, "channame") or "")[:128] or None,
        caller=_field(record, "num", "cidnum"),
        agent_id=value("agent", 32),
        queue=value("queue", 64),
        case_number=value("case", 64),
        department_code=value("dept", 32),
        abandoned=values.get("abandoned") == "1",
    )
    return LedgerEntry(info, ended_at=_time(_field(record, "eventtime")))


async def record(ctx: AppContext, entry: LedgerEntry) -> str:
    """Record one call from the ledger; returns what happened: ``added`` (the service never saw
    it), ``not_rated`` (it was only pending), or ``known`` (left as it was)."""
    now = utcnow()

    async def change(s: AsyncSession, call: Call) -> str:
        new = call.id is None
        if not new and call.survey_status != SurveyStatus.PENDING:
            return "known"
        _fill(ctx, call, entry.info)
        call.survey_status = (SurveyStatus.ABANDONED if entry.info.abandoned
                              else SurveyStatus.NOT_RATED)
        call.ended_at = call.ended_at or entry.ended_at or now
        if new:
            call.started_at = entry.started_at or call.ended_at
        return "added" if new else "not_rated"

    result = await upsert_call(ctx.db, entry.info.linkedid, change)
    return result or "known"


def _fill(ctx: AppContext, call: Call, info: CallInfo) -> None:
    """What the ledger knows, never erasing what the service already stored."""
    if info.uniqueid and not call.uniqueid:
        call.uniqueid = info.uniqueid
    if info.channel and not call.channel:
        call.channel = info.channel
    if info.caller and not call.caller_hash:
        protected = ctx.vault.protect(info.caller)
        call.caller_enc, call.caller_hash, call.caller_masked = (
            protected.encrypted, protected.digest, protected.masked)
    for attr in ("agent_id", "queue", "case_number", "department_code"):
        value = getattr(info, attr)
        if value and not getattr(call, attr):
            setattr(call, attr, value)


# ----------------------------------------------------------------------------- the file
@dataclass
class Position:
    inode: int = 0
    offset: int = 0


class LedgerReader:
    """Follows the ledger file from a saved position."""

    def __init__(self, path: Path, state: Path) -> None:
        self.path = path
        self.state = state

    def load(self) -> Position:
        try:
            data = json.loads(self.state.read_text())
            return Position(int(data["inode"]), int(data["offset"]))
        except (OSError, ValueError, KeyError, TypeError):
            return Position()

    def save(self, position: Position) -> None:
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"inode": position.inode, "offset": position.offset}))
        os.replace(tmp, self.state)

    def read(self) -> tuple[list[str], Position]:
        """The complete lines after the saved position (a line still being written is left for
        the next pass), and the position after them."""
        position = self.load()
        try:
            with self.path.open("rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != position.inode or st.st_size < position.offset:
                    position = Position(st.st_ino, 0)  # a new or truncated file
                f.seek(position.offset)
                data = f.read(CHUNK)
        except FileNotFoundError:
            return [], position
        end = data.rfind(b"\n") + 1
        lines = data[:end].decode("utf-8", errors="replace").splitlines()
        return lines, Position(position.inode, position.offset + end)


@dataclass
class SyncReport:
    lines: int = 0
    added: int = 0
    not_rated: int = 0
    known: int = 0
    unreadable: int = 0


async def sync(ctx: AppContext, reader: LedgerReader | None = None) -> SyncReport:
    """Read what is new in the ledger and record every call in it; the position moves on only
    after the calls are in the database (a failure reads the same lines again)."""
    reader = reader or reader_for(ctx)
    report = SyncReport()
    while True:
        lines, position = await asyncio.to_thread(reader.read)
        if not lines:
            return report
        for line in lines:
            report.lines += 1
            entry = parse_line(line)
            if entry is None:
                report.unreadable += bool(line.strip())
                continue
            outcome = await record(ctx, entry)
            setattr(report, outcome, getattr(report, outcome) + 1)
        await asyncio.to_thread(reader.save, position)
        if report.added or report.not_rated:
            log.info("calls recorded from Asterisk's call ledger", extra={
                "added": report.added, "not_rated": report.not_rated})


def reader_for(ctx: AppContext) -> LedgerReader:
    return LedgerReader(ctx.settings.effective_asterisk_call_log,
                        ctx.settings.data_dir / STATE_FILE)


async def run(ctx: AppContext, stopping: asyncio.Event) -> None:
    """The ``serve_call_ledger`` worker: a pass at start (the calls of the outage), then every
    ``call_ledger_interval_seconds``. A failing pass is logged and tried again."""
    reader = reader_for(ctx)
    while not stopping.is_set():
        try:
            await sync(ctx, reader)
        except Exception:
            log.warning("call ledger pass failed; trying again", exc_info=True)
        try:
            await asyncio.wait_for(stopping.wait(), ctx.settings.call_ledger_interval_seconds)
        except TimeoutError:
            pass
