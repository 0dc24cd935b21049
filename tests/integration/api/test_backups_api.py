"""The /backups request contract (SPEC §3, §4), through HTTP, on SQLite; the tests whose outcome
rests on the database (filters, paging, timestamps, idempotency keys, transitions, audit entries)
also on PostgreSQL."""

import asyncio
import hashlib
import os
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.support.audit import assert_chain_valid, audit_entries, entries_for
from tests.support.backups import (
    count_records,
    decrypt_stored,
    get_record,
    local_files_under,
    multipart_body,
    only_record,
    stored_objects,
    upload,
)
from tests.support.clock import FixedClock
from tests.support.factories import create_api_key, headers
from tests.support.restores import download, request_restore


@pytest.fixture
async def operator(services: Services) -> IssuedApiKey:
    return await create_api_key(services, Role.OPERATOR, department="finance")


async def assert_nothing_created(services: Services) -> None:
    assert await count_records(services) == 0
    assert local_files_under(services.settings.resolved_storage_path / "backups") == []


# -- submitting ----------------------------------------------------------------------------


@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_multipart_upload_returns_201_with_location_and_the_record(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    payload = os.urandom(300_000)

    response = await upload(
        client,
        operator,
        payload,
        classification="CONFIDENTIAL",
        source_system="db-prod-1",
        description="nightly dump",
        filename="dump.sql.gz",
        content_type="application/gzip",
    )

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert response.headers["Location"] == f"/api/v1/backups/{data['backup_id']}"
    assert data["status"] == "ACTIVE"
    assert data["classification"] == "CONFIDENTIAL"
    assert data["source_system"] == "db-prod-1"
    assert data["description"] == "nightly dump"
    assert data["original_filename"] == "dump.sql.gz"
    assert data["content_type"] == "application/gzip"
    assert data["original_size"] == len(payload)
    assert data["checksum_plaintext"] == hashlib.sha512(payload).hexdigest()
    assert data["encrypted_size"] > len(payload)
    assert len(data["checksum_ciphertext"]) == 128
    assert data["key_version"] == "P-001"
    assert data["storage_backend"] == services.settings.storage_backend
    assert data["storage_ref"] == f"backups/{data['backup_id']}/data.enc"
    assert data["created_by"] == str(operator.record.id)
    assert data["created_at"].endswith("Z")
    assert data["completed_at"].endswith("Z")
    assert await stored_objects(services.object_store, data["backup_id"]) == {
        "data.enc": True,
        "dek.wrapped": True,
    }


async def test_raw_upload_takes_its_fields_from_the_query(
    client: httpx.AsyncClient, operator: IssuedApiKey
) -> None:
    payload = os.urandom(70_000)

    response = await upload(
        client,
        operator,
        payload,
        mode="raw",
        classification="PUBLIC",
        source_system="web-3",
        filename="site.tar",
        description="raw body",
    )

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert (data["classification"], data["source_system"]) == ("PUBLIC", "web-3")
    assert (data["original_filename"], data["description"]) == ("site.tar", "raw body")
    assert data["content_type"] == "application/octet-stream"
    assert data["checksum_plaintext"] == hashlib.sha512(payload).hexdigest()


async def test_a_streamed_chunked_multipart_body_is_accepted(
    client: httpx.AsyncClient, operator: IssuedApiKey
) -> None:
    pieces = [os.urandom(10_000) for _ in range(30)]
    content_type, body = multipart_body(
        {"classification": "INTERNAL", "source_system": "fs-1"}, pieces
    )

    async def stream() -> Any:
        for part in body:
            yield part

    response = await client.post(
        "/backups", headers={**headers(operator), "Content-Type": content_type}, content=stream()
    )

    assert response.status_code == 201, response.text
    assert response.json()["data"]["checksum_plaintext"] == (
        hashlib.sha512(b"".join(pieces)).hexdigest()
    )


# -- validation: a refused request creates no record and no object -------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"source_system": None}, "source_system"),
        ({"source_system": "has space"}, "source_system"),
        ({"source_system": "x" * 201}, "source_system"),
        ({"classification": "TOP_SECRET"}, "classification"),
        ({"classification": None}, "classification"),
        ({"description": "x" * 2001}, "description"),
    ],
)
@pytest.mark.parametrize("mode", ["multipart", "raw"])
async def test_invalid_fields_are_refused_before_anything_is_stored(
    client: httpx.AsyncClient,
    services: Services,
    operator: IssuedApiKey,
    fields: dict[str, Any],
    field: str,
    mode: str,
) -> None:
    arguments: dict[str, Any] = {"classification": "INTERNAL", "source_system": "db-1", **fields}
    if arguments["source_system"] is None:
        arguments["source_system"] = ""

    response = await upload(client, operator, b"payload", mode=mode, **arguments)  # type: ignore[arg-type]

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    await assert_nothing_created(services)


