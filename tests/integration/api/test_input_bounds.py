"""Out-of-range numbers and timestamps are 422 VALIDATION_ERROR naming the field, never a 500
(SPEC §13.3): integers fit signed 64 bits, timestamps lie in years 1..9999 once in UTC."""

import base64
import json

import httpx
import pytest

from ssbg.services.api_key_service import IssuedApiKey
from tests.support.clock import FixedClock
from tests.support.factories import headers

TOO_BIG = str(2**63)
TOO_SMALL = str(-(2**63) - 1)
EARLY = "0001-01-01T00:00:00+05:00"  # year 0 in UTC
LATE = "9999-12-31T23:00:00-05:00"  # year 10000 in UTC


def _assert_names(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]


@pytest.mark.both_backends
@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/audit/entries", "after_sequence", TOO_BIG),
        ("/audit/checkpoints", "after_sequence", TOO_BIG),
        ("/audit/export", "from_sequence", TOO_BIG),
        ("/audit/export", "to_sequence", TOO_BIG),
        ("/audit/entries", "limit", TOO_BIG),
        ("/audit/checkpoints", "limit", TOO_BIG),
        ("/backups", "limit", TOO_BIG),
        ("/admin/alerts", "limit", TOO_BIG),
        ("/audit/entries", "from", EARLY),
        ("/audit/entries", "from", LATE),
        ("/audit/entries", "to", EARLY),
        ("/audit/entries", "to", LATE),
        ("/backups", "created_from", EARLY),
        ("/backups", "created_from", LATE),
        ("/backups", "created_to", EARLY),
        ("/backups", "created_to", LATE),
    ],
)
async def test_out_of_range_query_values_are_validation_errors(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, path: str, field: str, value: str
) -> None:
    response = await client.get(path, params={field: value}, headers=headers(bootstrap_key))

    _assert_names(response, field)


@pytest.mark.both_backends
@pytest.mark.parametrize("value", ["9999-12-31T23:00:00-05:00", EARLY, "9999-12-31T23:59:59Z"])
async def test_out_of_range_key_expiry_is_a_validation_error(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, value: str
) -> None:
    response = await client.post(
        "/admin/api-keys",
        headers=headers(bootstrap_key),
        json={"role": "operator", "description": "far future", "expires_at": value},
    )

    if value.endswith("Z"):  # the last storable moment is a valid expiry
        assert response.status_code == 201, response.text
        return
    _assert_names(response, "expires_at")


@pytest.mark.both_backends
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/audit/validate", {"from_sequence": 2**63}, "from_sequence"),
        ("/audit/validate", {"to_sequence": 2**63}, "to_sequence"),
        (
            "/admin/policies",
            {"name": "p", "effect": "deny", "rule": {}, "priority": 2**63},
            "priority",
        ),
        ("/admin/incident", {"level": 2**63, "reason": "probe"}, "level"),
        ("/admin/incident", {"level": -(2**63) - 1, "reason": "probe"}, "level"),
    ],
)
async def test_out_of_range_body_integers_are_validation_errors(
    client: httpx.AsyncClient,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
    path: str,
    body: dict[str, object],
    field: str,
) -> None:
    # with a valid code: routes that need MFA check it before they read the body
    response = await client.post(
        path, headers=headers(bootstrap_key, totp_at=clock.now()), json=body
    )

    _assert_names(response, field)


@pytest.mark.parametrize("path", ["/backups", "/admin/alerts"])
async def test_a_cursor_with_an_unstorable_time_is_a_validation_error(
    client: httpx.AsyncClient, bootstrap_key: IssuedApiKey, path: str
) -> None:
    position = json.dumps({"t": EARLY, "id": "00000000-0000-4000-8000-000000000000"})
    cursor = base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")

    response = await client.get(path, params={"cursor": cursor}, headers=headers(bootstrap_key))

    _assert_names(response, "cursor")
