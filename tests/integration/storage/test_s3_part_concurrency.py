"""Parallel part uploads (``SSBG_S3_PART_CONCURRENCY``) against moto's S3 server over HTTP.

The store talks to moto through :class:`S3FaultProxy`, which counts the ``UploadPart``
requests in flight, can hold them (so "N in flight" is a state the test waits for, not a race
it hopes to win) and can fail one. What must hold: never more than N parts in flight, and N
reached; ``write`` waits when N are in flight (memory: N + 1 part buffers); parts finishing out
of order still make the object in order; any failure or cancellation aborts the upload with no
object visible and no task left running.
"""

import asyncio
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from ssbg.domain.enums import Role
from ssbg.domain.errors import StorageUnavailable
from ssbg.infrastructure.storage.s3 import PART_SIZE, S3ObjectStore
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from tests.conftest import s3_settings
from tests.support.audit import entries_for
from tests.support.backups import objects_left, only_record, upload
from tests.support.factories import create_api_key
from tests.support.processes import MotoServer
from tests.support.s3_faults import Failure, S3FaultProxy, Step, skip_retry_backoff
from tests.support.s3_stores import s3_store, uploads_in_progress

MIB = 1024 * 1024
KEY = "backups/parallel/data.enc"
DEADLINE_SECONDS = 60


@pytest.fixture
async def proxy(moto_server: MotoServer) -> AsyncIterator[S3FaultProxy]:
    started = await S3FaultProxy(moto_server.url).start()
    yield started
    await started.stop()


@pytest.fixture(autouse=True)
def no_retry_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_retry_backoff(monkeypatch)


def _part_tasks() -> list[asyncio.Task[object]]:
    """Part uploads still scheduled on the loop (none may outlive its writer)."""
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "_S3Writer._upload_part"
    ]


class Producer:
    """Writes ``data`` to ``store`` in 1 MiB chunks, counting the writes that returned."""

    def __init__(self, store: S3ObjectStore, data: bytes) -> None:
        self.store = store
        self.data = data
        self.written = 0

    async def run(self) -> None:
        async with self.store.open_writer(KEY) as writer:
            for offset in range(0, len(self.data), MIB):
                await writer.write(self.data[offset : offset + MIB])
                self.written += min(MIB, len(self.data) - offset)


async def _assert_aborted(store: S3ObjectStore, proxy: S3FaultProxy) -> None:
    assert await uploads_in_progress(store) == []
    assert not await store.exists(KEY)
    assert proxy.steps(Step.COMPLETE) == []
    assert [seen.failed for seen in proxy.steps(Step.ABORT)] == [False]
    assert _part_tasks() == []


@pytest.mark.parametrize("concurrency", [4, 1])
async def test_parts_in_flight_reach_the_limit_and_never_exceed_it(
    proxy: S3FaultProxy, concurrency: int
) -> None:
    store = s3_store(proxy.url, part_concurrency=concurrency)
    held = proxy.hold(Step.PART)
    parts = concurrency + 3
    producer = Producer(store, os.urandom(parts * PART_SIZE))
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            running = asyncio.create_task(producer.run())
            await proxy.wait_until(lambda: held.waiting >= concurrency)

            # N parts wait at the proxy; the writer took the bytes of those N and of the part
            # it is filling, and no more: the next write waits for a free slot.
            assert held.waiting == concurrency
            assert producer.written == (concurrency + 1) * PART_SIZE - MIB
            assert not running.done()

            held.release()
            await running
    finally:
        await store.close()

    assert proxy.peak[Step.PART] == concurrency
    numbers = [seen.part_number for seen in proxy.steps(Step.PART)]
    assert sorted(numbers) == list(range(1, parts + 1))
    assert await uploads_in_progress(store) == []
    assert _part_tasks() == []


async def test_parts_finishing_out_of_order_make_the_object_in_order(
    proxy: S3FaultProxy,
) -> None:
    """Five parts, three at a time, the first held until the three after it are stored."""
    store = s3_store(proxy.url, part_concurrency=3)
    first = proxy.hold(Step.PART, part_number=1)
    data = os.urandom(4 * PART_SIZE + 3 * MIB + 17)
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            running = asyncio.create_task(Producer(store, data).run())
            await proxy.wait_until(
                lambda: {seen.part_number for seen in proxy.answered} >= {2, 3, 4}
            )
            assert first.waiting == 1
            first.release()
            await running
        stored = await store.read_bytes(KEY)
    finally:
        await store.close()

    answered = [seen.part_number for seen in proxy.answered if seen.step is Step.PART]
    assert answered.index(1) > max(answered.index(n) for n in (2, 3, 4))
    assert sorted(answered) == [1, 2, 3, 4, 5]
    assert stored == data


async def test_a_part_failing_while_others_are_in_flight_aborts_the_upload(
    proxy: S3FaultProxy,
) -> None:
    """Part 2 fails while parts 1 and 3 are held in flight: the writer does not wait for them
    — it cancels them, aborts the upload and reports the store unavailable."""
    store = s3_store(proxy.url, part_concurrency=3)
    proxy.hold(Step.PART, part_number=1)
    proxy.hold(Step.PART, part_number=3)
    failing = proxy.arm(Step.PART, Failure.ERROR_500, part_number=2)
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            with pytest.raises(StorageUnavailable):
                await Producer(store, os.urandom(5 * PART_SIZE)).run()
        proxy.release_all()
        assert failing.hits >= 1
        assert {seen.part_number for seen in proxy.steps(Step.PART)} <= {1, 2, 3}
        await _assert_aborted(store, proxy)
    finally:
        await store.close()


async def test_cancelling_the_writer_aborts_the_upload_and_its_parts(
    proxy: S3FaultProxy,
) -> None:
    store = s3_store(proxy.url, part_concurrency=2)
    held = proxy.hold(Step.PART)
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            running = asyncio.create_task(Producer(store, os.urandom(4 * PART_SIZE)).run())
            await proxy.wait_until(lambda: held.waiting == 2)
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
        held.release()
        await _assert_aborted(store, proxy)
    finally:
        await store.close()


@pytest.fixture
def settings_overrides(proxy: S3FaultProxy) -> dict[str, object]:
    return {**s3_settings(proxy.url), "s3_part_concurrency": 3}


@pytest.mark.both_backends
async def test_a_backup_whose_part_fails_mid_upload_is_failed_with_nothing_stored(
    client: httpx.AsyncClient,
    services: Services,
    bootstrap_key: IssuedApiKey,
    proxy: S3FaultProxy,
) -> None:
    operator = await create_api_key(services, Role.OPERATOR)
    failing = proxy.arm(Step.PART, Failure.ERROR_503, part_number=3)

    response = await upload(client, operator, os.urandom(4 * PART_SIZE), mode="raw")

    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert failing.hits >= 1
    record = await only_record(services)
    assert (record.status, record.failure_reason) == ("FAILED", "STORAGE_UNAVAILABLE")
    entries = await entries_for(services.db, f"backup:{record.id}")
    assert entries[-1].action == "BACKUP_FAILED"
    assert await objects_left(services, record.id) == []
    assert proxy.steps(Step.COMPLETE) == []
    assert _part_tasks() == []
