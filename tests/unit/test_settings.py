from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from ssbg.settings import Settings


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_embedded_default_needs_no_configuration(tmp_path: Path) -> None:
    settings = make(data_dir=tmp_path)
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.resolved_storage_path == (tmp_path / "objects").resolve()
    assert settings.resolved_keystore_dir == (tmp_path / "keys").resolve()


def test_production_refuses_sqlite() -> None:
    with pytest.raises(ValidationError, match="must point at PostgreSQL"):
        make(env="production", key_password=SecretStr("a-long-enough-production-password"))


def test_production_refuses_a_missing_key_password() -> None:
    with pytest.raises(ValidationError, match="SSBG_KEY_PASSWORD must be set"):
        make(env="production", database_url="postgresql+asyncpg://db/ssbg")


@pytest.mark.parametrize("password", ["changethis", "short-password"])
def test_production_refuses_placeholder_or_short_passwords(password: str) -> None:
    with pytest.raises(ValidationError, match="placeholder or shorter"):
        make(
            env="production",
            database_url="postgresql+asyncpg://db/ssbg",
            key_password=SecretStr(password),
        )


def test_production_accepts_postgres_and_a_real_password() -> None:
    settings = make(
        env="production",
        database_url="postgresql+asyncpg://db/ssbg",
        key_password=SecretStr("correct-horse-battery-staple"),
    )
    assert settings.env == "production"


def test_trusted_proxies_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSBG_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
    assert make().trusted_proxies == ["10.0.0.0/8", "192.0.2.1"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("business_hours", "9-17"),
        ("trusted_proxies", ["not-a-network"]),
        ("bootstrap_api_key", SecretStr("ssbg_tooshort")),
        ("timezone", "Mars/Olympus_Mons"),
    ],
)
def test_malformed_settings_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValidationError):
        make(**{name: value})


def test_the_audit_anchor_lives_in_the_key_store_and_advances_every_minute(
    tmp_path: Path,
) -> None:
    settings = make(data_dir=tmp_path, keystore_dir=tmp_path / "vault")

    assert settings.audit_anchor_seconds == 60
    assert settings.resolved_audit_anchor_file == (tmp_path / "vault" / "audit-anchor.json")
    moved = make(data_dir=tmp_path, audit_anchor_file=tmp_path / "elsewhere.json")
    assert moved.resolved_audit_anchor_file == (tmp_path / "elsewhere.json").resolve()


@pytest.mark.parametrize("seconds", [0, -1, 86_401])
def test_the_audit_anchor_interval_is_bounded(seconds: int) -> None:
    with pytest.raises(ValidationError, match="audit_anchor_seconds"):
        make(audit_anchor_seconds=seconds)


def test_a_webhook_url_without_a_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs SSBG_ALERT_WEBHOOK_SECRET"):
        make(alert_webhook_url="https://alerts.example.org/ssbg")


@pytest.mark.parametrize(
    "url", ["ftp://alerts.example.org/ssbg", "alerts.example.org/ssbg", "https:///no-host"]
)
def test_a_webhook_url_must_be_http_or_https_with_a_host(url: str) -> None:
    with pytest.raises(ValidationError, match="http:// or https:// URL with a host"):
        make(alert_webhook_url=url, alert_webhook_secret=SecretStr("webhook-secret"))


def test_a_webhook_url_with_a_secret_is_accepted_and_the_secret_stays_hidden() -> None:
    settings = make(
        alert_webhook_url="https://alerts.example.org/ssbg",
        alert_webhook_secret=SecretStr("webhook-secret-value"),
    )
    assert settings.alert_webhook_url == "https://alerts.example.org/ssbg"
    assert "webhook-secret-value" not in repr(settings)


def test_production_refuses_a_placeholder_webhook_secret() -> None:
    with pytest.raises(ValidationError, match="SSBG_ALERT_WEBHOOK_SECRET is a placeholder"):
        make(
            env="production",
            database_url="postgresql+asyncpg://db/ssbg",
            key_password=SecretStr("a-long-enough-production-password"),
            alert_webhook_url="https://alerts.example.org/ssbg",
            alert_webhook_secret=SecretStr("changeme"),
        )


@pytest.mark.parametrize("parts", [0, 33])
def test_s3_part_concurrency_outside_1_to_32_is_refused(parts: int) -> None:
    with pytest.raises(ValidationError, match="s3_part_concurrency"):
        make(s3_part_concurrency=parts)
    assert make(s3_part_concurrency=32).s3_part_concurrency == 32
    assert make().s3_part_concurrency == 4
