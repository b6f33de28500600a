"""Live calls: the agent hands the caller to the survey, or attaches the case (工单) first.

``POST /api/v1/calls/{linkedid}/handoff`` moves the caller's channel into the survey over AMI
(ivr/handoff.py: Setvar, then Redirect to hotline-handoff,api,1, which enters hotline-survey).
``PUT /api/v1/calls/{linkedid}/case`` stores the case number and department on the call (the
``calls`` row, upserted by linkedid) and, while the caller is on the line, on the caller's
channel, where the survey reads them. The linkedid is the call's id in Asterisk
(``CHANNEL(linkedid)``, also in every AMI event of the call), which the agent's desktop knows.

One AMI connection serves the whole app: opened on first use (so the API starts, and answers
its other routes, while Asterisk is down), reconnected by the client itself afterwards, closed
with the app. Asterisk unreachable → 503.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ami.client import AmiClient, AmiError
from hotline.clock import utcnow
from hotline.statuses import SURVEY_RESOLVED
from http_api.auth import requires
from http_api.bodies import read_json, read_path, respond
from http_api.errors import ApiError
from http_api.keys import app_ctx, principal
from http_api.openapi import ErrorBody, Response, operation
from ivr import handoff
from service.context import AppContext
from storage.audit import record_audit
from storage.calls import upsert_call
from storage.models import Call

log = logging.getLogger("hotline.http.calls")

#: printable text only: these values become channel variables and database columns
_TEXT = r"^[^\x00-\x1f\x7f]+$"


class CallPath(BaseModel):
    linkedid: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$",
                          description="the call's Asterisk linkedid, e.g. 1700000000.5")


class HandoffIn(BaseModel):
    """Optional: the case (工单) and department to store with the rating."""

    case_number: str | None = Field(default=None, min_length=1, max_length=64, pattern=_TEXT)
    department: str | None = Field(default=None, min_length=1, max_length=32, pattern=_TEXT,
                                   description="the responsible department's code")


class CaseIn(BaseModel):
    case_number: str = Field(min_length=1, max_length=64, pattern=_TEXT)
    department: str | None = Field(default=None, min_length=1, max_length=32, pattern=_TEXT,
                                   description="the responsible department's code")


class HandoffOut(BaseModel):
    linkedid: str
    status: Literal["handed_off"] = "handed_off"
    case_number: str | None = None
    department: str | None = None


class CaseOut(BaseModel):
    linkedid: str
    case_number: str
    department: str | None
    live: bool = Field(description="the caller was on the line and got the case on the channel")
    survey_status: str


_NOT_FOUND = Response("No live call with this linkedid, and none stored", ErrorBody)
_AMI_DOWN = Response("Asterisk (AMI) or the database is unavailable", ErrorBody)


# ----------------------------------------------------------------------------- AMI
class SharedAmi:
    """The app's one AMI client, connected on first use."""

    def __init__(self, ctx: AppContext) -> None:
        self._settings = ctx.settings
        self._client: AmiClient | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AmiClient:
        if self._client is not None:  # after the first login the client reconnects itself
            return self._client
        async with self._lock:
            if self._client is None:
                s = self._settings
                client = AmiClient(s.ami_host, s.ami_port, s.ami_username, s.ami_secret,
                                   timeout=s.ami_timeout)
                await client.connect()
                self._client = client
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


_AMI: web.AppKey[SharedAmi] = web.AppKey("hotline_ami", SharedAmi)


def _unavailable(exc: Exception) -> ApiError:
    log.warning("AMI unavailable", extra={"error": str(exc)})
    return ApiError(503, "asterisk_unavailable", "Asterisk does not answer (AMI); try again",
                    headers={"Retry-After": "5"})


# ----------------------------------------------------------------------------- storage
async def _stored_call(ctx: AppContext, linkedid: str) -> Call | None:
    async with ctx.db.sessions() as session:
        return await session.scalar(select(Call).where(Call.linkedid == linkedid))


async def _audit(session: AsyncSession, request: web.Request, action: str, linkedid: str,
                 details: dict[str, str | bool | None]) -> None:
    """An agent's hand-off or case attached is audited (DEVELOPERS.md: every state change a
    person makes), in the transaction of the change it records."""
    who = principal(request)
    await record_audit(session, actor=who.name, role=who.role, action=action,
                       subject_type="call", subject_id=linkedid, details=details)


