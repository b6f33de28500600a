"""The one typed settings object: a TOML file overlaid by ``HOTLINE_*`` environment variables.

Precedence (highest first): environment, the TOML file, the defaults below. The TOML file is
``$HOTLINE_CONFIG`` if set, else ``hotline.toml`` in the working directory if it exists.
Every field is documented in the README's settings table; keep the two in step.
"""

from __future__ import annotations

import os
import tomllib
from functools import cached_property
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
    log_format: Literal["json", "text"] = "json"

    # --- which workers `hotline serve` runs in its process
    serve_fastagi: bool = True
    serve_http: bool = True
    serve_forwarder: bool = True
    serve_scheduler: bool = True

    # --- FastAGI server
    fastagi_host: str = "127.0.0.1"
    fastagi_port: int = Field(default=4573, ge=1, le=65535)
    fastagi_max_calls: int = Field(default=500, ge=1)
    fastagi_read_timeout: float = Field(default=120.0, gt=0)
    fastagi_shutdown_grace: float = Field(default=30.0, ge=0)

    # --- HTTP API
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)

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

    # --- the five levels and the survey
    keypad_map: dict[str, int] = Field(
        default_factory=lambda: {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5}
    )
    survey_max_tries: int = Field(default=3, ge=1, le=9)
    survey_digit_timeout_ms: int = Field(default=6000, ge=1000)
    survey_comment_max_seconds: int = Field(default=60, ge=0)
    survey_reasons: list[ReasonOption] = Field(default_factory=lambda: list(DEFAULT_REASONS))
    bad_rating_fallback_reason: str = "9"

    # --- policy windows (DOMAIN.md rules 2 and 4)
    default_rating_window: int = Field(default=7, ge=1)
    default_rating_window_unit: Literal["minutes", "natural_days", "working_days"] = (
        "natural_days"
    )
    default_rating_interval_seconds: float = Field(default=60.0, gt=0)
    rectification_days: int = Field(default=15, ge=1)
    rectification_days_unit: Literal["natural_days", "working_days"] = "working_days"
    callback_deadline_working_days: int = Field(default=5, ge=1)
    workday_overrides_file: Path | None = None

    # --- privacy (DOMAIN.md rule 8)
    phone_key_file: Path | None = None  # None: data_dir/phone.key, created on first start

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
    def effective_phone_key_file(self) -> Path:
        return self.phone_key_file or self.data_dir / "phone.key"


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