@pytest.mark.parametrize("mode", ["multipart", "raw"])
async def test_an_empty_payload_is_refused(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey, mode: str
) -> None:
    response = await upload(client, operator, b"", mode=mode)  # type: ignore[arg-type]

    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"file": "The payload is empty."}
    await assert_nothing_created(services)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            b'--b\r\nContent-Disposition: form-data; name="source_system"\r\n\r\ndb\r\n--b--\r\n',
            "file",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="colour"\r\n\r\nred\r\n--b--\r\n',
            "colour",
        ),
        (b"this is not multipart at all", "body"),
    ],
    ids=["no file part", "unknown field", "garbage"],
)
async def test_malformed_forms_are_refused(
    client: httpx.AsyncClient,
    services: Services,
    operator: IssuedApiKey,
    body: bytes,
    detail: str,
) -> None:
    response = await client.post(
        "/backups",
        headers={**headers(operator), "Content-Type": "multipart/form-data; boundary=b"},
        content=body,
    )

    assert response.status_code == 422, response.text
    assert detail in response.json()["error"]["details"]
    await assert_nothing_created(services)


def _form_with_file(disposition: bytes, payload: bytes = b"payload") -> bytes:
    """A multipart body, byte by byte, whose file part has the Content-Disposition given."""
    return (
        b'--b\r\nContent-Disposition: form-data; name="source_system"\r\n\r\ndb\r\n'
        b'--b\r\nContent-Disposition: form-data; name="classification"\r\n\r\nINTERNAL\r\n'
        b"--b\r\nContent-Disposition: " + disposition + b"\r\n"
        b"Content-Type: text/plain\r\n\r\n" + payload + b"\r\n--b--\r\n"
    )


@pytest.mark.both_backends
@pytest.mark.parametrize(
    ("disposition", "filename"),
    [
        ('form-data; name="file"; filename="отчёт.txt"'.encode(), "отчёт.txt"),
        (b'form-data; name="file"; filename="caf\xc3\xa9.txt"', "café.txt"),
        (b'form-data; name="file"; filename="caf\xe9.txt"', "café.txt"),
        (
            b"form-data; name=\"file\"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82%20"
            b"%E2%9C%93.txt",
            "отчёт ✓.txt",
        ),
        (b"form-data; name=\"file\"; filename*=iso-8859-1'fr'caf%E9.txt", "café.txt"),
        (
            b'form-data; name="file"; filename="fallback.txt"; '
            b"filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt",
            "日本.txt",
        ),
        (b'form-data; name="file"; filename="say \\"hi\\"; ok.txt"', 'say "hi"; ok.txt'),
    ],
    ids=[
        "utf-8",
        "utf-8 latin letter",
        "latin-1",
        "rfc5987",
        "rfc5987 latin-1",
        "both forms",
        "escaped quotes",
    ],
)
async def test_multipart_filenames_are_kept_exactly_and_offered_back_on_download(
    client: httpx.AsyncClient,
    services: Services,
    disposition: bytes,
    filename: str,
) -> None:
    admin = await create_api_key(services, Role.ADMIN)
    response = await client.post(
        "/backups",
        headers={**headers(admin), "Content-Type": "multipart/form-data; boundary=b"},
        content=_form_with_file(disposition),
    )

    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["original_filename"] == filename
    record = await get_record(services, data["backup_id"])
    assert record is not None
    assert record.original_filename == filename
    restore = (await request_restore(client, admin, data["backup_id"])).json()["data"]
    downloaded = await download(client, admin, restore)
    assert downloaded.status_code == 200
    assert downloaded.content == b"payload"
    offered = downloaded.headers["Content-Disposition"]
    assert f"filename*=UTF-8''{quote(filename, safe='')}" in offered
    assert offered.isascii()


