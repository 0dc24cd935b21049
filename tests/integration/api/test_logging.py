"""JSON logs: a request id on every line of a request, never a secret."""

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from ssbg.infrastructure.log_config import configure_logging
from ssbg.services.api_key_service import IssuedApiKey
from tests.support.factories import headers


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    configure_logging("DEBUG", "json")
    buffer = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    configure_logging("INFO", "console")


async def test_request_lines_carry_the_request_id_and_no_secret(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, json_log: io.StringIO
) -> None:
    created = await client.post(
        "/admin/api-keys",
        headers={**headers(bootstrap_key), "X-Request-ID": "log-test-1"},
        json={"role": "admin", "description": "log test"},
    )
    await client.get("/me", headers={"X-API-Key": "ssbg_" + "e" * 32, "X-Request-ID": "log-test-2"})

    lines = [json.loads(line) for line in json_log.getvalue().splitlines() if line.strip()]
    access = [line for line in lines if line.get("logger") == "ssbg.access"]
    assert {line["request_id"] for line in access} >= {"log-test-1", "log-test-2"}
    assert all("request_id" in line for line in access)
    text = json_log.getvalue()
    data = created.json()["data"]
    for secret in (bootstrap_key.api_key, data["api_key"], data["totp_secret"], "e" * 32):
        assert secret not in text


def test_secret_looking_fields_are_redacted(json_log: io.StringIO) -> None:
    logging.getLogger("ssbg.test").info("plain stdlib line")
    import structlog

    structlog.get_logger("ssbg.test").info(
        "event", api_key="ssbg_" + "1" * 32, totp_secret="JBSWY3DP", key_id="kept"
    )

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    event = next(line for line in lines if line["event"] == "event")
    assert event["api_key"] == "[REDACTED]"
    assert event["totp_secret"] == "[REDACTED]"
    assert event["key_id"] == "kept"
