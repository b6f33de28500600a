"""Scheduled 通报 documents: produced by themselves, kept for download, announced by a webhook
event (``report_published``, through the webhook outbox of bad_ratings).

- ``month``: the month before, from the 1st at ``report_schedule_time`` (seed 004 月调度);
- ``half``: on each of ``report_half_year_dates`` (seed 004: 6月30日, 12月30日) at that time,
  the half-year so far, up to the day before (the last complete day).

The worker asks at every poll which documents are due and missing, so a service that was down
at the due time makes them when it comes back; a document already on disk is never remade.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sqlalchemy import select

from hotline.clock import utcnow
from hotline.settings import Settings
from reports import service
from reports.build import PARTS, Report, build_report
from reports.periods import Period, containing
from service.context import AppContext
from storage.db import Database
from storage.models import WebhookEvent

log = logging.getLogger("hotline.reports")

EVENT = "report_published"
SCHEDULED_FORMATS = ("pdf", "xlsx")


def due_periods(settings: Settings, now: dt.datetime) -> list[Period]:
    """The periods whose scheduled documents should exist at ``now``: pure."""
    local = now.astimezone(settings.tz)
    hour, minute = (int(x) for x in settings.report_schedule_time.split(":"))
    started = (local.hour, local.minute) >= (hour, minute)
    today = local.date()
    found: list[Period] = []
    if "month" in settings.report_schedule:
        # before the time on the 1st, the month before last is the latest one due
        reference = today if started else today - dt.timedelta(days=1)
        found.append(containing("month", reference.replace(day=1) - dt.timedelta(days=1)))
    if "half" in settings.report_schedule:
        dates = []
        for year in (today.year - 1, today.year):
            for md in settings.report_half_year_dates:
                month, day = (int(x) for x in md.split("-"))
                d = dt.date(year, month, day)
                if d < today or (d == today and started):
                    dates.append(d)
        if dates:
            latest = max(dates)
            half = containing("half", latest)
            if latest > half.start:
                found.append(Period("half", half.start, latest - dt.timedelta(days=1)))
    return found


def listing(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".pdf", ".xlsx"))


def find(directory: Path, name: str) -> Path | None:
    path = directory / name
    if path.parent != directory or not path.is_file():
        return None
    return path


async def produce(ctx: AppContext, period: Period, now: dt.datetime | None = None) -> list[Path]:
    """Make the period's documents unless they exist; announce the new ones. Returns the files
    written (none when they already existed)."""
    directory = ctx.settings.effective_report_dir
    directory.mkdir(parents=True, exist_ok=True)
    missing = [fmt for fmt in SCHEDULED_FORMATS
               if not (directory / document_name(period, fmt)).exists()]
    if not missing:
        return []
    renderer = _renderer()
    try:
        names = await asyncio.get_running_loop().run_in_executor(
            renderer, make_documents, ctx.settings, period, now, missing)
    finally:
        await asyncio.to_thread(renderer.shutdown)  # joining the child is not the loop's
    written = [directory / name for name in names]
    await announce(ctx, period, names)
    log.info("report documents produced", extra={"period": period.code, "files": names})
    return written


def document_name(period: Period, fmt: str) -> str:
    return f"tongbao-{period.code}.{fmt}"


def make_documents(settings: Settings, period: Period, now: dt.datetime | None,
                   formats: list[str]) -> list[str]:
    """In the child process: read the period's figures and write its documents in ``formats``;
    returns their names."""
    report = asyncio.run(_read_report(settings, period, now))
    directory = settings.effective_report_dir
    names = []
    for fmt in formats:
        data = service.render(report, fmt, "figures", list(settings.report_agent_score_parts))
        target = directory / document_name(period, fmt)
        partial = target.with_suffix(target.suffix + ".part")
        partial.write_bytes(data)
        partial.replace(target)  # a reader never sees half a file
        names.append(target.name)
    return names


async def _read_report(settings: Settings, period: Period, now: dt.datetime | None) -> Report:
    db = Database(settings.effective_database_url)
    try:
        async with db.sessions() as session:
            return await build_report(session, settings, period, "department", parts=PARTS,
                                      now=now)
    finally:
        await db.close()


def _renderer() -> ProcessPoolExecutor:
    """A child process that reads the figures and renders the documents. The serving process
    answers calls: a month's report is many queries and much Python over the period's ratings
    (issue 13: seconds of the FastAGI event loop, under a burst a delayed menu), and openpyxl,
    reportlab and the CJK font are ~60 MB that its heap would keep for the process's life.
    ``spawn``: a fork of a process with an event loop, threads and open sockets is not safe."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


async def announce(ctx: AppContext, period: Period, files: list[str]) -> None:
    key = f"{EVENT}:{period.code}:{','.join(sorted(files))}"
    async with ctx.db.transaction() as session:
        if await session.scalar(select(WebhookEvent.id).where(WebhookEvent.dedupe_key == key)):
            return
        session.add(WebhookEvent(
            event=EVENT, dedupe_key=key[:128], subject_type="report", subject_id=period.code,
            payload={"event": EVENT, "period": period.code, "label": period.label,
                     "start": period.start.isoformat(), "end": period.end.isoformat(),
                     "files": files},
        ))


async def run(ctx: AppContext, stopping: asyncio.Event) -> None:
    """The worker of ``hotline serve`` (setting ``serve_reports``)."""
    while not stopping.is_set():
        for period in due_periods(ctx.settings, utcnow()):
            try:
                await produce(ctx, period)
            except Exception:  # a failed document is retried at the next poll
                log.exception("report document failed", extra={"period": period.code})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), ctx.settings.report_poll_interval)
