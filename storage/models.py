"""SQLAlchemy models. Times are UTC (``UtcDateTime``); phone numbers are never stored in clear
(``*_enc`` encrypted, ``*_hash`` keyed digest for look-ups, ``*_masked`` for display)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hotline.clock import as_utc, utcnow

# the status values live in one place, shared with the flows; re-exported here for storage users
from hotline.statuses import (
    AttemptStatus,
    CampaignStatus,
    TaskStatus,
)
from hotline.statuses import (
    CaseStatus as CaseStatus,
)
from hotline.statuses import (
    OutboxStatus as OutboxStatus,
)
from hotline.statuses import (
    RatingKind as RatingKind,
)
from hotline.statuses import (
    RatingSource as RatingSource,
)
from hotline.statuses import (
    SurveyStatus as SurveyStatus,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in and out, on SQLite (naive storage) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TimestampMixin:
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Call(TimestampMixin, Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(64), unique=True)
    uniqueid: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(128))
    caller_enc: Mapped[str | None] = mapped_column(Text)
    caller_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    caller_masked: Mapped[str | None] = mapped_column(String(32))
    agent_id: Mapped[str | None] = mapped_column(String(32), index=True)
    queue: Mapped[str | None] = mapped_column(String(64))
    case_number: Mapped[str | None] = mapped_column(String(64), index=True)
    department_code: Mapped[str | None] = mapped_column(String(32), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    survey_started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    survey_status: Mapped[str] = mapped_column(String(16), default=SurveyStatus.PENDING)

    ratings: Mapped[list[Rating]] = relationship(back_populates="call")

    __table_args__ = (Index("ix_calls_survey_status_started", "survey_status", "started_at"),)


class Rating(TimestampMixin, Base):
    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_no: Mapped[str] = mapped_column(String(64))
    assess_number: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    level: Mapped[int] = mapped_column(Integer)  # canonical: 1 非常满意 … 5 非常不满意
    reason_codes: Mapped[str | None] = mapped_column(String(128))
    comment_text: Mapped[str | None] = mapped_column(Text)
    comment_recording: Mapped[str | None] = mapped_column(String(255))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(32), index=True)
    department_code: Mapped[str | None] = mapped_column(String(32), index=True)
    rated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    # 复核 (DOMAIN.md rule 6): invalid ratings stay for audit, out of the statistics
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    invalid_reason: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    call: Mapped[Call | None] = relationship(back_populates="ratings")
    case: Mapped[Case | None] = relationship(back_populates="ratings")

    __table_args__ = (UniqueConstraint("project_no", "assess_number", name="uq_ratings_key"),)

    @property
    def is_default(self) -> bool:
        return self.source == RatingSource.DEFAULT


class Case(TimestampMixin, Base):
    """工单."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_number: Mapped[str] = mapped_column(String(64), unique=True)
    department_code: Mapped[str | None] = mapped_column(String(32), index=True)
    department_name: Mapped[str | None] = mapped_column(String(128))
    citizen_enc: Mapped[str | None] = mapped_column(Text)
    citizen_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    citizen_masked: Mapped[str | None] = mapped_column(String(32))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.OPEN)
    has_bad_rating: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False)
    rectification_result: Mapped[str | None] = mapped_column(Text)
    rectification_due: Mapped[dt.date | None] = mapped_column(Date)
    callback_due: Mapped[dt.date | None] = mapped_column(Date)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    ratings: Mapped[list[Rating]] = relationship(back_populates="case")


class Campaign(TimestampMixin, Base):
    """A 回访 / 邀评 campaign; its dialling rules (windows, caps, retries) live in ``rules``."""

    __tablename__ = "callback_campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.DRAFT.value)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str | None] = mapped_column(String(64))

    # one standing 差评回访 campaign (callback_scheduler: created_by "system:case_followup")
    __table_args__ = (
        Index("uq_callback_campaigns_system", "created_by", unique=True,
              postgresql_where=text("created_by LIKE 'system:%'"),
              sqlite_where=text("created_by LIKE 'system:%'")),
    )


