"""Object store on any S3-compatible service (AWS S3, MinIO, Ceph RGW), via aiobotocore.

Objects are streamed up as multipart uploads with up to ``part_concurrency`` parts
(``SSBG_S3_PART_CONCURRENCY``, default 4) in flight at once, so a distant store's round trips
overlap instead of adding up. Memory stays bounded whatever the object's size: at most
``part_concurrency`` part buffers being sent plus the one being filled, because ``write``
waits for a free slot before it cuts the next part. Parts may finish in any order; the upload
is completed with them listed in part-number order. On any failure — a part, the producer, a
cancellation, the completion — the parts still in flight are cancelled and awaited and the
upload is aborted, so no partial object ever becomes visible and no task outlives the writer.
Objects smaller than one part are sent with a single ``PutObject`` when the writer closes.

Every request body is SHA-256 signed by botocore on the event loop (about 9 ms per 8 MiB part,
a ceiling near 1 GB/s, well above what a store is fed here); no other checksum is computed
(``request_checksum_calculation="when_required"``).
"""

import asyncio
import io
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from ssbg.domain.errors import StorageUnavailable
from ssbg.infrastructure.storage.errors import ObjectMissing

PART_SIZE = 8 * 1024 * 1024  # S3 requires ≥ 5 MiB for every part but the last
DEFAULT_PART_CONCURRENCY = 4
MAX_CONNECTIONS = 64
_FAILURES = (BotoCoreError, ClientError, aiohttp.ClientError, OSError, asyncio.TimeoutError)
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


def _is_missing(exc: BaseException) -> bool:
    return (
        isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in _MISSING_CODES
    )


def _part_body(buffer: bytearray, size: int) -> io.BytesIO:
    """The first ``size`` bytes of ``buffer`` as the body of an ``UploadPart``, copied once.

    A ``BytesIO`` that owns its bytes: botocore would wrap ``bytes`` in a ``BytesIO`` sharing
    them, which aiohttp's payload (``getbuffer``) then copies — two copies of every part in
    flight instead of one.
    """
    body = io.BytesIO()
    with memoryview(buffer) as view:
        body.write(view[:size])
    body.seek(0)
    return body


