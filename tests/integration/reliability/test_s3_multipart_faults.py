"""The fault matrix, S3 row: the object store fails at each step of a multipart upload.

The gateway's S3 store talks to moto through :class:`S3FaultProxy`, which fails one step
(CreateMultipartUpload, UploadPart N, CompleteMultipartUpload, AbortMultipartUpload, the
PutObject of ``dek.wrapped``) every time until disarmed, so the SDK's own retries meet the same
fault. Each cell asserts what the client sees (503 ``STORAGE_UNAVAILABLE``), the record and its
audit entries (``FAILED``, reason ``STORAGE_UNAVAILABLE``, ``BACKUP_FAILED``), that nothing is
left in the store once the fault is gone and recovery ran, and then the whole fault contract
(docs/reliability.md).

SSBG streams ``data.enc`` in parts of ``PART_SIZE`` (8 MiB; moto, like S3, wants ≥ 5 MiB for
every part but the last). A plaintext of ``PART_SIZE`` bytes encrypts to a little more, so it
is uploaded as two parts (8 MiB and a few KiB): the smallest payload that takes every step.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.infrastructure.db.models import BackupMetadata
from ssbg.infrastructure.storage.layout import data_key
from ssbg.infrastructure.storage.s3 import PART_SIZE
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.conftest import s3_settings
from tests.support.audit import entries_for
from tests.support.backups import (
    decrypt_stored,
    get_record,
    objects_left,
    only_record,
    upload,
)
from tests.support.factories import create_api_key, headers
from tests.support.fault_contract import assert_fault_contract, marked_payload
from tests.support.processes import MotoServer
from tests.support.s3_faults import Failure, S3FaultProxy, Step, skip_retry_backoff

pytestmark = pytest.mark.both_backends

ONE_PUT = 64 * 1024  # under one part: data.enc is a single PutObject
TWO_PARTS = PART_SIZE  # encrypted: one full part and a short last one
THREE_PARTS = 2 * PART_SIZE  # encrypted: two full parts and a short last one


@pytest.fixture
async def s3_faults(moto_server: MotoServer) -> AsyncIterator[S3FaultProxy]:
    proxy = await S3FaultProxy(moto_server.url).start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def settings_overrides(s3_faults: S3FaultProxy) -> dict[str, object]:
    return s3_settings(s3_faults.url)  # a bucket of the test's own, reached through the proxy


@pytest.fixture(autouse=True)
def no_retry_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_retry_backoff(monkeypatch)


@dataclass(frozen=True)
class Keys:
    operator: IssuedApiKey
    admin: IssuedApiKey


@pytest.fixture
async def keys(services: Services, bootstrap_key: IssuedApiKey) -> Keys:
    return Keys(
        operator=await create_api_key(services, Role.OPERATOR),
        admin=await create_api_key(services, Role.ADMIN),
    )


async def _backup(client: httpx.AsyncClient, keys: Keys, payload: bytes) -> httpx.Response:
    return await upload(client, keys.operator, payload, mode="raw", source_system="s3-faults")


async def _assert_failed_for_storage(
    client: httpx.AsyncClient, services: Services, keys: Keys, response: httpx.Response
) -> BackupMetadata:
    """Point 1 of the contract, and the evidence: a clear 503, the record FAILED with its
    reason, and the audit entries of a backup that started and failed."""
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "STORAGE_UNAVAILABLE"
    assert error["message"]
    assert error["request_id"]
    record = await only_record(services)
    assert (record.status, record.failure_reason) == ("FAILED", "STORAGE_UNAVAILABLE")
    assert record.completed_at is None
    entries = await entries_for(services.db, f"backup:{record.id}")
    assert [e.action for e in entries] == [
        "POLICY_CHECK_ALLOW",
        "BACKUP_START",
        "KEY_WRAP",
        "BACKUP_FAILED",
    ]
    assert entries[-1].result == "FAILED"
    assert entries[-1].details["reason"] == "STORAGE_UNAVAILABLE"
    status = await client.get(f"/backups/{record.id}/status", headers=headers(keys.operator))
    last = status.json()["data"]["transitions"][-1]
    assert (last["to_status"], last["reason"]) == ("FAILED", "STORAGE_UNAVAILABLE")
    return record


async def _assert_recovered(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    proxy: S3FaultProxy,
    backup_id: UUID,
    payload: bytes,
    tmp_path: Path,
) -> None:
    """The fault is gone: the recovery sweep leaves nothing of the failed backup in the store
    (no object, no incomplete multipart upload), then points 2 to 5 of the contract hold."""
    proxy.disarm()
    await services.backup_recovery.recover()
    record = await get_record(services, backup_id)
    assert record is not None
    assert not record.cleanup_pending
    assert await objects_left(services, backup_id) == []
    await _assert_contract(client, services, keys, payload, tmp_path)


async def _assert_contract(
    client: httpx.AsyncClient, services: Services, keys: Keys, payload: bytes, tmp_path: Path
) -> None:
    await assert_fault_contract(
        services,
        payloads=[payload],
        roots=[services.settings.data_dir, tmp_path],
        http=client,
        operator=keys.operator,
        admin=keys.admin,
    )


async def test_create_multipart_upload_failing_fails_the_backup(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    s3_faults: S3FaultProxy,
    tmp_path: Path,
) -> None:
    rule = s3_faults.arm(Step.CREATE, Failure.ERROR_503)
    payload = marked_payload(TWO_PARTS)

    response = await _backup(client, keys, payload)

    record = await _assert_failed_for_storage(client, services, keys, response)
    assert rule.hits >= 1
    assert s3_faults.steps(Step.PART) == []  # no upload was ever created
    assert await objects_left(services, record.id) == []
    await _assert_recovered(client, services, keys, s3_faults, record.id, payload, tmp_path)


async def test_the_first_part_failing_fails_the_backup_and_aborts_the_upload(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    s3_faults: S3FaultProxy,
    tmp_path: Path,
) -> None:
    rule = s3_faults.arm(Step.PART, Failure.DROP, part_number=1)
    payload = marked_payload(TWO_PARTS)

    response = await _backup(client, keys, payload)

    record = await _assert_failed_for_storage(client, services, keys, response)
    assert rule.hits >= 1
    assert {seen.part_number for seen in s3_faults.steps(Step.PART)} == {1}
    assert s3_faults.steps(Step.COMPLETE) == []
    assert [seen.failed for seen in s3_faults.steps(Step.ABORT)] == [False]
    assert await objects_left(services, record.id) == []  # aborted at once
    await _assert_recovered(client, services, keys, s3_faults, record.id, payload, tmp_path)


async def test_a_later_part_failing_mid_stream_fails_the_backup_and_aborts_the_upload(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    s3_faults: S3FaultProxy,
    tmp_path: Path,
) -> None:
    rule = s3_faults.arm(Step.PART, Failure.ERROR_500, part_number=2)
    payload = marked_payload(THREE_PARTS)

    response = await _backup(client, keys, payload)

    record = await _assert_failed_for_storage(client, services, keys, response)
    assert rule.hits >= 1
    parts = s3_faults.steps(Step.PART)
    assert [p.part_number for p in parts if not p.failed] == [1]  # part 1 was stored
    assert 3 not in {p.part_number for p in parts}  # the stream stopped at part 2
    assert s3_faults.steps(Step.COMPLETE) == []
    assert [seen.failed for seen in s3_faults.steps(Step.ABORT)] == [False]
    assert await objects_left(services, record.id) == []
    await _assert_recovered(client, services, keys, s3_faults, record.id, payload, tmp_path)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(Failure.ERROR_503, id="refused"),
        pytest.param(Failure.ANSWER_LOST, id="answer-lost"),
    ],
)
async def test_complete_multipart_upload_failing_fails_the_backup(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    s3_faults: S3FaultProxy,
    tmp_path: Path,
    failure: Failure,
) -> None:
    """Refused: the upload is aborted. Answer lost: the store did complete ``data.enc`` and
    only its answer was lost, so the object is visible there — the failed backup's cleanup
    deletes it."""
    rule = s3_faults.arm(Step.COMPLETE, failure)
    payload = marked_payload(TWO_PARTS)

    response = await _backup(client, keys, payload)

    record = await _assert_failed_for_storage(client, services, keys, response)
    assert rule.hits >= 1
    assert {p.part_number for p in s3_faults.steps(Step.PART) if not p.failed} == {1, 2}
    assert s3_faults.steps(Step.PUT) == []  # dek.wrapped is never written
    assert await objects_left(services, record.id) == []
    await _assert_recovered(client, services, keys, s3_faults, record.id, payload, tmp_path)


async def test_abort_failing_after_a_part_failed_leaves_cleanup_pending_for_the_sweep(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    s3_faults: S3FaultProxy,
    tmp_path: Path,
) -> None:
    """A part fails and the store refuses the abort as well: the incomplete upload (part 1,
    8 MiB of ciphertext) stays in the store, the record says so (``cleanup_pending``), and the
    recovery sweep aborts it once the store is back — not before."""
    part = s3_faults.arm(Step.PART, Failure.ERROR_503, part_number=2)
    abort = s3_faults.arm(Step.ABORT, Failure.ERROR_500)
    payload = marked_payload(TWO_PARTS)

    response = await _backup(client, keys, payload)

    record = await _assert_failed_for_storage(client, services, keys, response)
    assert part.hits >= 1
    assert abort.hits >= 1
    assert record.cleanup_pending
    left = [f"upload:{data_key(record.id)}"]
    assert await objects_left(services, record.id) == left

    # While the store still refuses, a sweep retries, fails, and keeps the flag.
    hits = abort.hits
    report = await services.backup_recovery.recover()
    assert record.id not in report.cleaned
    assert abort.hits > hits
    still = await get_record(services, record.id)
    assert still is not None
    assert still.cleanup_pending
    assert await objects_left(services, record.id) == left

    s3_faults.disarm()
    report = await services.backup_recovery.recover()
    assert report.cleaned == [record.id]
    assert [seen.failed for seen in s3_faults.steps(Step.ABORT)][-1] is False
    await _assert_recovered(client, services, keys, s3_faults, record.id, payload, tmp_path)


async def test_the_wrapped_key_put_failing_after_data_completed_fails_the_backup(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    s3_faults: S3FaultProxy,
    tmp_path: Path,
) -> None:
    """``data.enc`` is complete and visible in the store when ``dek.wrapped`` cannot be
    written: the backup is not ``ACTIVE`` with one object, and the orphaned ``data.enc`` is
    deleted. (A payload under one part: ``data.enc`` is a single PutObject, written whole.)"""
    rule = s3_faults.arm(Step.PUT, Failure.DROP, key_suffix="dek.wrapped")
    payload = marked_payload(ONE_PUT)

    response = await _backup(client, keys, payload)

    record = await _assert_failed_for_storage(client, services, keys, response)
    assert rule.hits >= 1
    stored = [seen.key for seen in s3_faults.steps(Step.PUT) if not seen.failed]
    assert stored == [data_key(record.id)]
    assert await objects_left(services, record.id) == []
    await _assert_recovered(client, services, keys, s3_faults, record.id, payload, tmp_path)


async def test_a_part_failing_once_is_retried_and_the_backup_is_stored(
    client: httpx.AsyncClient,
    services: Services,
    keys: Keys,
    s3_faults: S3FaultProxy,
    tmp_path: Path,
) -> None:
    """A transient fault: the last part reaches the store but its answer is lost, once. The
    SDK sends it again (the same part number replaces the first copy) and the backup is stored
    intact — no false failure, and no duplicated bytes."""
    rule = s3_faults.arm(Step.PART, Failure.ANSWER_LOST, part_number=2, times=1)
    payload = marked_payload(TWO_PARTS)

    response = await _backup(client, keys, payload)

    assert response.status_code == 201, response.text
    assert rule.hits == 1
    assert [p.failed for p in s3_faults.steps(Step.PART) if p.part_number == 2] == [True, False]
    backup_id = str(response.json()["data"]["backup_id"])
    record = await get_record(services, backup_id)
    assert record is not None
    assert record.status == "ACTIVE"
    assert await objects_left(services, backup_id) == [
        data_key(record.id),
        record.wrapped_dek_ref,
    ]
    assert await decrypt_stored(services, record) == payload  # verified, byte for byte
    await _assert_contract(client, services, keys, payload, tmp_path)
