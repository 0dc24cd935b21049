"""The pipelined encryption of a stream: output equals the sequential format; failures stop it."""

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.errors import PayloadTooLarge, StorageUnavailable
from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor
from ssbg.infrastructure.crypto.object_format import (
    ObjectHeader,
    SegmentSealer,
    dek_resolver_for,
    generate_dek,
    wrap_dek,
)
from ssbg.infrastructure.crypto.stream_encryption import encrypt_stream

KEY = ec.generate_private_key(ec.SECP384R1())
SEGMENT = 4096


class MemoryWriter:
    def __init__(self, fail_after: int | None = None) -> None:
        self.data = bytearray()
        self.writes = 0
        self._fail_after = fail_after

    async def write(self, chunk: bytes) -> None:
        self.writes += 1
        if self._fail_after is not None and self.writes > self._fail_after:
            raise StorageUnavailable()
        self.data += chunk


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[offset : offset + size]


async def seal(
    data: bytes, *, chunk: int = 1000, writer: MemoryWriter | None = None, limit: int = 10**9
) -> tuple[MemoryWriter, object, bytes]:
    backup = uuid4()
    dek = generate_dek()
    header = ObjectHeader(backup, "P-001", SEGMENT).encode()
    writer = writer or MemoryWriter()
    result = await encrypt_stream(
        chunks_of(data, chunk),
        sealer=SegmentSealer(dek, header),
        header=header,
        writer=writer,
        segment_size=SEGMENT,
        max_plaintext_bytes=limit,
        in_flight=2,
    )
    return writer, result, wrap_dek(dek, KEY.public_key(), backup, "P-001")


@pytest.mark.parametrize("size", [1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 10 * SEGMENT, 123_457])
@pytest.mark.parametrize("chunk", [1000, SEGMENT, 3 * SEGMENT + 5])
async def test_stream_decrypts_back_with_both_checksums(size: int, chunk: int) -> None:
    data = os.urandom(size)
    writer, result, wrapped = await seal(data, chunk=chunk)

    decryptor = ObjectDecryptor(
        dek_resolver_for(wrapped, KEY, expected_key_version="P-001"), expected_backup_id=None
    )
    plaintext = b"".join(decryptor.feed(bytes(writer.data))) + decryptor.finish()
    assert plaintext == data
    assert result.original_size == size  # type: ignore[attr-defined]
    assert result.encrypted_size == len(writer.data)  # type: ignore[attr-defined]
    assert result.checksum_plaintext == hashlib.sha512(data).hexdigest()  # type: ignore[attr-defined]
    assert result.checksum_ciphertext == hashlib.sha512(writer.data).hexdigest()  # type: ignore[attr-defined]
    assert result.segments == max(1, -(-size // SEGMENT))  # type: ignore[attr-defined]


async def test_more_than_the_limit_is_refused_while_streaming() -> None:
    with pytest.raises(PayloadTooLarge):
        await seal(os.urandom(10 * SEGMENT), limit=5 * SEGMENT)


async def test_a_store_failure_stops_the_stream_early() -> None:
    consumed = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal consumed
        while True:
            consumed += 1
            await asyncio.sleep(0)
            yield os.urandom(SEGMENT)

    backup = uuid4()
    header = ObjectHeader(backup, "P-001", SEGMENT).encode()
    with pytest.raises(StorageUnavailable):
        await encrypt_stream(
            endless(),
            sealer=SegmentSealer(generate_dek(), header),
            header=header,
            writer=MemoryWriter(fail_after=3),
            segment_size=SEGMENT,
            max_plaintext_bytes=10**12,
            in_flight=2,
        )
    assert consumed < 50


async def test_an_empty_stream_has_no_segments() -> None:
    with pytest.raises(ValueError, match="empty"):
        await seal(b"")
