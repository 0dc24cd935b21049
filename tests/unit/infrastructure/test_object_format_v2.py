"""Object format version 2 (SPEC §13.4, docs/object-format.md §1.6): framed segments, each raw
or one zstd frame. Round trips, the raw/compressed choice, every edit that must fail, and the
bound on what a hostile frame may make the decoder allocate."""

import os
import resource
import struct
from collections.abc import Callable, Iterable
from uuid import UUID, uuid4

import pytest
import zstandard

from ssbg.domain.enums import Compression
from ssbg.domain.errors import IntegrityFailure
from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor
from ssbg.infrastructure.crypto.object_format import (
    DATA_MAGIC,
    FRAMED_FORMAT_VERSION,
    TAG_BYTES,
    ObjectHeader,
    SegmentSealer,
    generate_dek,
)
from ssbg.infrastructure.crypto.object_format_v2 import (
    FLAG_RAW,
    FLAG_ZSTD,
    FRAME,
    FramedSegmentSealer,
    segment_frame,
)
from ssbg.infrastructure.crypto.segment_compression import SegmentCompressor

SEGMENT = 4096
BACKUP = uuid4()
DEK = generate_dek()
TEXT = b"".join(
    b"INSERT INTO orders VALUES (%d, 'customer %d', %d.%02d);\n" % (i, i % 97, i % 1000, i % 100)
    for i in range(400)
)


def v2_header(
    backup: UUID = BACKUP, compression: Compression = Compression.ZSTD, segment: int = SEGMENT
) -> bytes:
    return ObjectHeader(backup, "P-001", segment, FRAMED_FORMAT_VERSION, compression).encode()


def seal_v2(
    plaintext: bytes, *, header: bytes | None = None, dek: bytes = DEK, level: int = 3
) -> tuple[bytes, list[bytes]]:
    """(header, stored segments) as the gateway writes them."""
    header = header or v2_header()
    sealer = FramedSegmentSealer(dek, header, SegmentCompressor(level))
    pieces = [plaintext[i : i + SEGMENT] for i in range(0, len(plaintext), SEGMENT)]
    return header, [sealer.seal(i, p, i == len(pieces) - 1) for i, p in enumerate(pieces)]


def craft_segment(index: int, flag: int, body: bytes, last: bool, header: bytes) -> bytes:
    """A segment sealed under the right DEK with any body: what only a DEK holder could write."""
    frame = segment_frame(flag, len(body))
    return frame + SegmentSealer(DEK, header).seal(index, body, last, frame)


def decryptor(expected: UUID | None = BACKUP) -> ObjectDecryptor:
    return ObjectDecryptor(lambda _header: DEK, expected_backup_id=expected)


def decrypt(data: bytes, chunk: int = 7, expected: UUID | None = BACKUP) -> bytes:
    opened = decryptor(expected)
    out = bytearray()
    for offset in range(0, len(data), chunk):
        for piece in opened.feed(data[offset : offset + chunk]):
            out += piece
    out += opened.finish()
    return bytes(out)


def flags(segments: Iterable[bytes]) -> list[int]:
    return [segment[0] for segment in segments]


# Compressible, random, compressible, short random tail: both kinds of segment, twice.
PLAINTEXT = TEXT[:SEGMENT] + os.urandom(SEGMENT) + TEXT[SEGMENT : 2 * SEGMENT] + os.urandom(100)
HEADER, SEGMENTS = seal_v2(PLAINTEXT)
DATA = HEADER + b"".join(SEGMENTS)


def test_compressible_segments_are_stored_compressed_and_the_others_raw() -> None:
    assert flags(SEGMENTS) == [FLAG_ZSTD, FLAG_RAW, FLAG_ZSTD, FLAG_RAW]
    overhead = FRAME.size + TAG_BYTES
    assert len(SEGMENTS[0]) < SEGMENT // 2
    assert len(SEGMENTS[1]) == SEGMENT + overhead
    assert len(SEGMENTS[3]) == 100 + overhead