class CallbackTask(TimestampMixin, Base):
    __tablename__ = "callback_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("callback_campaigns.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    number_enc: Mapped[str] = mapped_column(Text)
    number_hash: Mapped[str] = mapped_column(String(64), index=True)
    number_masked: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.PENDING.value)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts_made: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String(32))
    result_rating_id: Mapped[int | None] = mapped_column(ForeignKey("ratings.id"))
    manual_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_callback_tasks_due", "status", "next_attempt_at"),
        # a retried case-close or a re-run import can never create a second task (migration 0003)
        Index("uq_callback_tasks_campaign_case", "campaign_id", "case_id", unique=True),
        Index("uq_callback_tasks_campaign_call", "campaign_id", "call_id", unique=True),
        Index("ix_callback_tasks_case_id", "case_id"),
        # the scheduler's claim: a campaign's due tasks already in claiming order (issue 13,
        # migration 0009; bench/callback_claim.py)
        # (PostgreSQL only: alembic cannot compare an expression index on SQLite, and the
        # embedded SQLite default never holds a million tasks)
        Index("ix_callback_tasks_claim", "campaign_id", text("priority DESC"), "next_attempt_at",
              "id", postgresql_where=text("status = 'pending'")).ddl_if(dialect="postgresql"),
    )


class CallbackAttempt(TimestampMixin, Base):
    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("callback_tasks.id"))
    attempt_no: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=AttemptStatus.DIALING.value)
    scheduler_id: Mapped[str | None] = mapped_column(String(64))
    action_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    channel_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    reason: Mapped[int | None] = mapped_column(Integer)
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # how it ended (busy, no_answer, rated ...; callback_scheduler.rules.Outcome) and the trunk
    # it used (the per-trunk cap is counted from the attempts under way)
    outcome: Mapped[str | None] = mapped_column(String(32))
    trunk: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("task_id", "attempt_no", name="uq_callback_attempts_no"),
        Index("ix_callback_attempts_status", "status"),
    )


