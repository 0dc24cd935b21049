"""The pipelined decryption of a stored object: verify and download agree with the format;
a flipped, dropped or truncated byte fails with IntegrityFailure under every chunking."""

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from ssbg.domain.errors import IntegrityFailure
from ssbg.infrastructure.crypto.lanes import Lane
from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor
from ssbg.infrastructure.crypto.object_format import ObjectHeader, SegmentSealer
from ssbg.infrastructure.crypto.stream_decryption import decrypt_object, verify_object

SEGMENT = 4096


def sealed_object(data: bytes) -> tuple[bytes, bytes]:
    """(DEK, ``data.enc``) for ``data``, sealed sequentially as the format says."""
    dek = os.urandom(32)
    header = ObjectHeader(uuid4(), "P-001", SEGMENT).encode()
    sealer = SegmentSealer(dek, header)
    pieces = [data[offset : offset + SEGMENT] for offset in range(0, len(data), SEGMENT)]
    body = b"".join(
        sealer.seal(index, piece, index == len(pieces) - 1) for index, piece in enumerate(pieces)
    )
    return dek, header + body


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[offset : offset + size]


async def aligned_chunks(data: bytes, segments: int) -> AsyncIterator[bytes]:
    """The header alone, then chunks that start on segment boundaries (as the restore
    service reads): the path where segments are opened in place, without a copy."""
    header_length = ObjectHeader.encoded_length("P-001")
    yield data[:header_length]
    async for chunk in chunks_of(data[header_length:], segments * (SEGMENT + 16)):
        yield chunk


def decryptor_for(dek: bytes) -> ObjectDecryptor:
    return ObjectDecryptor(lambda _header: dek, expected_backup_id=None)


@pytest.mark.parametrize("size", [1, SEGMENT, SEGMENT + 1, 10 * SEGMENT + 7])
@pytest.mark.parametrize("chunk", [1000, SEGMENT + 16, 3 * SEGMENT + 5])
async def test_verify_and_download_match_the_object(size: int, chunk: int) -> None:
    data = os.urandom(size)
    dek, stored = sealed_object(data)

    verified = await verify_object(chunks_of(stored, chunk), decryptor_for(dek), in_flight=2)
    downloaded = [
        segment async for segment in decrypt_object(chunks_of(stored, chunk), decryptor_for(dek))
    ]

    assert verified.checksum_plaintext == hashlib.sha512(data).hexdigest()
    assert verified.checksum_ciphertext == hashlib.sha512(stored).hexdigest()
    assert (verified.plaintext_bytes, verified.ciphertext_bytes) == (size, len(stored))
    assert b"".join(downloaded) == data


@pytest.mark.parametrize("size", [1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 10 * SEGMENT + 7])
@pytest.mark.parametrize("segments", [1, 3])
async def test_chunks_aligned_on_segments_are_opened_in_place(size: int, segments: int) -> None:
    data = os.urandom(size)
    dek, stored = sealed_object(data)

    verified = await verify_object(aligned_chunks(stored, segments), decryptor_for(dek))
    downloaded = [
        segment
        async for segment in decrypt_object(aligned_chunks(stored, segments), decryptor_for(dek))
    ]

    assert verified.checksum_plaintext == hashlib.sha512(data).hexdigest()
    assert verified.checksum_ciphertext == hashlib.sha512(stored).hexdigest()
    assert b"".join(downloaded) == data


@pytest.mark.parametrize("chunk", [1000, SEGMENT + 16, 2 * (SEGMENT + 16)])
def test_the_decryptor_never_reads_a_reused_buffer_late(chunk: int) -> None:
    """A segment is opened in place only from an immutable chunk: a view of a buffer that the
    caller overwrites for the next chunk is copied, whatever its alignment."""
    data = os.urandom(6 * SEGMENT + 3)
    dek, stored = sealed_object(data)
    header_length = ObjectHeader.encoded_length("P-001")
    decryptor, buffer, out = decryptor_for(dek), bytearray(chunk), bytearray()

    for piece in [stored[:header_length]] + [
        stored[offset : offset + chunk] for offset in range(header_length, len(stored), chunk)
    ]:
        buffer[: len(piece)] = piece
        for plaintext in decryptor.feed(memoryview(buffer)[: len(piece)]):
            out += plaintext
    out += decryptor.finish()

    assert out == data


@pytest.mark.parametrize("segments", [1, 2])
async def test_aligned_chunks_cut_at_a_segment_boundary_fail(segments: int) -> None:
    """The held segment is only opened as the last one at ``finish``: without its last-segment
    flag, an object cut after a whole segment does not authenticate."""
    dek, stored = sealed_object(os.urandom(4 * SEGMENT))
    cut = stored[: len(stored) - (SEGMENT + 16)]

    with pytest.raises(IntegrityFailure):
        await verify_object(aligned_chunks(cut, segments), decryptor_for(dek))
    with pytest.raises(IntegrityFailure):
        async for _segment in decrypt_object(aligned_chunks(cut, segments), decryptor_for(dek)):
            pass


@pytest.mark.parametrize("chunk", [1000, SEGMENT + 16])
@pytest.mark.parametrize("damage", ["flip-first", "flip-middle", "truncate", "drop-segment"])
async def test_verify_fails_on_any_damage(chunk: int, damage: str) -> None:
    dek, stored = sealed_object(os.urandom(8 * SEGMENT + 100))
    sealed = SEGMENT + 16
    header_length = len(stored) - 8 * sealed - (100 + 16)
    if damage == "flip-first":
        position = header_length + 5
        stored = stored[:position] + bytes([stored[position] ^ 1]) + stored[position + 1 :]
    elif damage == "flip-middle":
        position = header_length + 4 * sealed + 7
        stored = stored[:position] + bytes([stored[position] ^ 1]) + stored[position + 1 :]
    elif damage == "truncate":
        stored = stored[: header_length + 8 * sealed]
    else:
        start = header_length + 3 * sealed
        stored = stored[:start] + stored[start + sealed :]

    with pytest.raises(IntegrityFailure):
        await verify_object(chunks_of(stored, chunk), decryptor_for(dek), in_flight=2)


async def test_a_lane_hands_its_result_straight_to_another_lane() -> None:
    first, second = Lane("test-first"), Lane("test-second")
    threads: list[str] = []

    def double(value: int) -> int:
        threads.append(threading.current_thread().name)
        return 2 * value

    def hand_over(value: int, handed: "asyncio.Future[int]") -> None:
        threads.append(threading.current_thread().name)
        second.enqueue(handed, double, value + 1)

    try:
        handed: asyncio.Future[int] = second.future()
        await first.submit(hand_over, 6, handed)
        assert await handed == 14
    finally:
        first.close()
        second.close()
    assert threads == ["test-first", "test-second"]


@pytest.mark.parametrize("expected", [SEGMENT // 2, SEGMENT * 2])
def test_a_header_naming_another_segment_size_than_the_metadata_is_refused(expected: int) -> None:
    dek, stored = sealed_object(os.urandom(3 * SEGMENT))
    decryptor = ObjectDecryptor(
        lambda _header: dek, expected_backup_id=None, expected_segment_size=expected
    )

    with pytest.raises(IntegrityFailure):
        decryptor.feed(stored)


def test_a_header_naming_the_metadata_segment_size_is_opened() -> None:
    data = os.urandom(3 * SEGMENT)
    dek, stored = sealed_object(data)
    decryptor = ObjectDecryptor(
        lambda _header: dek, expected_backup_id=None, expected_segment_size=SEGMENT
    )

    assert b"".join([*decryptor.feed(stored), decryptor.finish()]) == data