@pytest.mark.parametrize(
    "disposition",
    [
        b'form-data; name="file"; filename="unterminated.txt',
        b'form-data; name="file"; filename="a.txt"; filename="b.txt"',
        b"form-data; name=\"file\"; filename*=UTF-8''%ZZ.txt",
        b"form-data; name=\"file\"; filename*=UTF-8''%E9t%E9.txt",
        b"form-data; name=\"file\"; filename*=KOI8-R''%D0.txt",
        b'form-data; name="file"; filename*=no-quotes.txt',
        b'form-data; name="file"; filename="a.txt" trailing',
        b'form-data; name="fi\xd0le"',
        b"\xff\xfe",
    ],
    ids=[
        "unterminated",
        "twice",
        "bad escape",
        "not utf-8",
        "charset",
        "no ext-value",
        "trailing",
        "unknown name",
        "garbage",
    ],
)
async def test_a_malformed_content_disposition_is_a_validation_error(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey, disposition: bytes
) -> None:
    response = await client.post(
        "/backups",
        headers={**headers(operator), "Content-Type": "multipart/form-data; boundary=b"},
        content=_form_with_file(disposition),
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    await assert_nothing_created(services)


async def test_fields_in_the_query_of_a_multipart_request_are_refused(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    response = await client.post(
        "/backups?classification=SECRET",
        headers=headers(operator),
        data={"classification": "PUBLIC", "source_system": "db"},
        files={"file": ("f", b"x")},
    )

    assert response.status_code == 422
    assert "classification" in response.json()["error"]["details"]
    await assert_nothing_created(services)


async def test_a_form_urlencoded_body_is_not_a_payload(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    response = await client.post(
        "/backups?classification=PUBLIC&source_system=db",
        headers={**headers(operator), "Content-Type": "application/x-www-form-urlencoded"},
        content=b"a=b",
    )

    assert response.status_code == 422
    await assert_nothing_created(services)


_FIELDS_AND_FILE = (
    b'--b\r\nContent-Disposition: form-data; name="source_system"\r\n\r\ndb\r\n'
    b'--b\r\nContent-Disposition: form-data; name="classification"\r\n\r\nPUBLIC\r\n'
    b'--b\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\npayload'
)
_LATE_PART = (
    b'\r\n--b\r\nContent-Disposition: form-data; name="description"\r\n\r\nlate\r\n--b--\r\n'
)


async def test_a_part_after_the_file_in_the_same_chunk_is_refused_before_anything(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    response = await client.post(
        "/backups",
        headers={**headers(operator), "Content-Type": "multipart/form-data; boundary=b"},
        content=_FIELDS_AND_FILE + _LATE_PART,
    )

    assert response.status_code == 422
    assert "file" in response.json()["error"]["details"]
    await assert_nothing_created(services)


async def test_a_part_after_the_file_arriving_later_fails_the_backup(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    async def body() -> Any:
        yield _FIELDS_AND_FILE
        yield _LATE_PART

    response = await client.post(
        "/backups",
        headers={**headers(operator), "Content-Type": "multipart/form-data; boundary=b"},
        content=body(),
    )

    assert response.status_code == 422
    assert "file" in response.json()["error"]["details"]
    record = await only_record(services)
    assert (record.status, record.failure_reason) == ("FAILED", "INVALID_PAYLOAD")
    assert local_files_under(services.settings.resolved_storage_path / "backups") == []


async def test_a_body_ending_inside_the_file_part_fails_the_backup(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    async def body() -> Any:
        yield _FIELDS_AND_FILE
        yield b"more payload but never a closing boundary"

    response = await client.post(
        "/backups",
        headers={**headers(operator), "Content-Type": "multipart/form-data; boundary=b"},
        content=body(),
    )

    assert response.status_code == 422
    record = await only_record(services)
    assert (record.status, record.failure_reason) == ("FAILED", "INVALID_PAYLOAD")


@pytest.mark.parametrize(
    "settings_overrides",
    [{"require_classification": False, "default_classification": "CONFIDENTIAL"}],
)
async def test_without_required_classification_the_default_applies(
    client: httpx.AsyncClient, operator: IssuedApiKey
) -> None:
    response = await upload(client, operator, b"payload", classification=None)

    assert response.status_code == 201, response.text
    assert response.json()["data"]["classification"] == "CONFIDENTIAL"


# -- size limit ----------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"max_upload_bytes": 100_000}])
async def test_a_declared_oversized_raw_body_is_refused_before_anything_is_stored(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    response = await upload(client, operator, os.urandom(100_001), mode="raw")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    await assert_nothing_created(services)


@pytest.mark.parametrize("storage_backend", ["local", "s3"])
@pytest.mark.parametrize("settings_overrides", [{"max_upload_bytes": 3 * 1024 * 1024}])
async def test_an_oversized_stream_is_stopped_failed_and_removed(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    response = await upload(client, operator, os.urandom(3 * 1024 * 1024 + 1))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    record = await only_record(services)
    assert (record.status, record.failure_reason) == ("FAILED", "PAYLOAD_TOO_LARGE")
    assert not record.cleanup_pending
    assert await stored_objects(services.object_store, record.id) == {
        "data.enc": False,
        "dek.wrapped": False,
    }
    assert local_files_under(services.settings.resolved_storage_path / "backups") == []
    failed = [e for e in await entries_for(services.db, f"backup:{record.id}")]
    assert failed[-1].action == "BACKUP_FAILED"
    assert failed[-1].details["reason"] == "PAYLOAD_TOO_LARGE"


# -- idempotency ---------------------------------------------------------------------------


@pytest.mark.both_backends
async def test_the_same_idempotency_key_returns_the_same_backup(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    first = await upload(client, operator, b"first payload", idempotency_key="nightly-42")
    second = await upload(client, operator, b"first payload", idempotency_key="nightly-42")

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["data"]["backup_id"] == first.json()["data"]["backup_id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"]
    assert await count_records(services) == 1
    starts = [e for e in await audit_entries(services.db) if e.action == "BACKUP_START"]
    assert len(starts) == 1


@pytest.mark.both_backends
async def test_an_idempotency_key_is_scoped_to_its_api_key(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    other = await create_api_key(services, Role.OPERATOR)

    mine = await upload(client, operator, b"a", idempotency_key="shared-name")
    theirs = await upload(client, other, b"b", idempotency_key="shared-name")

    assert mine.json()["data"]["backup_id"] != theirs.json()["data"]["backup_id"]
    assert await count_records(services) == 2


@pytest.mark.both_backends
@pytest.mark.parametrize("settings_overrides", [{"max_upload_bytes": 2 * 1024 * 1024}])
async def test_a_failed_attempt_releases_its_idempotency_key(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    failed = await upload(client, operator, os.urandom(2 * 1024 * 1024 + 1), idempotency_key="k1")
    retried = await upload(client, operator, b"smaller", idempotency_key="k1")

    assert failed.status_code == 413
    assert retried.status_code == 201
    assert retried.json()["data"]["status"] == "ACTIVE"


async def _assert_only_backup_is(services: Services, backup_id: str, payload: bytes) -> None:
    """``backup_id`` is the one backup: ACTIVE, holding ``payload``; no other object stored."""
    record = await only_record(services)
    assert str(record.id) == backup_id
    assert record.status == "ACTIVE"
    assert record.checksum_plaintext == hashlib.sha512(payload).hexdigest()
    assert await decrypt_stored(services, record) == payload
    root = services.settings.resolved_storage_path / "backups"
    assert {path.parent.name for path in local_files_under(root)} <= {backup_id}


def _assert_mismatch(response: httpx.Response, first_id: str, mismatch: str) -> None:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "CONFLICT"
    assert error["details"]["reason"] == "IDEMPOTENCY_MISMATCH"
    assert error["details"]["mismatch"] == mismatch
    assert error["details"]["backup_id"] == first_id
    assert "Idempotent-Replayed" not in response.headers


@pytest.mark.both_backends
@pytest.mark.parametrize("mode", ["multipart", "raw"])
@pytest.mark.parametrize(
    "second_payload",
    [b"first payloaX", b"first payload, longer", b"first", b"x" * 70_000],
    ids=["same size", "longer", "shorter", "much longer"],
)
async def test_an_idempotency_key_reused_with_a_different_payload_is_refused_and_not_stored(
    client: httpx.AsyncClient,
    services: Services,
    operator: IssuedApiKey,
    mode: str,
    second_payload: bytes,
) -> None:
    first = await upload(client, operator, b"first payload", mode=mode, idempotency_key="k")  # type: ignore[arg-type]
    second = await upload(client, operator, second_payload, mode=mode, idempotency_key="k")  # type: ignore[arg-type]

    assert first.status_code == 201, first.text
    first_id = first.json()["data"]["backup_id"]
    _assert_mismatch(second, first_id, "payload")
    await _assert_only_backup_is(services, first_id, b"first payload")
    refused = (await entries_for(services.db, f"backup:{first_id}"))[-1]
    assert refused.action == "BACKUP_FAILED"
    assert refused.result == "FAILED"
    assert refused.details == {
        "reason": "IDEMPOTENCY_MISMATCH",
        "mismatch": "payload",
        "stored": False,
    }
    assert len(await audit_entries(services.db, "BACKUP_START")) == 1
    await assert_chain_valid(services.db)


@pytest.mark.both_backends
@pytest.mark.parametrize(
    "change",
    [
        {"classification": "SECRET"},
        {"source_system": "db-prod-2"},
        {"description": "another"},
        {"filename": "other.sql"},
        {"filename": None},
        {"content_type": "application/gzip"},
        {"mode": "raw", "filename": "dump.sql"},
    ],
    ids=lambda change: ",".join(f"{k}={v}" for k, v in change.items()),
)
async def test_an_idempotency_key_reused_with_different_fields_is_refused_and_not_stored(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey, change: dict[str, Any]
) -> None:
    fields: dict[str, Any] = {"classification": "CONFIDENTIAL", "description": "nightly"}
    first = await upload(client, operator, b"same payload", idempotency_key="k", **fields)
    second = await upload(
        client, operator, b"same payload", idempotency_key="k", **{**fields, **change}
    )

    assert first.status_code == 201, first.text
    first_id = first.json()["data"]["backup_id"]
    if change.get("mode") == "raw":  # the same request sent the other way is the same request
        assert second.status_code == 201, second.text
        assert second.json()["data"]["backup_id"] == first_id
        assert second.headers["Idempotent-Replayed"] == "true"
    else:
        _assert_mismatch(second, first_id, "fields")
        refused = (await entries_for(services.db, f"backup:{first_id}"))[-1]
        assert refused.details["reason"] == "IDEMPOTENCY_MISMATCH"
    await _assert_only_backup_is(services, first_id, b"same payload")


@pytest.mark.both_backends
@pytest.mark.parametrize("mode", ["multipart", "raw"])
async def test_concurrent_identical_requests_under_one_idempotency_key_store_one_backup(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey, mode: str
) -> None:
    payload = os.urandom(600_000)
    responses = await asyncio.gather(
        *(upload(client, operator, payload, mode=mode, idempotency_key="k") for _ in range(4))  # type: ignore[arg-type]
    )

    stored = [r for r in responses if r.status_code == 201]
    assert stored, [r.text for r in responses]
    backup_id = stored[0].json()["data"]["backup_id"]
    assert {r.json()["data"]["backup_id"] for r in stored} == {backup_id}
    for response in responses:
        if response.status_code != 201:
            assert response.status_code == 409, response.text
            assert response.json()["error"]["details"]["reason"] == "IDEMPOTENCY_IN_PROGRESS"
    await _assert_only_backup_is(services, backup_id, payload)
    again = await upload(client, operator, payload, mode=mode, idempotency_key="k")  # type: ignore[arg-type]
    assert again.status_code == 201
    assert again.json()["data"]["backup_id"] == backup_id


@pytest.mark.both_backends
@pytest.mark.parametrize("mode", ["multipart", "raw"])
async def test_concurrent_different_requests_under_one_idempotency_key_store_exactly_one(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey, mode: str
) -> None:
    payloads = [os.urandom(600_000) for _ in range(4)]
    responses = await asyncio.gather(
        *(upload(client, operator, p, mode=mode, idempotency_key="k") for p in payloads)  # type: ignore[arg-type]
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409], [r.text for r in responses]
    winner = next(i for i, r in enumerate(responses) if r.status_code == 201)
    backup_id = responses[winner].json()["data"]["backup_id"]
    assert responses[winner].json()["data"]["checksum_plaintext"] == (
        hashlib.sha512(payloads[winner]).hexdigest()
    )
    for response in responses:
        if response.status_code == 409:
            reason = response.json()["error"]["details"]["reason"]
            assert reason in {"IDEMPOTENCY_MISMATCH", "IDEMPOTENCY_IN_PROGRESS"}
    await _assert_only_backup_is(services, backup_id, payloads[winner])
    for payload in payloads[:winner] + payloads[winner + 1 :]:  # and later, each is refused
        _assert_mismatch(
            await upload(client, operator, payload, mode=mode, idempotency_key="k"),  # type: ignore[arg-type]
            backup_id,
            "payload",
        )
    await assert_chain_valid(services.db)


async def test_a_malformed_idempotency_key_is_refused(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    response = await upload(client, operator, b"x", idempotency_key="has space")

    assert response.status_code == 422
    await assert_nothing_created(services)


# -- reading -------------------------------------------------------------------------------


@pytest.mark.both_backends
async def test_operators_see_only_their_own_backups(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    other = await create_api_key(services, Role.OPERATOR)
    auditor = await create_api_key(services, Role.AUDITOR)
    mine = (await upload(client, operator, b"mine")).json()["data"]["backup_id"]
    theirs = (await upload(client, other, b"theirs")).json()["data"]["backup_id"]

    own = await client.get(f"/backups/{mine}", headers=headers(operator))
    foreign = await client.get(f"/backups/{theirs}", headers=headers(operator))
    foreign_status = await client.get(f"/backups/{theirs}/status", headers=headers(operator))
    listed = await client.get("/backups", headers=headers(operator))
    audited = await client.get("/backups", headers=headers(auditor))
    reviewed = await client.get(f"/backups/{theirs}", headers=headers(auditor))

    assert own.status_code == 200
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "BACKUP_NOT_FOUND")
    assert foreign_status.status_code == 404
    assert [b["backup_id"] for b in listed.json()["data"]] == [mine]
    assert {b["backup_id"] for b in audited.json()["data"]} == {mine, theirs}
    assert reviewed.status_code == 200


async def test_an_unknown_backup_is_not_found(
    client: httpx.AsyncClient, operator: IssuedApiKey
) -> None:
    response = await client.get(
        "/backups/00000000-0000-4000-8000-000000000000", headers=headers(operator)
    )
    assert (response.status_code, response.json()["error"]["code"]) == (404, "BACKUP_NOT_FOUND")


@pytest.mark.both_backends
async def test_list_filters(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey, clock: FixedClock
) -> None:
    await upload(client, operator, b"1", classification="PUBLIC", source_system="db-1")
    clock.advance(hours=1)
    await upload(client, operator, b"2", classification="SECRET", source_system="db-1")
    clock.advance(hours=1)
    await upload(client, operator, b"3", classification="SECRET", source_system="web-1")

    async def ids(query: str) -> list[str]:
        response = await client.get(f"/backups?{query}", headers=headers(operator))
        assert response.status_code == 200, response.text
        return [b["source_system"] + ":" + b["classification"] for b in response.json()["data"]]

    assert await ids("classification=SECRET") == ["web-1:SECRET", "db-1:SECRET"]
    assert await ids("source_system=db-1") == ["db-1:SECRET", "db-1:PUBLIC"]
    assert await ids("status=ACTIVE&classification=PUBLIC") == ["db-1:PUBLIC"]
    assert await ids("status=FAILED") == []
    assert await ids("created_from=2026-11-27T13:00:00Z") == ["web-1:SECRET", "db-1:SECRET"]
    assert await ids("created_to=2026-11-27T13:00:00Z") == ["db-1:PUBLIC"]
    assert await ids("created_from=2026-11-27T13:00:00Z&created_to=2026-11-27T14:00:00Z") == [
        "db-1:SECRET"
    ]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "cursor=not-a-cursor", "status=RUNNING", "created_from=yesterday"],
)
async def test_bad_list_parameters_are_refused(
    client: httpx.AsyncClient, operator: IssuedApiKey, query: str
) -> None:
    response = await client.get(f"/backups?{query}", headers=headers(operator))
    assert (response.status_code, response.json()["error"]["code"]) == (422, "VALIDATION_ERROR")


@pytest.mark.both_backends
async def test_pages_have_no_duplicates_or_gaps_while_new_backups_arrive(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey, clock: FixedClock
) -> None:
    existing = []
    for index in range(7):
        if index % 3 == 0:
            clock.advance(seconds=1)  # several rows share a timestamp: the id breaks ties
        response = await upload(client, operator, f"payload {index}".encode())
        existing.append(response.json()["data"]["backup_id"])

    seen: list[str] = []
    cursor = None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(f"/backups?{query}", headers=headers(operator))).json()
        seen += [b["backup_id"] for b in page["data"]]
        clock.advance(seconds=1)
        await upload(client, operator, b"arrives while paging")
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)), "a row was repeated"
    assert set(seen) == set(existing), "a row was skipped, or a new one slipped in behind"
    records = [await get_record(services, backup_id) for backup_id in seen]
    keys = [(r.created_at, str(r.id)) for r in records if r is not None]
    assert keys == sorted(keys, reverse=True)  # newest first; the id orders equal timestamps


@pytest.mark.both_backends
async def test_status_lists_the_persisted_transitions(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey, clock: FixedClock
) -> None:
    backup_id = (await upload(client, operator, b"x")).json()["data"]["backup_id"]
    clock.advance(minutes=5)
    admin = await create_api_key(services, Role.ADMIN)
    await client.delete(f"/backups/{backup_id}", headers=headers(admin))

    response = await client.get(f"/backups/{backup_id}/status", headers=headers(operator))

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "DELETED"
    assert [(t["from_status"], t["to_status"]) for t in data["transitions"]] == [
        (None, "PROCESSING"),
        ("PROCESSING", "ACTIVE"),
        ("ACTIVE", "DELETED"),
    ]
    assert data["transitions"][-1]["at"] == "2026-11-27T12:05:00Z"
    assert set(data["transitions"][0]) == {"from_status", "to_status", "at", "reason"}


# -- delete --------------------------------------------------------------------------------


@pytest.mark.both_backends
@pytest.mark.parametrize("storage_backend", ["local", "s3"])
async def test_delete_removes_the_ciphertext_and_keeps_the_metadata(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    backup_id = (await upload(client, operator, os.urandom(5000))).json()["data"]["backup_id"]
    admin = await create_api_key(services, Role.ADMIN)

    response = await client.delete(f"/backups/{backup_id}", headers=headers(admin))
    again = await client.delete(f"/backups/{backup_id}", headers=headers(admin))

    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "DELETED"
    assert await stored_objects(services.object_store, backup_id) == {
        "data.enc": False,
        "dek.wrapped": False,
    }
    metadata = await client.get(f"/backups/{backup_id}", headers=headers(operator))
    assert metadata.json()["data"]["status"] == "DELETED"
    assert metadata.json()["data"]["checksum_ciphertext"] is not None
    assert (again.status_code, again.json()["error"]["code"]) == (409, "INVALID_STATE_TRANSITION")
    entries = await entries_for(services.db, f"backup:{backup_id}")
    assert [e.action for e in entries][-2:] == ["POLICY_CHECK_ALLOW", "BACKUP_DELETE"]
    assert entries[-1].actor_id == admin.record.id
    await assert_chain_valid(services.db)


async def test_delete_needs_an_admin(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    backup_id = (await upload(client, operator, b"x")).json()["data"]["backup_id"]
    auditor = await create_api_key(services, Role.AUDITOR)

    for key in (operator, auditor):
        response = await client.delete(f"/backups/{backup_id}", headers=headers(key))
        assert (response.status_code, response.json()["error"]["code"]) == (403, "FORBIDDEN_ROLE")
    assert await stored_objects(services.object_store, backup_id) == {
        "data.enc": True,
        "dek.wrapped": True,
    }


@pytest.mark.parametrize("settings_overrides", [{"max_upload_bytes": 10}])
async def test_a_failed_backup_cannot_be_deleted(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    await upload(client, operator, b"more than ten bytes")
    record = await only_record(services)
    admin = await create_api_key(services, Role.ADMIN)

    response = await client.delete(f"/backups/{record.id}", headers=headers(admin))

    assert (response.status_code, response.json()["error"]["code"]) == (
        409,
        "INVALID_STATE_TRANSITION",
    )


# -- authorisation and policy --------------------------------------------------------------


async def test_auditors_may_not_submit_backups(
    client: httpx.AsyncClient, services: Services
) -> None:
    auditor = await create_api_key(services, Role.AUDITOR)

    response = await upload(client, auditor, b"x")

    assert (response.status_code, response.json()["error"]["code"]) == (403, "FORBIDDEN_ROLE")
    await assert_nothing_created(services)


@pytest.mark.both_backends
async def test_a_deny_record_refuses_with_its_name_and_leaves_evidence(
    client: httpx.AsyncClient,
    services: Services,
    operator: IssuedApiKey,
    bootstrap_key: IssuedApiKey,
    clock: FixedClock,
) -> None:
    created = await client.post(
        "/admin/policies",
        headers=headers(bootstrap_key),
        json={
            "name": "no-legacy-systems",
            "effect": "deny",
            "priority": 10,
            "rule": {"operations": ["backup"], "source_systems": ["legacy-*"]},
        },
    )
    assert created.status_code == 201, created.text

    denied = await upload(client, operator, b"x", source_system="legacy-erp")
    allowed = await upload(client, operator, b"x", source_system="modern-erp")

    assert denied.status_code == 403
    error = denied.json()["error"]
    assert error["code"] == "POLICY_DENIED"
    assert error["details"] == {"rule": "no-legacy-systems", "reason_category": "CUSTOM_POLICY"}
    assert allowed.status_code == 201
    assert await count_records(services) == 1
    checks = [e for e in await audit_entries(services.db) if e.action.startswith("POLICY_CHECK")]
    assert [(e.action, e.result) for e in checks] == [
        ("POLICY_CHECK_DENY", "DENIED"),
        ("POLICY_CHECK_ALLOW", "SUCCESS"),
    ]
    assert checks[0].details["rule"] == "no-legacy-systems"
    assert checks[0].details["source_system"] == "legacy-erp"
    assert checks[0].actor_id == operator.record.id


@pytest.mark.both_backends
async def test_lockdown_refuses_backups_with_423(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    async with services.db.transaction(write=True) as tx:
        state = await tx.system_state.get(for_update=True)
        state.incident_level = 3
        state.incident_changed_at = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)

    response = await upload(client, operator, b"x")

    assert response.status_code == 423
    assert response.json()["error"]["code"] == "INCIDENT_LOCKDOWN"
    assert response.json()["error"]["details"]["reason_category"] == "INCIDENT_LOCKDOWN"
    await assert_nothing_created(services)
    last = (await audit_entries(services.db))[-1]
    assert (last.action, last.incident_level) == ("AUTHZ_DENY", 3)
    assert last.details == {"permission": "backup:create", "reason": "INCIDENT_LOCKDOWN"}


async def test_a_require_mfa_record_asks_for_a_totp_code(
    client: httpx.AsyncClient, services: Services, bootstrap_key: IssuedApiKey, clock: FixedClock
) -> None:
    await client.post(
        "/admin/policies",
        headers=headers(bootstrap_key),
        json={
            "name": "mfa-for-secrets",
            "effect": "require_mfa",
            "rule": {"operations": ["backup"], "classifications": ["SECRET"]},
        },
    )
    admin = await create_api_key(services, Role.ADMIN)

    without = await upload(client, admin, b"x", classification="SECRET")
    with_code = await upload(
        client,
        admin,
        b"x",
        classification="SECRET",
        extra_headers={"X-MFA-Token": headers(admin, totp_at=clock.now())["X-MFA-Token"]},
    )

    assert without.status_code == 401
    assert without.json()["error"]["code"] == "AUTH_MFA_REQUIRED"
    assert without.json()["error"]["details"]["rule"] == "mfa-for-secrets"
    assert with_code.status_code == 201, with_code.text


@pytest.mark.both_backends
async def test_a_successful_backup_leaves_its_audit_trail_in_order(
    client: httpx.AsyncClient, services: Services, operator: IssuedApiKey
) -> None:
    response = await upload(client, operator, os.urandom(2000), source_system="db-9")
    backup_id = response.json()["data"]["backup_id"]

    entries = await entries_for(services.db, f"backup:{backup_id}")

    assert [e.action for e in entries] == [
        "POLICY_CHECK_ALLOW",
        "BACKUP_START",
        "KEY_WRAP",
        "BACKUP_STORED",
        "BACKUP_COMPLETE",
    ]
    assert all(e.actor_id == operator.record.id for e in entries)
    assert entries[2].details["key_version"] == "P-001"
    assert (
        entries[3].details["checksum_ciphertext"] == response.json()["data"]["checksum_ciphertext"]
    )
    values = [str(value) for entry in entries for value in entry.details.values()]
    assert not [v for v in values if re.fullmatch(r"[0-9a-fA-F]{64}", v)]  # no raw 256-bit key
    await assert_chain_valid(services.db)
