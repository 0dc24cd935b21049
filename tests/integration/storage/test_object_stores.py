"""The object-store contract, on the local filesystem and over HTTP against moto's S3 server."""

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ssbg.domain.errors import StorageUnavailable
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.infrastructure.storage.errors import ObjectMissing
from ssbg.infrastructure.storage.local import LocalObjectStore
from ssbg.infrastructure.storage.s3 import PART_SIZE, S3ObjectStore
from tests.support.file_modes import usual_umask, wrong_modes_under
from tests.support.processes import MotoServer
from tests.support.s3_stores import s3_store, uploads_in_progress

MIB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    built: ObjectStore
    if request.param == "local":
        built = LocalObjectStore(tmp_path / "objects")
    else:
        moto: MotoServer = request.getfixturevalue("moto_server")
        built = s3_store(moto.url)
    try:
        yield built
    finally:
        await built.close()


async def test_small_object_round_trips(store: ObjectStore) -> None:
    await store.put_bytes("backups/x/dek.wrapped", b"wrapped-key-bytes")

    assert await store.exists("backups/x/dek.wrapped")
    assert await store.size("backups/x/dek.wrapped") == 17
    assert await store.read_bytes("backups/x/dek.wrapped") == b"wrapped-key-bytes"


async def test_large_object_streams_in_parts_and_reads_back_in_chunks(store: ObjectStore) -> None:
    data = os.urandom(2 * PART_SIZE + 3 * MIB + 17)
    async with store.open_writer("backups/big/data.enc") as writer:
        for offset in range(0, len(data), MIB):
            await writer.write(data[offset : offset + MIB])

    chunks = [chunk async for chunk in store.read_stream("backups/big/data.enc", MIB)]

    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= MIB
    assert await store.size("backups/big/data.enc") == len(data)


async def test_a_stream_can_start_with_a_shorter_first_chunk(store: ObjectStore) -> None:
    """How the restore service reads ``data.enc``: the header alone, then whole segments."""
    data = os.urandom(5 * MIB + 45)
    await store.put_bytes("backups/h/data.enc", data)

    chunks = [
        chunk async for chunk in store.read_stream("backups/h/data.enc", MIB, first_chunk_size=45)
    ]

    assert b"".join(chunks) == data
    assert len(chunks[0]) <= 45
    assert max(len(chunk) for chunk in chunks) <= MIB


async def test_a_failure_inside_the_writer_leaves_no_object_and_no_upload(
    store: ObjectStore,
) -> None:
    async def write_then_fail() -> None:
        async with store.open_writer("backups/broken/data.enc") as writer:
            await writer.write(os.urandom(PART_SIZE + MIB))  # one part already uploaded
            raise RuntimeError("the producer failed")

    with pytest.raises(RuntimeError):
        await write_then_fail()

    assert not await store.exists("backups/broken/data.enc")
    if isinstance(store, S3ObjectStore):
        assert await uploads_in_progress(store) == []
    if isinstance(store, LocalObjectStore):
        assert list(store.root.rglob("*.partial")) == []


async def test_missing_objects_are_reported_as_missing(store: ObjectStore) -> None:
    assert not await store.exists("backups/none/data.enc")
    with pytest.raises(ObjectMissing):
        await store.size("backups/none/data.enc")
    with pytest.raises(ObjectMissing):
        await store.read_bytes("backups/none/data.enc")
    await store.delete("backups/none/data.enc")  # deleting an absent object is fine


async def test_discard_prefix_removes_objects_and_unfinished_writes(store: ObjectStore) -> None:
    await store.put_bytes("backups/a/dek.wrapped", b"k")
    await store.put_bytes("backups/b/dek.wrapped", b"other backup")
    if isinstance(store, S3ObjectStore):
        client = await store.client()
        await client.create_multipart_upload(Bucket=store.bucket, Key="backups/a/data.enc")
    if isinstance(store, LocalObjectStore):
        (store.root / "backups" / "a" / ".data.enc.0123.partial").write_bytes(b"partial")

    await store.discard_prefix("backups/a/")
    await store.discard_prefix("backups/never-existed/")

    assert not await store.exists("backups/a/dek.wrapped")
    assert await store.exists("backups/b/dek.wrapped")
    if isinstance(store, S3ObjectStore):
        assert await uploads_in_progress(store) == []
    if isinstance(store, LocalObjectStore):
        assert not (store.root / "backups" / "a").exists()


async def test_check_writable_probes_the_store(store: ObjectStore) -> None:
    await store.check_writable()


async def test_local_objects_are_0600_in_folders_0700_whatever_the_umask(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "volume" / "objects")
    with usual_umask():
        await store.put_bytes(f"backups/{uuid.uuid4()}/data.enc", b"ciphertext")
        await store.check_writable()

    assert wrong_modes_under(tmp_path / "volume") == {}


async def test_s3_store_creates_its_bucket_in_development(moto_server: MotoServer) -> None:
    bucket = f"ssbg-new-{uuid.uuid4().hex[:12]}"
    store = s3_store(moto_server.url, bucket)
    try:
        await store.put_bytes("probe", b"1")
        client = await store.client()
        names = [b["Name"] for b in (await client.list_buckets())["Buckets"]]
        assert bucket in names
    finally:
        await store.close()


async def test_s3_store_reports_an_unreachable_server_as_unavailable(tmp_path: Path) -> None:
    moto = MotoServer(tmp_path).start()
    store = s3_store(moto.url)
    try:
        await store.put_bytes("backups/x/dek.wrapped", b"before")
        moto.kill()
        with pytest.raises(StorageUnavailable):
            async with store.open_writer("backups/x/data.enc") as writer:
                await writer.write(os.urandom(PART_SIZE + 1))
        with pytest.raises(StorageUnavailable):
            await store.read_bytes("backups/x/dek.wrapped")
        with pytest.raises(StorageUnavailable):
            await store.discard_prefix("backups/x/")
    finally:
        await store.close()
        moto.stop()


async def test_local_store_reports_a_directory_replaced_by_a_file(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    (tmp_path / "objects").mkdir()
    (tmp_path / "objects" / "backups").write_bytes(b"not a directory")

    with pytest.raises(StorageUnavailable):
        await store.put_bytes("backups/x/data.enc", b"data")
    with pytest.raises(StorageUnavailable):
        await store.read_bytes("backups/x/data.enc")
