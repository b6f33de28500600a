"""The one typed settings object: a TOML file overlaid by ``HOTLINE_*`` environment variables.

Precedence (highest first): environment, the TOML file, the defaults below. The TOML file is
``$HOTLINE_CONFIG`` if set, else ``hotline.toml`` in the working directory if it exists.
Every field is documented in the README's settings table; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "HOTLINE_"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the setting."""


class ReasonOption(BaseModel):
    """One entry of the 差评 reason menu: the key pressed and the ``evalDetail`` code it becomes."""

    key: str = Field(pattern=r"^[1-9]$")
    code: str = Field(min_length=1, max_length=32)
    label: str = Field(min_length=1)


DEFAULT_REASONS = [
    ReasonOption(key="1", code="1", label="服务态度"),
    ReasonOption(key="2", code="2", label="办理效率"),
    ReasonOption(key="3", code="3", label="办理结果"),
    ReasonOption(key="4", code="4", label="政策规定"),
    ReasonOption(key="5", code="9", label="其他"),
]


class CallbackTrunk(BaseModel):
    """An outbound trunk for 回访 / 邀评 calls (callback_scheduler): how Asterisk dials a number
    through it, and how many simultaneous calls it may carry (across all scheduler processes)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # ``{number}`` is replaced by the citizen's number, e.g. "PJSIP/{number}@carrier"
    dial_string: str = Field(pattern=r"\{number\}")
    max_calls: int = Field(default=10, ge=1)


DEFAULT_CALLBACK_TRUNKS = [
    CallbackTrunk(name="carrier", dial_string="PJSIP/{number}@carrier", max_calls=10)
]

#: Minutes to wait before the next attempt, per outcome of the previous one (DOMAIN.md rule 5).
DEFAULT_CALLBACK_RETRY_MINUTES = {
    "busy": 30,
    "no_answer": 60,
    "congestion": 15,
    "failed": 60,
    "answered_no_rating": 120,
    "unknown": 60,
}

# "HH:MM-HH:MM", the end may be 24:00 (the end of the day)
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    # --- where things live
    data_dir: Path = Path("data")
    database_url: str = ""  # empty: SQLite file hotline.db in data_dir
    timezone: str = "Asia/Shanghai"

    # --- logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # auto: readable text lines when stderr is a terminal, JSON otherwise (log collectors)
    log_format: Literal["auto", "json", "text"] = "auto"

    # --- the event loop of `hotline serve` and `hotline forwarder run` (hotline.event_loop)
    event_loop: Literal["auto", "asyncio", "uvloop"] = "asyncio"

    # --- which workers `hotline serve` runs in its process
    serve_fastagi: bool = True
    serve_http: bool = True
    serve_forwarder: bool = True
    serve_scheduler: bool = True
    serve_bad_ratings: bool = True  # 差评 deadline watch (即将超期/超期) and webhook sender
    serve_default_ratings: bool = True
    serve_reports: bool = True
    # rule 1 without the FastAGI service: calls Asterisk logged that the service never saw
    serve_call_ledger: bool = True

    # --- FastAGI server
    fastagi_host: str = "127.0.0.1"
    fastagi_port: int = Field(default=4573, ge=1, le=65535)
    fastagi_max_calls: int = Field(default=500, ge=1)
    fastagi_read_timeout: float = Field(default=120.0, gt=0)
    fastagi_shutdown_grace: float = Field(default=30.0, ge=0)
    fastagi_check_prompts: bool = True  # refuse to start while a prompt file is missing
    # who may speak FastAGI to us: addresses or networks (issue 8 defect 8); the rest are
    # refused at connect, since anyone who can talk AGI can store ratings
    fastagi_allowed_peers: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    # a connection must send its whole AGI environment within this many seconds
    fastagi_environment_timeout: float = Field(default=5.0, gt=0)
    # the sandbox dialplan's second FastAGI address (agi://host:port) when the first fails
    fastagi_fallback: str = ""

    # --- HTTP API
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)

    # --- web console (console/): sessions, lock-out, the built front-end
    console_session_hours: float = Field(default=12.0, gt=0)
    console_max_failed_logins: int = Field(default=5, ge=1)
    console_lockout_minutes: float = Field(default=15.0, gt=0)
    # True behind a TLS-terminating proxy; a request that arrives over TLS is always Secure
    console_cookie_secure: bool = False
    console_dist_dir: Path = PROJECT_ROOT / "console" / "dist"

    # --- Asterisk Manager Interface
    ami_host: str = "127.0.0.1"
    ami_port: int = Field(default=5038, ge=1, le=65535)
    ami_username: str = "hotline"
    ami_secret: str = "hotline-sandbox-secret"
    ami_timeout: float = Field(default=10.0, gt=0)

    # --- Asterisk sandbox (tests and the embedded default)
    asterisk_root: Path = Path.home() / ".cache" / "hotline" / "asterisk-root"
    asterisk_conf_dir: Path = PROJECT_ROOT / "asterisk_conf"
    asterisk_run_dir: Path | None = None  # None: data_dir/asterisk
    asterisk_sip_port: int = Field(default=5060, ge=1, le=65535)  # UDP, on 127.0.0.1
    asterisk_rtp_start: int = Field(default=10000, ge=1024, le=65534)
    asterisk_rtp_end: int = Field(default=10999, ge=1025, le=65535)
    asterisk_start_timeout: float = Field(default=60.0, gt=0)  # seconds until fully booted
    # Asterisk's own log of every 12345 call (cel_custom, asterisk_conf/cel_custom.conf), read
    # by the call ledger; None: the sandbox's <asterisk run dir>/log/cel-custom/<file>
    asterisk_call_log: Path | None = None
    call_ledger_interval_seconds: float = Field(default=30.0, gt=0)

    # --- the five levels and the survey
    keypad_map: dict[str, int] = Field(
        default_factory=lambda: {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5}
    )
    survey_max_tries: int = Field(default=3, ge=1, le=9)
    survey_digit_timeout_ms: int = Field(default=6000, ge=1000)
    survey_comment_max_seconds: int = Field(default=60, ge=0)
    survey_reasons: list[ReasonOption] = Field(default_factory=lambda: list(DEFAULT_REASONS))
    survey_comment_silence_seconds: int = Field(default=5, ge=0)  # 0: only # or max length end
    survey_stale_after_seconds: float = Field(default=3600.0, gt=0)
    survey_save_deadline_seconds: float = Field(default=2.0, gt=0, le=30)
    bad_rating_fallback_reason: str = "9"

    # --- prompts (ivr.prompts); Asterisk plays them as hotline/<id>, so its
    # <astdatadir>/sounds/hotline must be this directory. Comments are recorded under recordings/.
    prompts_dir: Path | None = None  # None: data_dir/sounds/hotline
    prompts_voice: str = "cmn-latn-pinyin"  # espeak-ng Mandarin voice

    # --- policy windows (DOMAIN.md rules 2 and 4)
    default_rating_window: int = Field(default=7, ge=1)
    default_rating_window_unit: Literal["minutes", "natural_days", "working_days"] = "natural_days"
    default_rating_interval_seconds: float = Field(default=60.0, gt=0)
    rectification_days: int = Field(default=15, ge=1)
    rectification_days_unit: Literal["natural_days", "working_days"] = "working_days"
    callback_deadline_working_days: int = Field(default=5, ge=1)
    workday_overrides_file: Path | None = None

    # --- the 差评 closed loop (bad_ratings; DOMAIN.md "The 差评 loop"). Deadlines use
    # rectification_days_unit too: the seeds' working days, or seed 002's natural days.
    bad_rating_verify_days: int = Field(default=2, ge=1)  # 核实 due (seed 001 "立即核实")
    bad_rating_due_soon_days: int = Field(default=2, ge=0)  # 即将超期: this close to a due date
    # 申诉: an agent may appeal within this many working days of the 差评 (seed 002)
    bad_rating_appeal_days: int = Field(default=5, ge=1)
    bad_rating_watch_interval_seconds: float = Field(default=300.0, gt=0)
    # the safety sweep looks this far back for a 差评 without an item: an older one is past its
    # 核实 and 整改 deadlines anyway and needs a person, not an item opened months late
    bad_rating_sweep_lookback_days: int = Field(default=60, ge=1)
    # webhook for the 工单 system / a messaging bot: 差评 opened, 即将超期, 超期, 督办, 回访
    # result; empty url: events are kept in webhook_outbox and not sent
    webhook_url: str = ""
    webhook_secret: str = ""  # HMAC-SHA256 key of the X-Hotline-Signature header
    webhook_request_timeout: float = Field(default=10.0, gt=0)

    # --- privacy (DOMAIN.md rule 8)
    phone_key_file: Path | None = None  # None: data_dir/phone.key, created on first start

    # --- 回访 / 邀评 callbacks (callback_scheduler; DOMAIN.md rules 3, 5, 8). The first group
    # are the defaults a new campaign starts from; each campaign may override them.
    # daily call windows, Beijing time (setting ``timezone``), "HH:MM-HH:MM", end exclusive
    # ("24:00": the end of the day)
    callback_windows: list[str] = Field(default_factory=lambda: ["09:00-12:00", "14:00-18:00"])
    callback_working_days_only: bool = True  # official calendar: no holidays, 调休 days on
    callback_max_attempts: int = Field(default=3, ge=1, le=10)
    callback_retry_minutes: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_CALLBACK_RETRY_MINUTES)
    )
    callback_calls_per_minute: int = Field(default=20, ge=1)  # per campaign
    callback_caller_id: str = Field(default="12345", pattern=r"^\+?[0-9]{1,20}$")
    # hard caps, shared by every scheduler process through the database
    callback_max_concurrent_calls: int = Field(default=10, ge=1)
    callback_trunks: list[CallbackTrunk] = Field(
        default_factory=lambda: list(DEFAULT_CALLBACK_TRUNKS)
    )
    callback_default_trunk: str = "carrier"
    # the dialplan context the answered call enters (the FastAGI ``callback`` route)
    callback_context: str = "callback"
    callback_ring_seconds: int = Field(default=40, ge=5, le=180)  # Originate Timeout
    # extra wait for OriginateResponse after the ring time before the outcome is "unknown"
    callback_response_grace_seconds: float = Field(default=20.0, gt=0)
    # an attempt still active after this is reconciled (a scheduler died mid-call)
    callback_max_call_seconds: int = Field(default=900, ge=60)
    callback_poll_interval: float = Field(default=2.0, gt=0)
    # one contact policy across every campaign (DOMAIN.md rule 8 "不得骚扰"; README "Contact
    # policy" says why these defaults): calls to one citizen a Beijing day, and in any 7 days
    callback_citizen_max_calls_per_day: int = Field(default=2, ge=1, le=10)
    callback_citizen_max_calls_per_week: int = Field(default=5, ge=1, le=50)
    # 电话邀评 by itself (DOMAIN.md rule 3): an unrated, served call gets one invitation call
    # starting this many hours before its default window closes (rule 2: the default applies
    # only if the invitation fails)
    rating_invite_auto: bool = True
    rating_invite_lead_hours: float = Field(default=48.0, gt=0, le=24 * 90)
    # 一事一评 for closed cases without a 差评 (a 差评 case always gets its 回访, rule 5):
    # "all", "bad_only" (none), or "sample" (case_rating_sample_percent of them, by case hash)
    case_rating_scope: Literal["all", "bad_only", "sample"] = "all"
    case_rating_sample_percent: int = Field(default=100, ge=0, le=100)

    # --- forwarding to the provincial aggregation system (DOMAIN.md rule 9, forwarder/README.md)
    # where records are POSTed; empty: no push (the pull feed still serves every rating)
    forwarder_endpoint: str = ""
    # built-in profile (forwarder/profiles/<name>.toml) mapping a rating to the province's record
    forwarder_profile: str = "default"
    # a site's own profile file (TOML or JSON); when set it replaces forwarder_profile
    forwarder_profile_file: Path | None = None
    # site values overlaying the profile's [values] (data_source, area_code, pf_telephone ...)
    forwarder_values: dict[str, str] = Field(default_factory=dict)
    # secrets: the HMAC key (json_hmac), or appMark/appWord and SM2 keys in hex (sm2_envelope)
    forwarder_hmac_secret: str = ""
    forwarder_app_mark: str = ""
    forwarder_app_word: str = ""
    forwarder_sm2_private_key: str = ""  # ours: signs the envelope
    forwarder_sm2_receiver_public_key: str = ""  # the province's: encrypts the payload
    forwarder_ca_file: Path | None = None  # extra CA bundle for a provincial private CA
    # delivery tuning: records claimed per batch, requests at once, per-request timeout
    forwarder_batch_size: int = Field(default=50, ge=1, le=1000)
    forwarder_concurrency: int = Field(default=8, ge=1, le=256)
    forwarder_request_timeout: float = Field(default=15.0, gt=0)
    # processes encrypting and signing SM2 envelopes beside the forwarder's own (pure Python,
    # ~0.5 ms an envelope: issue 13); 0: on a thread of the forwarder's process (one core)
    forwarder_sm2_processes: int = Field(default=1, ge=0, le=64)
    # retry delay after the n-th failure: min(max, base * 2**(n-1)), with jitter
    forwarder_backoff_base: float = Field(default=2.0, gt=0)
    forwarder_backoff_max: float = Field(default=600.0, gt=0)
    # failures in a row that stop all sends to an endpoint until a single probe succeeds
    forwarder_breaker_failures: int = Field(default=5, ge=1, le=1000)
    # how long a claimed record stays reserved to one forwarder (renewed while it works on it)
    forwarder_lease_seconds: float = Field(default=120.0, gt=0)
    forwarder_poll_interval: float = Field(default=1.0, gt=0)  # idle wait between empty polls

    # --- 通报: statistics, rankings, agent scores and documents (reports/; DOMAIN.md rule 7)
    report_issuing_unit: str = "12345政务服务便民热线管理中心"  # 发文单位 on the PDF 通报
    # departments ranked by these figures (reports/figures.py keys), each in its better
    # direction; later ones break ties of the earlier ones
    report_ranking_order: list[str] = Field(
        default_factory=lambda: ["satisfaction_rate", "bad_rate", "on_time_rectification_rate"]
    )
    report_department_min_votes: int = Field(default=1, ge=1)
    report_praise_count: int = Field(default=3, ge=0)  # top departments listed for 表扬
    report_bottom_count: int = Field(default=3, ge=1)  # seed 000: 排名靠后 3 位
    report_bottom_consecutive_periods: int = Field(default=2, ge=1)  # ... for 通报
    # seed 000: satisfaction weighs at least 20 % of a window agent's 考核
    report_agent_satisfaction_weight: float = Field(default=0.2, ge=0.2, le=1.0)
    # the other parts of the agent score and their weights (they sum to 1 with the above)
    report_agent_score_parts: dict[str, float] = Field(default_factory=dict)
    report_agent_min_votes: int = Field(default=20, ge=1)
    report_funnel_outlier_ratio: float = Field(default=0.5, gt=0, lt=1)
    report_funnel_min_served: int = Field(default=20, ge=1)
    report_trend_periods: int = Field(default=6, ge=2, le=24)
    report_dir: Path | None = None  # None: data_dir/reports
    # scheduled documents: "month" (the month before, on the 1st) and "half" (seed 004: on
    # 6月30日 and 12月30日, the half-year so far)
    report_schedule: list[Literal["month", "half"]] = Field(
        default_factory=lambda: ["month", "half"]
    )
    report_schedule_time: str = Field(default="08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    report_half_year_dates: list[str] = Field(default_factory=lambda: ["06-30", "12-30"])
    report_poll_interval: float = Field(default=60.0, gt=0)

    # ----------------------------------------------------------------- validation
    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (async drivers)"
            )
        return value

    @field_validator("fastagi_allowed_peers")
    @classmethod
    def _peer_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or network") from exc
        return value

    @field_validator("fastagi_fallback")
    @classmethod
    def _agi_url(cls, value: str) -> str:
        if value and not re.fullmatch(r"agi://[A-Za-z0-9.:\[\]-]+(:\d+)?", value):
            raise ValueError("must be empty or agi://host:port")
        return value

    @field_validator("keypad_map")
    @classmethod
    def _keypad_map_is_a_bijection(cls, value: dict[str, int]) -> dict[str, int]:
        if sorted(value.values()) != [1, 2, 3, 4, 5]:
            raise ValueError("must map exactly five keys onto the levels 1..5, each once")
        for key in value:
            if key not in "123456789" or len(key) != 1:
                raise ValueError(f"key {key!r} is not a single digit 1-9")
        return value

    @field_validator("survey_reasons")
    @classmethod
    def _reason_keys_unique(cls, value: list[ReasonOption]) -> list[ReasonOption]:
        keys = [r.key for r in value]
        if len(set(keys)) != len(keys):
            raise ValueError("reason keys must be unique")
        if not value:
            raise ValueError("at least one reason is needed")
        return value

    @field_validator("callback_windows")
    @classmethod
    def _windows_well_formed(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one call window is needed")
        for window in value:
            m = _WINDOW.match(window.strip())
            if m is None:
                raise ValueError(f"window {window!r} is not HH:MM-HH:MM")
            if m[3] == "24" and m[4] != "00":
                raise ValueError(f"window {window!r}: past 24:00")
            if (m[1], m[2]) >= (m[3], m[4]):
                raise ValueError(f"window {window!r} ends before it starts")
        return [w.strip() for w in value]

    @field_validator("callback_retry_minutes")
    @classmethod
    def _retry_outcomes_known(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = set(value) - set(DEFAULT_CALLBACK_RETRY_MINUTES)
        if unknown:
            raise ValueError(
                f"unknown outcome(s) {sorted(unknown)}; known: "
                + ", ".join(DEFAULT_CALLBACK_RETRY_MINUTES)
            )
        if any(v < 0 for v in value.values()):
            raise ValueError("retry delays must not be negative")
        # an outcome left out keeps its default delay
        return {**DEFAULT_CALLBACK_RETRY_MINUTES, **value}

    @model_validator(mode="after")
    def _default_trunk_exists(self) -> Settings:
        names = [t.name for t in self.callback_trunks]
        if len(set(names)) != len(names):
            raise ValueError("callback_trunks: trunk names must be unique")
        if self.callback_default_trunk not in names:
            raise ValueError(
                f"callback_default_trunk {self.callback_default_trunk!r} is not one of the "
                f"callback_trunks ({', '.join(names)})"
            )
        return self

    @field_validator("report_half_year_dates")
    @classmethod
    def _month_days(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", item):
                raise ValueError(f"{item!r} is not MM-DD")
        return value

    @model_validator(mode="after")
    def _score_weights_add_up(self) -> Settings:
        parts = self.report_agent_score_parts
        if any(w <= 0 for w in parts.values()):
            raise ValueError("report_agent_score_parts: weights must be positive")
        total = self.report_agent_satisfaction_weight + sum(parts.values())
        if parts and abs(total - 1.0) > 1e-6:
            raise ValueError(
                "report_agent_satisfaction_weight and report_agent_score_parts must add up to 1"
                f" (they add up to {total:g})"
            )
        return self

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)

    # ----------------------------------------------------------------- derived values
    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'hotline.db'}"

    @property
    def effective_asterisk_run_dir(self) -> Path:
        return (self.asterisk_run_dir or self.data_dir / "asterisk").expanduser().resolve()

    @property
    def effective_asterisk_call_log(self) -> Path:
        default = self.effective_asterisk_run_dir / "log" / "cel-custom" / "hotline-calls.json"
        return (self.asterisk_call_log or default).expanduser().resolve()

    @property
    def effective_prompts_dir(self) -> Path:
        # read for every survey call: resolving the path (a system call per component) was 3 %
        # of the survey server's CPU (issue 13)
        return _resolved(self.prompts_dir or self.data_dir / "sounds" / "hotline")

    @property
    def effective_report_dir(self) -> Path:
        return (self.report_dir or self.data_dir / "reports").expanduser().resolve()

    @property
    def effective_phone_key_file(self) -> Path:
        return self.phone_key_file or self.data_dir / "phone.key"


@lru_cache(maxsize=64)
def _resolved(path: Path) -> Path:
    return path.expanduser().resolve()


def _config_path(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    env = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if env:
        return Path(env)
    local = Path("hotline.toml")
    return local if local.exists() else None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, turning any validation failure into one message naming the setting."""
    path = _config_path(config)
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SettingsError(f"settings file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from exc
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "?"
            top = str(err["loc"][0]) if err["loc"] else name
            problems.append(f"setting {name} ({ENV_PREFIX}{top.upper()}): {err['msg']}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from exc