@pytest.mark.parametrize("chunk", [1, 5, 7, SEGMENT + 21, 10 * SEGMENT])
def test_round_trip_whatever_the_chunking(chunk: int) -> None:
    assert decrypt(DATA, chunk) == PLAINTEXT


def test_chunks_that_are_views_of_a_reused_buffer_round_trip() -> None:
    opened, buffer, out = decryptor(), bytearray(1000), bytearray()
    for offset in range(0, len(DATA), 1000):
        piece = DATA[offset : offset + 1000]
        buffer[: len(piece)] = piece
        for plaintext in opened.feed(memoryview(buffer)[: len(piece)]):
            out += plaintext
    out += opened.finish()
    assert out == PLAINTEXT


def test_the_decryptor_counts_plaintext_and_stored_bytes() -> None:
    opened = decryptor()
    plaintext = b"".join([*opened.feed(DATA), opened.finish()])
    bodies = sum(len(segment) - FRAME.size - TAG_BYTES for segment in SEGMENTS)
    assert (opened.plaintext_bytes, opened.stored_bytes) == (len(plaintext), bodies)
    assert opened.header is not None
    assert (opened.header.format_version, opened.header.compression) == (2, Compression.ZSTD)


def test_the_v2_header_records_the_compression_and_round_trips() -> None:
    parsed, length = ObjectHeader.parse(HEADER + b"rest")
    assert parsed == ObjectHeader(BACKUP, "P-001", SEGMENT, 2, Compression.ZSTD)
    assert length == len(HEADER) == ObjectHeader.encoded_length("P-001", 2) == 43 + 5
    assert HEADER.startswith(DATA_MAGIC + b"\x00\x02")
    assert HEADER[40:42] == b"\x00\x01"  # zstd


def test_a_v1_header_cannot_say_compressed() -> None:
    with pytest.raises(ValueError, match="no compression"):
        ObjectHeader(BACKUP, "P-001", SEGMENT, 1, Compression.ZSTD)


def test_a_single_byte_and_an_exact_multiple_round_trip() -> None:
    for plaintext in (b"\x00", TEXT[: 3 * SEGMENT]):
        header, segments = seal_v2(plaintext)
        assert decrypt(header + b"".join(segments)) == plaintext


