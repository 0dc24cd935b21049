"""Gateway configuration (SPEC §10): environment variables with the ``SSBG_`` prefix, or ``.env``.

Paths left unset derive from ``SSBG_DATA_DIR`` so the embedded default needs no configuration.
``SSBG_ENV=production`` refuses what is only acceptable on a developer's machine.
"""

import ipaddress
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ssbg.domain.alerts import MIN_ESCALATION_SECONDS
from ssbg.domain.audit_verification import DEFAULT_SEGMENT_ENTRIES
from ssbg.domain.enums import Classification
from ssbg.domain.hours import parse_hours
from ssbg.domain.webhooks import MAX_TIMEOUT_SECONDS

MIB = 1024 * 1024
PLACEHOLDER_SECRETS = frozenset({"changethis", "changeme", "password", "secret", "ssbg", "admin"})
MIN_PRODUCTION_PASSWORD_LENGTH = 16
ANCHOR_FILE_NAME = "audit-anchor.json"


class ProductionRefused(ValueError):
    """The configuration is not acceptable with ``SSBG_ENV=production``."""


def default_validation_workers() -> int:
    """One audit-validation worker process per CPU, at most four."""
    return min(4, os.cpu_count() or 1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SSBG_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,  # a refused value may be a secret
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("./ssbg-data")
    database_url: str | None = None

    storage_backend: Literal["local", "s3"] = "local"
    storage_path: Path | None = None
    s3_endpoint_url: str | None = None
    s3_bucket: str = "ssbg-backups"
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None

    keystore_dir: Path | None = None
    key_password: SecretStr | None = None

    segment_size: int = Field(default=MIB, ge=4096, le=64 * MIB)
    max_upload_bytes: int = Field(default=64 * 1024 * MIB, ge=1)
    # A PROCESSING backup whose streaming process stopped renewing this lease is failed
    # (INTERRUPTED) by start-up recovery or the periodic sweep of any replica.
    backup_lease_seconds: int = Field(default=60, ge=1, le=3600)
    require_classification: bool = True
    default_classification: Classification = Classification.INTERNAL
    restore_token_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    business_hours: str = "00-24"
    timezone: str = "UTC"
    max_restores_per_key_per_hour: int = Field(default=10, ge=1)
    max_restores_per_hour: int = Field(default=50, ge=1)
    audit_checkpoint_interval: int = Field(default=1000, ge=1)
    # Validating a long range of the audit chain: worker processes, and the shortest segment
    # worth one (ranges shorter than twice that are validated in one pass).
    audit_validation_workers: int = Field(default_factory=default_validation_workers, ge=1, le=64)
    audit_validation_segment_entries: int = Field(default=DEFAULT_SEGMENT_ENTRIES, ge=1)
    # The audit anchor (SPEC §13.7): advanced at every checkpoint and at least this often while
    # entries are appended; kept in the key store unless a path is given.
    audit_anchor_seconds: int = Field(default=60, ge=1, le=86_400)
    audit_anchor_file: Path | None = None
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Detection and response (SPEC §13.2).
    alert_escalation_seconds: int = Field(default=900, ge=MIN_ESCALATION_SECONDS)
    alert_m3_min_bytes: int = Field(default=1024 * MIB, ge=0)
    auth_failure_limit: int = Field(default=20, ge=1)
    # Notifications (SPEC §13.2): POSTed, signed with the secret, to this http(s) URL.
    alert_webhook_url: str | None = None
    alert_webhook_secret: SecretStr | None = None
    alert_webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=MAX_TIMEOUT_SECONDS)
    metrics_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )
    # Web console sessions (SPEC §13.5): ended after this long without a request, and at most
    # this long after sign-in whatever happens.
    console_idle_minutes: int = Field(default=15, ge=1, le=24 * 60)
    console_session_hours: int = Field(default=8, ge=1, le=7 * 24)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = "console"

    bootstrap_api_key: SecretStr | None = None
    bootstrap_totp_secret: SecretStr | None = None

    @field_validator("trusted_proxies", "metrics_allow", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies", "metrics_allow")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("business_hours")
    @classmethod
    def _check_hours(cls, value: str) -> str:
        parse_hours(value)
        return value

    @field_validator("bootstrap_api_key")
    @classmethod
    def _check_bootstrap_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"ssbg_[0-9a-f]{32}", value.get_secret_value()):
            raise ValueError("must be 'ssbg_' followed by 32 lowercase hex characters")
        return value

    @field_validator("bootstrap_totp_secret")
    @classmethod
    def _check_bootstrap_totp(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Z2-7]{16,}=*", value.get_secret_value()):
            raise ValueError("must be a base32 secret of at least 16 characters")
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parsed = urlsplit(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            # The value is not echoed: a chat service's webhook URL carries its token.
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.strip()

    @model_validator(mode="after")
    def _require_webhook_secret(self) -> "Settings":
        if self.alert_webhook_url is None:
            return self
        secret = self.alert_webhook_secret
        if secret is None or not secret.get_secret_value():
            raise ValueError(
                "SSBG_ALERT_WEBHOOK_URL needs SSBG_ALERT_WEBHOOK_SECRET: every notification is "
                "signed with it (X-SSBG-Signature)"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.env != "production":
            return self
        problems: list[str] = []
        if self.resolved_database_url.startswith("sqlite"):
            problems.append("SSBG_DATABASE_URL must point at PostgreSQL, not SQLite")
        if self.key_password is None:
            problems.append(
                "SSBG_KEY_PASSWORD must be set (a generated password stored beside the keys "
                "is only acceptable in development)"
            )
        else:
            password = self.key_password.get_secret_value()
            if password.lower() in PLACEHOLDER_SECRETS or len(password) < (
                MIN_PRODUCTION_PASSWORD_LENGTH
            ):
                problems.append(
                    "SSBG_KEY_PASSWORD is a placeholder or shorter than "
                    f"{MIN_PRODUCTION_PASSWORD_LENGTH} characters"
                )
        webhook_secret = self.alert_webhook_secret
        if webhook_secret is not None and (
            webhook_secret.get_secret_value().lower() in PLACEHOLDER_SECRETS
        ):
            problems.append("SSBG_ALERT_WEBHOOK_SECRET is a placeholder")
        s3_secret = self.s3_secret_access_key
        if s3_secret is not None and s3_secret.get_secret_value().lower() in PLACEHOLDER_SECRETS:
            problems.append("SSBG_S3_SECRET_ACCESS_KEY is a placeholder")
        if problems:
            raise ProductionRefused("; ".join(problems))
        return self

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ssbg.db').resolve()}"

    @cached_property
    def resolved_storage_path(self) -> Path:
        return (self.storage_path or self.data_dir / "objects").resolve()

    @cached_property
    def resolved_keystore_dir(self) -> Path:
        return (self.keystore_dir or self.data_dir / "keys").resolve()

    @cached_property
    def resolved_audit_anchor_file(self) -> Path:
        return (self.audit_anchor_file or self.resolved_keystore_dir / ANCHOR_FILE_NAME).resolve()

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
