"""The pipelines with compression (format version 2): encryption compresses on the seal lane,
verification and download decompress on worker lanes, never on the event loop, and agree with
the format under every chunking."""

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from ssbg.domain.enums import Compression
from ssbg.domain.errors import IntegrityFailure
from ssbg.infrastructure.crypto import object_format_v2
from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor
from ssbg.infrastructure.crypto.object_format import (
    FRAMED_FORMAT_VERSION,
    ObjectHeader,
    generate_dek,
)
from ssbg.infrastructure.crypto.object_format_v2 import FramedSegmentSealer
from ssbg.infrastructure.crypto.segment_compression import SegmentCompressor
from ssbg.infrastructure.crypto.stream_decryption import decrypt_object, verify_object
from ssbg.infrastructure.crypto.stream_encryption import SealedStream, encrypt_stream

SEGMENT = 4096
TEXT = b"".join(b"INSERT INTO t VALUES (%d, 'row %d');\n" % (i, i % 13) for i in range(3000))


class MemoryWriter:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.data += chunk


class ThreadRecordingCompressor(SegmentCompressor):
    def __init__(self) -> None:
        super().__init__(3)
        self.threads: set[str] = set()

    def compress(self, segment: bytes) -> bytes | None:
        self.threads.add(threading.current_thread().name)
        return super().compress(segment)


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        await asyncio.sleep(0)
        yield bytes(data[offset : offset + size])


async def seal(
    data: bytes, compressor: SegmentCompressor | None = None, chunk: int = 1000
) -> tuple[bytes, bytes, SealedStream]:
    dek = generate_dek()
    header = ObjectHeader(
        uuid4(), "P-001", SEGMENT, FRAMED_FORMAT_VERSION, Compression.ZSTD
    ).encode()
    writer = MemoryWriter()
    sealed = await encrypt_stream(
        chunks_of(data, chunk),
        sealer=FramedSegmentSealer(dek, header, compressor or SegmentCompressor(3)),
        header=header,
        writer=writer,
        segment_size=SEGMENT,
        max_plaintext_bytes=10**9,
        in_flight=2,
    )
    return dek, bytes(writer.data), sealed


def decryptor_for(dek: bytes) -> ObjectDecryptor:
    return ObjectDecryptor(lambda _header: dek, expected_backup_id=None)


async def test_compression_runs_on_the_seal_lane_and_shrinks_what_is_stored() -> None:
    compressor = ThreadRecordingCompressor()
    _dek, stored, sealed = await seal(TEXT, compressor)

    assert compressor.threads == {"ssbg-seal"}
    assert sealed.original_size == len(TEXT)
    assert sealed.stored_size < len(TEXT) // 4
    assert sealed.encrypted_size == len(stored)
    assert sealed.checksum_plaintext == hashlib.sha512(TEXT).hexdigest()
    assert sealed.checksum_ciphertext == hashlib.sha512(stored).hexdigest()


async def test_random_data_is_stored_raw_at_its_own_size() -> None:
    data = os.urandom(5 * SEGMENT + 3)
    _dek, _stored, sealed = await seal(data)
    assert sealed.stored_size == sealed.original_size == len(data)


@pytest.mark.parametrize("size", [1, SEGMENT, 3 * SEGMENT + 7, len(TEXT)])
@pytest.mark.parametrize("chunk", [1000, SEGMENT + 21, 64 * 1024])
async def test_verify_and_download_of_a_compressed_object_match(size: int, chunk: int) -> None:
    data = (TEXT[: size // 2] + os.urandom(size))[:size]
    dek, stored, sealed = await seal(data)

    verified = await verify_object(chunks_of(stored, chunk), decryptor_for(dek), in_flight=2)
    downloaded = [
        segment async for segment in decrypt_object(chunks_of(stored, chunk), decryptor_for(dek))
    ]

    assert b"".join(downloaded) == data
    assert verified.checksum_plaintext == sealed.checksum_plaintext
    assert verified.checksum_ciphertext == sealed.checksum_ciphertext
    assert (verified.plaintext_bytes, verified.ciphertext_bytes) == (size, len(stored))
    assert verified.stored_bytes == sealed.stored_size


async def test_decompression_never_runs_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    dek, stored, _sealed = await seal(TEXT)
    threads: set[str] = set()
    real = object_format_v2.decompress_segment

    def observed(body: bytes, size: int) -> bytes:
        threads.add(threading.current_thread().name)
        return real(body, size)

    monkeypatch.setattr(object_format_v2, "decompress_segment", observed)
    await verify_object(chunks_of(stored, 64 * 1024), decryptor_for(dek))
    async for _segment in decrypt_object(chunks_of(stored, 64 * 1024), decryptor_for(dek)):
        pass

    assert threads
    assert threading.main_thread().name not in threads
    assert threads <= {"ssbg-open", "ssbg-sha-plain", "ssbg-expand"}


@pytest.mark.parametrize("cut", [1, 5, 30])
async def test_a_truncated_compressed_object_fails_both_ways(cut: int) -> None:
    dek, stored, _sealed = await seal(TEXT)
    truncated = stored[:-cut]

    with pytest.raises(IntegrityFailure):
        await verify_object(chunks_of(truncated, 4096), decryptor_for(dek))
    with pytest.raises(IntegrityFailure):
        async for _segment in decrypt_object(chunks_of(truncated, 4096), decryptor_for(dek)):
            pass