def test_an_incompressible_sample_skips_compressing_the_whole_segment() -> None:
    compressor = SegmentCompressor(3)
    big = 256 * 1024
    assert compressor.compress(os.urandom(big)) is None
    assert compressor.compress(TEXT * (big // len(TEXT))) is not None
    # Already-compressed data does not shrink again.
    packed = zstandard.ZstdCompressor(level=19).compress(TEXT * 50)
    assert compressor.compress(packed) is None


def _with_byte(data: bytes, position: int, value: int) -> bytes:
    return data[:position] + bytes([value]) + data[position + 1 :]


def _with_length(segment: bytes, delta: int) -> bytes:
    flag, length = FRAME.unpack_from(segment)
    return FRAME.pack(flag, length + delta) + segment[FRAME.size :]


def _other_object() -> tuple[bytes, list[bytes]]:
    return seal_v2(PLAINTEXT, header=v2_header(uuid4()))


H, S = HEADER, SEGMENTS
ATTACKS: dict[str, Callable[[], bytes]] = {
    "flipped ciphertext bit": lambda: H + _with_byte(S[0], 9, S[0][9] ^ 1) + b"".join(S[1:]),
    "flipped tag bit": lambda: DATA[:-1] + bytes([DATA[-1] ^ 1]),
    "flag raw -> zstd": lambda: H + S[0] + _with_byte(S[1], 0, FLAG_ZSTD) + b"".join(S[2:]),
    "flag zstd -> raw": lambda: H + _with_byte(S[0], 0, FLAG_RAW) + b"".join(S[1:]),
    "unknown flag": lambda: H + _with_byte(S[0], 0, 7) + b"".join(S[1:]),
    "length one longer": lambda: H + _with_length(S[0], 1) + b"".join(S[1:]),
    "length one shorter": lambda: H + _with_length(S[0], -1) + b"".join(S[1:]),
    "length beyond a segment": lambda: H + _with_length(S[1], 10**6) + b"".join(S[2:]),
    "length shorter than a tag": lambda: H + FRAME.pack(FLAG_RAW, TAG_BYTES) + S[0][5:],
    "header relabelled version 1": lambda: _with_byte(H, 9, 1) + b"".join(S),
    "header says no compression": lambda: _with_byte(H, 41, 0) + b"".join(S),
    "header names an unknown compression": lambda: _with_byte(H, 41, 9) + b"".join(S),
    "header segment size edited": lambda: v2_header(segment=SEGMENT + 1) + b"".join(S),
    "truncated at a segment boundary": lambda: H + b"".join(S[:-1]),
    "truncated inside a frame": lambda: H + b"".join(S[:-1]) + S[-1][:3],
    "truncated after a frame": lambda: H + b"".join(S[:-1]) + S[-1][: FRAME.size],
    "truncated inside a segment": lambda: DATA[:-5],
    "truncated to the header": lambda: H,
    "segments reordered": lambda: H + S[1] + S[0] + b"".join(S[2:]),
    "segment duplicated": lambda: H + S[0] + b"".join(S),
    "segment dropped": lambda: H + S[0] + b"".join(S[2:]),
    "a byte appended": lambda: DATA + b"\x00",
    "a frame appended": lambda: DATA + FRAME.pack(FLAG_RAW, 100),
    "final segment appended twice": lambda: DATA + S[-1],
    "segment from another backup": lambda: H + S[0] + _other_object()[1][1] + b"".join(S[2:]),
    "object of another backup": lambda: b"".join([_other_object()[0], *_other_object()[1]]),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("chunk", [3, 10_000])
def test_every_edit_fails_with_one_opaque_error(attack: str, chunk: int) -> None:
    data = ATTACKS[attack]()
    with pytest.raises(IntegrityFailure) as raised:
        decrypt(data, chunk)
    assert raised.value.details == {}


def test_the_metadata_format_version_is_enforced() -> None:
    strict = ObjectDecryptor(
        lambda _header: DEK, expected_backup_id=BACKUP, expected_format_version=1
    )
    with pytest.raises(IntegrityFailure):
        strict.feed(DATA)


# -- what only a DEK holder could write: the decoder still refuses it, before decompressing --


def _crafted(*segments: tuple[int, bytes], compression: Compression = Compression.ZSTD) -> bytes:
    header = v2_header(compression=compression)
    return header + b"".join(
        craft_segment(i, flag, body, i == len(segments) - 1, header)
        for i, (flag, body) in enumerate(segments)
    )


def _frame_declaring(declared: int, blocks: Iterable[tuple[int, int]]) -> bytes:
    """A zstd frame by hand: 8-byte content size ``declared``, single segment, then blocks
    ``(type, size)`` — type 1 is RLE (one byte repeated ``size`` times), 0 raw (zeros)."""
    out = bytearray(b"\x28\xb5\x2f\xfd" + bytes([0xE0]) + struct.pack("<Q", declared))
    blocks = list(blocks)
    for number, (kind, size) in enumerate(blocks):
        last = number == len(blocks) - 1
        out += ((size << 3) | (kind << 1) | last).to_bytes(3, "little")
        out += b"\x00" if kind == 1 else bytes(size)
    return bytes(out)


def _zstd(data: bytes, **options: bool) -> bytes:
    return zstandard.ZstdCompressor(level=3, **options).compress(data)


BOMB = _frame_declaring(1000 * 128 * 1024, [(1, 128 * 1024)] * 1000)
assert len(BOMB) <= SEGMENT

HOSTILE: dict[str, Callable[[], bytes]] = {
    "zstd flag in an uncompressed object": lambda: _crafted(
        (FLAG_ZSTD, _zstd(TEXT[:SEGMENT])), compression=Compression.NONE
    ),
    "a frame declaring more than a segment": lambda: _crafted(
        (FLAG_ZSTD, _zstd(TEXT[: SEGMENT + 1]))
    ),
    "a frame declaring no content size": lambda: _crafted(
        (FLAG_ZSTD, _zstd(TEXT[:SEGMENT], write_content_size=False))
    ),
    "a non-final frame declaring less than a segment": lambda: _crafted(
        (FLAG_ZSTD, _zstd(TEXT[: SEGMENT - 1])), (FLAG_RAW, b"tail")
    ),
    "a non-final raw body shorter than a segment": lambda: _crafted(
        (FLAG_RAW, TEXT[: SEGMENT - 1]), (FLAG_RAW, b"tail")
    ),
    "a frame declaring 0 bytes": lambda: _crafted((FLAG_ZSTD, _zstd(b""))),
    "a frame with trailing data": lambda: _crafted(
        (FLAG_ZSTD, _zstd(TEXT[:100]) + b"\x00\x00\x00")
    ),
    "two frames in one body": lambda: _crafted((FLAG_ZSTD, _zstd(TEXT[:50]) + _zstd(TEXT[:50]))),
    "a body that is not zstd": lambda: _crafted((FLAG_ZSTD, b"not a zstd frame at all")),
    "a frame declaring less than it holds": lambda: _crafted(
        (FLAG_ZSTD, _frame_declaring(100, [(1, 200)]))
    ),
    "a frame declaring more than it holds": lambda: _crafted(
        (FLAG_ZSTD, _frame_declaring(300, [(1, 200)]))
    ),
    # 4 KiB (it fits a segment's frame) that expand to 125 MiB: refused from its declared
    # size, nothing decompressed.
    "a bomb declaring 125 MiB": lambda: _crafted((FLAG_ZSTD, BOMB)),
    # The same bomb declaring one segment: zstd stops when the output buffer is full.
    "a bomb declaring one segment": lambda: _crafted(
        (FLAG_ZSTD, _frame_declaring(SEGMENT, [(1, 128 * 1024)] * 1000))
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_segment_is_refused(case: str) -> None:
    data = HOSTILE[case]()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(IntegrityFailure):
        decrypt(data, chunk=len(data))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024


def test_the_crafting_helpers_make_valid_objects() -> None:
    """The hostile cases above fail for what they change, not for how they are built."""
    assert decrypt(_crafted((FLAG_ZSTD, _zstd(TEXT[:SEGMENT])), (FLAG_RAW, b"t"))) == (
        TEXT[:SEGMENT] + b"t"
    )
    assert decrypt(_crafted((FLAG_ZSTD, _frame_declaring(200, [(1, 200)])))) == bytes(200)
    assert decrypt(_crafted((FLAG_RAW, b"x"), compression=Compression.NONE)) == b"x"


def test_decompression_waits_until_the_plaintext_is_iterated() -> None:
    """Highly compressible segments arrive many to a chunk; feed authenticates them all but
    decompresses none, so memory holds one decompressed segment at a time, not the chunk's."""
    zeros = bytes(SEGMENT * 64)
    header, segments = seal_v2(zeros)
    data = header + b"".join(segments)
    assert len(data) < 4 * SEGMENT  # 64 segments in one small chunk

    opened = decryptor()
    plaintexts = opened.feed(data)
    assert opened.plaintext_bytes == 63 * SEGMENT  # all authenticated (the last is pending)
    assert not isinstance(plaintexts, list)
    iterator = iter(plaintexts)
    assert next(iterator) == bytes(SEGMENT)
    assert b"".join([*iterator, opened.finish()]) == bytes(63 * SEGMENT)