class _S3Writer:
    def __init__(self, store: "S3ObjectStore", key: str, concurrency: int) -> None:
        self._store = store
        self._key = key
        self._concurrency = concurrency
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._next_part = 1
        self._etags: dict[int, str] = {}
        self._in_flight: set[asyncio.Task[None]] = set()

    async def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= PART_SIZE:
            await self._wait_for_a_slot()  # before cutting the part: memory stays bounded
            part = _part_body(self._buffer, PART_SIZE)
            del self._buffer[:PART_SIZE]
            await self._start_part(part)

    async def _wait_for_a_slot(self) -> None:
        self._reap()
        while len(self._in_flight) >= self._concurrency:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            self._reap()

    def _reap(self) -> None:
        """Forget the finished parts; raise the failure of any of them."""
        done = {task for task in self._in_flight if task.done()}
        self._in_flight -= done
        failures = [task.exception() for task in done]  # retrieves every one: none is "lost"
        for failure in failures:
            if failure is not None:
                raise failure

    async def _start_part(self, data: io.BytesIO) -> None:
        if self._upload_id is None:
            client = await self._store.client()
            try:
                created = await client.create_multipart_upload(
                    Bucket=self._store.bucket, Key=self._key
                )
            except _FAILURES:
                raise StorageUnavailable() from None
            self._upload_id = created["UploadId"]
        number, self._next_part = self._next_part, self._next_part + 1
        self._in_flight.add(asyncio.create_task(self._upload_part(number, data)))

    async def _upload_part(self, number: int, data: io.BytesIO) -> None:
        client = await self._store.client()
        try:
            response = await client.upload_part(
                Bucket=self._store.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            )
        except _FAILURES:
            raise StorageUnavailable() from None
        self._etags[number] = response["ETag"]

    async def finish(self) -> None:
        if self._upload_id is None:
            client = await self._store.client()
            try:
                await client.put_object(
                    Bucket=self._store.bucket, Key=self._key, Body=bytes(self._buffer)
                )
            except _FAILURES:
                raise StorageUnavailable() from None
            return
        # Every full part is stored before the short last one is sent: after a failure no
        # further part goes out, and the upload is aborted with the least sent for nothing.
        while self._in_flight:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            self._reap()
        if self._buffer:
            number, self._next_part = self._next_part, self._next_part + 1
            await self._upload_part(number, _part_body(self._buffer, len(self._buffer)))
            self._buffer.clear()
        parts = [{"PartNumber": n, "ETag": self._etags[n]} for n in sorted(self._etags)]
        client = await self._store.client()
        try:
            await client.complete_multipart_upload(
                Bucket=self._store.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        except _FAILURES:
            raise StorageUnavailable() from None

    async def abort(self) -> None:
        """Cancel and await the parts in flight, then abort the upload (best effort)."""
        self._buffer.clear()
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight.clear()
        if self._upload_id is None:
            return
        try:
            client = await self._store.client()
            await client.abort_multipart_upload(
                Bucket=self._store.bucket, Key=self._key, UploadId=self._upload_id
            )
        except (*_FAILURES, StorageUnavailable):
            # The store is unreachable; a bucket lifecycle rule for incomplete multipart
            # uploads (see README) reclaims what we could not abort. Nothing is visible.
            pass


class S3ObjectStore:
    backend_name = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        create_bucket: bool,
        part_concurrency: int = DEFAULT_PART_CONCURRENCY,
    ) -> None:
        if part_concurrency < 1:
            raise ValueError("part_concurrency must be at least 1")
        self.bucket = bucket
        self.part_concurrency = part_concurrency
        self._endpoint_url = endpoint_url
        self._region = region
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._create_bucket = create_bucket
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                stack = AsyncExitStack()
                config = AioConfig(
                    connect_timeout=5,
                    read_timeout=60,
                    retries={"max_attempts": 2, "mode": "standard"},
                    s3={"addressing_style": "path"},
                    # Concurrent uploads each hold a connection while a part is in flight.
                    max_pool_connections=MAX_CONNECTIONS,
                    # botocore ≥ 1.36 adds CRC32 checksum headers to every upload by default;
                    # MinIO and Ceph RGW releases that predate them reject or mishandle them.
                    # Integrity is ours anyway (AES-GCM tags, SHA-512 of the ciphertext).
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                try:
                    client = await stack.enter_async_context(
                        get_session().create_client(
                            "s3",
                            endpoint_url=self._endpoint_url,
                            region_name=self._region,
                            aws_access_key_id=self._access_key_id,
                            aws_secret_access_key=self._secret_access_key,
                            config=config,
                        )
                    )
                    if self._create_bucket:
                        await self._ensure_bucket(client)
                except _FAILURES:
                    await stack.aclose()
                    raise StorageUnavailable() from None
                self._stack, self._client = stack, client
        return self._client

    async def _ensure_bucket(self, client: Any) -> None:
        try:
            await client.head_bucket(Bucket=self.bucket)
        except ClientError:
            arguments: dict[str, Any] = {"Bucket": self.bucket}
            if self._region != "us-east-1":
                arguments["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
            try:
                await client.create_bucket(**arguments)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    @asynccontextmanager
    async def open_writer(self, key: str) -> AsyncIterator[_S3Writer]:
        writer = _S3Writer(self, key, self.part_concurrency)
        try:
            yield writer
            await writer.finish()
        except BaseException:
            await writer.abort()
            raise

    async def put_bytes(self, key: str, data: bytes) -> None:
        async with self.open_writer(key) as writer:
            await writer.write(data)

    async def read_stream(
        self, key: str, chunk_size: int, *, first_chunk_size: int | None = None
    ) -> AsyncIterator[bytes]:
        client = await self.client()
        try:
            response = await client.get_object(Bucket=self.bucket, Key=key)
        except _FAILURES as exc:
            if _is_missing(exc):
                raise ObjectMissing(key) from None
            raise StorageUnavailable() from None
        body = response["Body"]
        size = first_chunk_size or chunk_size
        try:
            while True:
                try:
                    chunk = await body.read(size)
                except _FAILURES:
                    raise StorageUnavailable() from None
                if not chunk:
                    return
                size = chunk_size
                yield chunk
        finally:
            body.close()

    async def read_bytes(self, key: str) -> bytes:
        parts = [chunk async for chunk in self.read_stream(key, PART_SIZE)]
        return b"".join(parts)

    async def size(self, key: str) -> int:
        client = await self.client()
        try:
            response = await client.head_object(Bucket=self.bucket, Key=key)
        except _FAILURES as exc:
            if _is_missing(exc):
                raise ObjectMissing(key) from None
            raise StorageUnavailable() from None
        return int(response["ContentLength"])

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except ObjectMissing:
            return False
        return True

    async def delete(self, key: str) -> None:
        client = await self.client()
        try:
            await client.delete_object(Bucket=self.bucket, Key=key)
        except _FAILURES as exc:
            if not _is_missing(exc):
                raise StorageUnavailable() from None

    async def discard_prefix(self, prefix: str) -> None:
        client = await self.client()
        try:
            paginator = client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    await client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    await client.delete_object(Bucket=self.bucket, Key=item["Key"])
        except _FAILURES as exc:
            if not _is_missing(exc):
                raise StorageUnavailable() from None

    async def check_writable(self) -> None:
        key = f"health/probe-{secrets.token_hex(8)}"
        await self.put_bytes(key, b"ssbg-health-probe")
        if await self.read_bytes(key) != b"ssbg-health-probe":
            raise StorageUnavailable("The object store returned different bytes than written.")
        await self.delete(key)

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack, self._client = None, None