async def _store_case(
    ctx: AppContext, linkedid: str, case_number: str | None, department: str | None, *,
    create: bool, audit: Callable[[AsyncSession], Awaitable[None]],
) -> Call | None:
    """Put the case and/or department on the call's row (created if ``create``); None if there
    is no row. A value not given leaves the stored one alone.

    Conditional in the statement itself (issue 8 defect 10): a survey saving its vote at the
    same moment takes the case with it when we are first, and when it is first we answer 409,
    so a case is never stored on a call whose rating will not carry it."""

    async def change(session: AsyncSession, call: Call) -> Call:
        values = {"case_number": case_number, "department_code": department}
        values = {name: value for name, value in values.items() if value}
        if inspect(call).pending:  # our own new row: nobody else can have rated it
            for name, value in values.items():
                setattr(call, name, value)
            await session.flush()
            await audit(session)
            return call
        stored = await session.execute(
            update(Call)
            .where(Call.id == call.id, Call.survey_status.not_in(SURVEY_RESOLVED))
            .values(**values, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if stored.rowcount != 1:  # type: ignore[attr-defined]
            raise _already_rated(call.linkedid)
        await session.refresh(call)
        await audit(session)
        return call

    return await upsert_call(ctx.db, linkedid, change, create=create)


# ----------------------------------------------------------------------------- handlers
@requires("agent")
@operation(
    summary="Hand the caller to the 好差评 survey",
    description=(
        "Moves the live caller of this call into the post-call survey (AMI Redirect). The "
        "body is optional; a case number and department given here are stored with the "
        "rating. 404: no such live call; 409: the caller already hung up, or is already in "
        "the survey."
    ),
    tags=["calls"],
    path=CallPath,
    request_body=HandoffIn,
    responses={
        200: HandoffOut,
        404: _NOT_FOUND,
        409: Response("The caller already left, or is already in the survey", ErrorBody),
        503: _AMI_DOWN,
    },
)
async def handoff_call(request: web.Request) -> web.Response:
    ctx = app_ctx(request)
    linkedid = read_path(request, CallPath).linkedid
    body = await read_json(request, HandoffIn) if (await request.read()).strip() else HandoffIn()
    try:
        ami = await request.app[_AMI].get()
        if body.case_number or body.department:  # a rated call's rating keeps its own
            await _check_not_rated(ctx, linkedid)
        await handoff.hand_off(ami, linkedid, case_number=body.case_number,
                               department=body.department)
    except handoff.NoLiveCall as exc:
        if await _stored_call(ctx, linkedid) is not None:
            raise ApiError(409, "caller_gone", "the caller has already hung up") from exc
        raise ApiError(404, "no_such_call", f"no live call {linkedid}") from exc
    except handoff.CallerGone as exc:
        raise ApiError(409, "caller_gone", "the caller has already hung up") from exc
    except handoff.AlreadyInSurvey as exc:
        raise ApiError(409, "already_in_survey", "the caller is already in the survey") from exc
    except AmiError as exc:
        raise _unavailable(exc) from exc
    details = {"case_number": body.case_number, "department": body.department}

    async def audit(session: AsyncSession) -> None:
        await _audit(session, request, "call.handoff", linkedid, details)

    if body.case_number or body.department:  # stored now, whatever becomes of the survey
        await _store_case(ctx, linkedid, body.case_number, body.department, create=True,
                          audit=audit)
    else:
        async with ctx.db.transaction() as session:
            await audit(session)
    log.info("caller handed to the survey", extra={"linkedid": linkedid,
                                                   "by": principal(request).name})
    return respond(HandoffOut(linkedid=linkedid, case_number=body.case_number,
                              department=body.department))


async def _check_not_rated(ctx: AppContext, linkedid: str) -> None:
    call = await _stored_call(ctx, linkedid)
    if call is not None and call.survey_status in SURVEY_RESOLVED:
        raise _already_rated(linkedid, call.survey_status)


def _already_rated(linkedid: str, status: str = "rated") -> ApiError:
    return ApiError(409, "already_rated",
                    f"the call is already {status}; its rating keeps its case")


@requires("agent")
@operation(
    summary="Attach a case (工单) to a call",
    description=(
        "Stores the case number (and department) on the call and, while the caller is on the "
        "line, on the caller's channel, so the survey's rating carries them. 404: no live "
        "call and none stored; 409: the call is already rated."
    ),
    tags=["calls"],
    path=CallPath,
    request_body=CaseIn,
    responses={
        200: CaseOut,
        404: _NOT_FOUND,
        409: Response("The call is already rated", ErrorBody),
    },
)
async def attach_case(request: web.Request) -> web.Response:
    ctx = app_ctx(request)
    linkedid = read_path(request, CallPath).linkedid
    body = await read_json(request, CaseIn)
    await _check_not_rated(ctx, linkedid)
    live = True
    try:
        ami = await request.app[_AMI].get()
        await handoff.attach_case(ami, linkedid, body.case_number, body.department)
    except (handoff.NoLiveCall, handoff.CallerGone):
        live = False  # a finished call still gets its case on the stored row
    except AmiError:
        # The survey reads the case from the stored call as well as from the channel, so the
        # case is kept even while Asterisk cannot be asked (nothing the agent typed is lost).
        log.warning("AMI unavailable; case stored on the call only", extra={"linkedid": linkedid})
        live = True

    async def audit(session: AsyncSession) -> None:
        await _audit(session, request, "call.attach_case", linkedid, {
            "case_number": body.case_number, "department": body.department, "live": live})

    call = await _store_case(ctx, linkedid, body.case_number, body.department, create=live,
                             audit=audit)
    if call is None:
        raise ApiError(404, "no_such_call", f"no live or stored call {linkedid}")
    return respond(CaseOut(linkedid=linkedid, case_number=body.case_number,
                           department=call.department_code, live=live,
                           survey_status=call.survey_status))


async def _close_ami(app: web.Application) -> None:
    await app[_AMI].close()


def setup(app: web.Application, ctx: AppContext) -> None:
    app[_AMI] = SharedAmi(ctx)
    app.on_cleanup.append(_close_ami)
    app.router.add_post("/api/v1/calls/{linkedid}/handoff", handoff_call)
    app.router.add_put("/api/v1/calls/{linkedid}/case", attach_case)