class DoNotCall(Base):
    __tablename__ = "do_not_call"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number_hash: Mapped[str] = mapped_column(String(64), unique=True)
    number_masked: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class OutboxEntry(Base):
    """A rating event to deliver upstream; written in the rating's own transaction. Its id is
    also the pull feed's cursor, so an update (an invalidation) is a new entry."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rating_id: Mapped[int] = mapped_column(ForeignKey("ratings.id"), index=True)
    project_no: Mapped[str] = mapped_column(String(64))
    assess_number: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(16), default="rating")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # a rating still being completed is held back until ready_at (storage.ratings)
    ready_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # the pull feed's cursor, assigned in commit order by storage.outbox.sequence_feed
    feed_seq: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_project", "project_no", "id"),
        Index("ix_outbox_feed_seq", "feed_seq", unique=True),
        Index("ix_outbox_open", "id", postgresql_where=text("status IN ('pending', 'inflight')"),
              sqlite_where=text("status IN ('pending', 'inflight')")),
        Index("ix_outbox_unnumbered", "id", postgresql_where=text("feed_seq IS NULL"),
              sqlite_where=text("feed_seq IS NULL")),
    )


class OutboxFeedState(Base):
    """The single row holding the last feed number handed out (its lock serialises numbering)."""

    __tablename__ = "outbox_feed_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


# --- 差评 closed loop (issue 10): items, their timeline, audit log, token scopes, webhooks ---


class BadRatingItem(TimestampMixin, Base):
    """差评单: one per case (or per call without a case), opened by its first valid 差评; a later
    差评 on the same case joins it while open and starts a new round once it is closed. The
    state machine is ``bad_ratings.machine``; ``department_code`` None is the unassigned queue."""

    __tablename__ = "bad_rating_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # "case:<case number>" or "call:<projectNo>": what a second 差评 joins on
    subject_key: Mapped[str] = mapped_column(String(80), unique=True)
    project_no: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    case_number: Mapped[str | None] = mapped_column(String(64))
    department_code: Mapped[str | None] = mapped_column(String(32), index=True)
    agent_id: Mapped[str | None] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(24), index=True)
    round: Mapped[int] = mapped_column(Integer, default=1)
    first_rating_id: Mapped[int] = mapped_column(ForeignKey("ratings.id"))
    latest_rating_id: Mapped[int] = mapped_column(ForeignKey("ratings.id"))
    opened_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    round_started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    verify_due: Mapped[dt.date | None] = mapped_column(Date)
    rectify_due: Mapped[dt.date | None] = mapped_column(Date)
    verification: Mapped[str | None] = mapped_column(String(16))  # genuine / mistaken / malicious
    verification_note: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    rectification_reply: Mapped[str | None] = mapped_column(Text)
    citizen_result: Mapped[str | None] = mapped_column(Text)  # short result read in the 回访
    rectified_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    extension_status: Mapped[str | None] = mapped_column(String(16))
    extension_due: Mapped[dt.date | None] = mapped_column(Date)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    review_origin: Mapped[str | None] = mapped_column(String(16))  # verification / appeal
    review_return_state: Mapped[str | None] = mapped_column(String(24))
    supervised_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    supervised_by: Mapped[str | None] = mapped_column(String(128))
    supervise_count: Mapped[int] = mapped_column(Integer, default=0)
    followup_solved: Mapped[bool | None] = mapped_column(Boolean)
    followup_level: Mapped[int | None] = mapped_column(Integer)
    followup_rating_id: Mapped[int | None] = mapped_column(ForeignKey("ratings.id"))
    followup_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class BadRatingEvent(Base):
    """The item's timeline: every transition and decision, appended, never updated."""

    __tablename__ = "bad_rating_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("bad_rating_items.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str | None] = mapped_column(String(24))
    # indexed: the safety sweep asks, per recent 差评, whether any timeline row names it
    rating_id: Mapped[int | None] = mapped_column(ForeignKey("ratings.id"), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AuditEntry(Base):
    """Append-only audit log (storage.audit): who did what to which subject, when and why."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(48), index=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_audit_log_subject", "subject_type", "subject_id"),)


class TokenScopeKind:
    DEPARTMENT = "department"  # a department token sees and acts on these departments only
    AGENT = "agent"  # an agent token is this 工号 (own ratings, 申诉)


class ApiTokenScope(Base):
    """What a token is bound to: one or more department codes, or an agent's 工号."""

    __tablename__ = "api_token_scopes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("token_id", "kind", "value", name="uq_api_token_scopes"),)


class WebhookEvent(Base):
    """An event for the 工单 system / messaging bot (差评 opened, 即将超期, 超期, 督办, 回访
    result), delivered signed and retried like the rating outbox. ``dedupe_key`` makes a
    computed event (即将超期 of one deadline) go out once however often it is noticed."""

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_webhook_outbox_status_next", "status", "next_attempt_at"),)


# --- 通报 statistics (reports/, issue 11): covering indexes for the aggregation engine ---
# Each report query is a range on the time column plus the grouping and counted columns, so
# on PostgreSQL it reads these indexes alone (index-only scans) even over a year of ratings.
Index(
    "ix_ratings_report", Rating.rated_at, Rating.department_code, Rating.agent_id,
    Rating.source, Rating.kind, Rating.level, Rating.valid,
)
Index(
    "ix_calls_report", Call.started_at, Call.department_code, Call.agent_id, Call.queue,
    Call.survey_status, Call.survey_started_at,
)
Index("ix_bad_rating_items_report", BadRatingItem.opened_at, BadRatingItem.department_code)


# --- console users and sessions (issue 12): people log in with a password, systems keep tokens ---


class ConsoleUser(Base):
    """A person who logs in to the web console. The role is one of http_api.tokens.ROLES;
    ``departments`` binds a department user to its department codes, ``agent_id`` an agent to
    its 工号 (the same scope a token carries). Only an argon2 hash of the password is kept."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    agent_id: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class ConsoleSession(Base):
    """A logged-in browser. The cookie holds a random id of which only the SHA-256 is stored;
    ``csrf_token`` is bound to the session and must come back in a header on every change."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
