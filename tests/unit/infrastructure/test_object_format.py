"""The encrypted object format (SPEC §6): round trips and adversarial edits that must fail."""

import os
from collections.abc import Callable
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.errors import IntegrityFailure
from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor
from ssbg.infrastructure.crypto.object_format import (
    DATA_MAGIC,
    TAG_BYTES,
    ObjectHeader,
    SegmentSealer,
    WrappedDek,
    dek_resolver_for,
    generate_dek,
    rewrap_dek,
    segment_nonce,
    unwrap_dek,
    wrap_dek,
)

KEY = ec.generate_private_key(ec.SECP384R1())
OTHER_KEY = ec.generate_private_key(ec.SECP384R1())
SEGMENT = 64


def seal_object(
    plaintext: bytes, backup_id: UUID, key_version: str = "P-001", dek: bytes | None = None
) -> tuple[bytes, bytes, list[bytes]]:
    dek = dek or generate_dek()
    header = ObjectHeader(backup_id, key_version, SEGMENT).encode()
    sealer = SegmentSealer(dek, header)
    pieces = [plaintext[i : i + SEGMENT] for i in range(0, len(plaintext), SEGMENT)]
    segments = [sealer.seal(i, p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
    wrapped = wrap_dek(dek, KEY.public_key(), backup_id, key_version)
    return header, wrapped, segments


def decrypt(
    data: bytes,
    wrapped: bytes,
    *,
    key: ec.EllipticCurvePrivateKey = KEY,
    expected: UUID | None = None,
    chunk: int = 7,
) -> bytes:
    decryptor = ObjectDecryptor(
        dek_resolver_for(wrapped, key, expected_key_version=None), expected_backup_id=expected
    )
    out = bytearray()
    for offset in range(0, len(data), chunk):
        for piece in decryptor.feed(data[offset : offset + chunk]):
            out += piece
    out += decryptor.finish()
    return bytes(out)


PLAINTEXT = os.urandom(SEGMENT * 4 + 10)
BACKUP = uuid4()
HEADER, WRAPPED, SEGMENTS = seal_object(PLAINTEXT, BACKUP)
DATA = HEADER + b"".join(SEGMENTS)


@pytest.mark.parametrize("chunk", [1, 7, SEGMENT + TAG_BYTES, 10_000])
def test_round_trip_whatever_the_chunking(chunk: int) -> None:
    assert decrypt(DATA, WRAPPED, expected=BACKUP, chunk=chunk) == PLAINTEXT


def test_payload_of_an_exact_number_of_segments_round_trips() -> None:
    plaintext = os.urandom(SEGMENT * 3)
    backup = uuid4()
    header, wrapped, segments = seal_object(plaintext, backup)
    assert len(segments) == 3
    assert decrypt(header + b"".join(segments), wrapped) == plaintext


def test_header_is_self_describing_and_round_trips() -> None:
    parsed, length = ObjectHeader.parse(HEADER + b"rest")
    assert parsed == ObjectHeader(BACKUP, "P-001", SEGMENT)
    assert length == len(HEADER)
    assert HEADER.startswith(DATA_MAGIC + b"\x00\x01")


def test_nonce_is_an_88_bit_counter_and_a_last_flag() -> None:
    assert segment_nonce(0, False) == bytes(12)
    assert segment_nonce(1, True) == bytes(10) + b"\x01\x01"
    assert segment_nonce(2**88 - 1, False) == b"\xff" * 11 + b"\x00"
    with pytest.raises(ValueError, match="index"):
        segment_nonce(2**88, False)


ATTACKS: dict[str, Callable[[], tuple[bytes, bytes]]] = {
    "flipped ciphertext bit": lambda: (
        HEADER
        + SEGMENTS[0][:5]
        + bytes([SEGMENTS[0][5] ^ 1])
        + SEGMENTS[0][6:]
        + b"".join(SEGMENTS[1:]),
        WRAPPED,
    ),
    "flipped tag bit": lambda: (
        HEADER + b"".join(SEGMENTS[:-1]) + SEGMENTS[-1][:-1] + bytes([SEGMENTS[-1][-1] ^ 1]),
        WRAPPED,
    ),
    "modified header (segment size)": lambda: (
        ObjectHeader(BACKUP, "P-001", SEGMENT + 1).encode() + b"".join(SEGMENTS),
        WRAPPED,
    ),
    "truncated at a segment boundary": lambda: (HEADER + b"".join(SEGMENTS[:-1]), WRAPPED),
    "truncated inside a segment": lambda: (DATA[:-5], WRAPPED),
    "truncated to the header": lambda: (HEADER, WRAPPED),
    "truncated inside the header": lambda: (HEADER[:20], WRAPPED),
    "segments reordered": lambda: (
        HEADER + SEGMENTS[1] + SEGMENTS[0] + b"".join(SEGMENTS[2:]),
        WRAPPED,
    ),
    "segment duplicated": lambda: (HEADER + SEGMENTS[0] + b"".join(SEGMENTS), WRAPPED),
    "bytes appended": lambda: (DATA + b"\x00" * 20, WRAPPED),
    "final segment appended twice": lambda: (DATA + SEGMENTS[-1], WRAPPED),
    "wrong magic": lambda: (b"XXXX" + DATA[4:], WRAPPED),
    "tampered wrapped DEK": lambda: (DATA, WRAPPED[:-1] + bytes([WRAPPED[-1] ^ 1])),
    "wrapped DEK with its header edited": lambda: (
        DATA,
        WrappedDek(uuid4(), "P-001", WrappedDek.parse(WRAPPED).sealed).encode(),
    ),
    "wrapped DEK truncated": lambda: (DATA, WRAPPED[:-3]),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_every_edit_fails_with_one_opaque_error(attack: str) -> None:
    data, wrapped = ATTACKS[attack]()
    with pytest.raises(IntegrityFailure) as raised:
        decrypt(data, wrapped, expected=BACKUP)
    assert raised.value.details == {}


def test_segments_swapped_between_backups_fail() -> None:
    other = uuid4()
    _other_header, _wrapped, other_segments = seal_object(os.urandom(SEGMENT * 4 + 10), other)
    spliced = HEADER + SEGMENTS[0] + other_segments[1] + b"".join(SEGMENTS[2:])
    with pytest.raises(IntegrityFailure):
        decrypt(spliced, WRAPPED)


def test_segments_swapped_between_backups_fail_even_under_one_dek() -> None:
    dek = generate_dek()
    first, second = uuid4(), uuid4()
    header_a, wrapped_a, segments_a = seal_object(PLAINTEXT, first, dek=dek)
    _header_b, _wrapped_b, segments_b = seal_object(PLAINTEXT, second, dek=dek)
    with pytest.raises(IntegrityFailure):
        decrypt(header_a + segments_b[0] + b"".join(segments_a[1:]), wrapped_a)


def test_objects_swapped_between_backups_fail() -> None:
    other = uuid4()
    other_header, other_wrapped, other_segments = seal_object(PLAINTEXT, other)
    other_data = other_header + b"".join(other_segments)
    with pytest.raises(IntegrityFailure):
        decrypt(DATA, other_wrapped)  # this backup's data with the other's wrapped DEK
    with pytest.raises(IntegrityFailure):
        decrypt(other_data, WRAPPED)
    with pytest.raises(IntegrityFailure):
        decrypt(other_data, other_wrapped, expected=BACKUP)  # a consistent pair, wrong place


def test_another_private_key_cannot_unwrap() -> None:
    with pytest.raises(IntegrityFailure):
        decrypt(DATA, WRAPPED, key=OTHER_KEY)


def test_a_wrapped_dek_is_bound_to_its_backup_and_key_version() -> None:
    dek = generate_dek()
    wrapped = wrap_dek(dek, KEY.public_key(), BACKUP, "P-001")
    assert unwrap_dek(wrapped, KEY, backup_id=BACKUP, key_version="P-001") == dek
    with pytest.raises(IntegrityFailure):
        unwrap_dek(wrapped, KEY, backup_id=uuid4(), key_version="P-001")
    with pytest.raises(IntegrityFailure):
        unwrap_dek(wrapped, KEY, backup_id=BACKUP, key_version="P-002")
    relabelled = WrappedDek(BACKUP, "P-002", WrappedDek.parse(wrapped).sealed).encode()
    with pytest.raises(IntegrityFailure):
        unwrap_dek(relabelled, KEY, backup_id=BACKUP, key_version="P-002")


def test_the_expected_key_version_is_enforced() -> None:
    decryptor = ObjectDecryptor(
        dek_resolver_for(WRAPPED, KEY, expected_key_version="P-002"), expected_backup_id=None
    )
    with pytest.raises(IntegrityFailure):
        decryptor.feed(DATA)


def test_sealer_refuses_empty_segments_and_wrong_keys() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SegmentSealer(b"short", HEADER)
    with pytest.raises(ValueError, match="never empty"):
        SegmentSealer(generate_dek(), HEADER).seal(0, b"", True)


def test_header_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="segment size"):
        ObjectHeader(BACKUP, "P-001", 0)
    with pytest.raises(ValueError, match="key version"):
        ObjectHeader(BACKUP, "", 16)


def test_a_rewrapped_dek_opens_the_untouched_object_under_the_new_version_only() -> None:
    rewrapped = rewrap_dek(
        WRAPPED,
        KEY,
        OTHER_KEY.public_key(),
        backup_id=BACKUP,
        from_version="P-001",
        to_version="P-002",
    )

    assert WrappedDek.parse(rewrapped).key_version == "P-002"
    assert decrypt(DATA, rewrapped, key=OTHER_KEY, expected=BACKUP) == PLAINTEXT
    strict = ObjectDecryptor(
        dek_resolver_for(rewrapped, OTHER_KEY, expected_key_version="P-002"),
        expected_backup_id=BACKUP,
    )
    assert b"".join([*strict.feed(DATA), strict.finish()]) == PLAINTEXT
    with pytest.raises(IntegrityFailure):
        decrypt(DATA, rewrapped, key=KEY)  # the old key no longer opens it
    with pytest.raises(IntegrityFailure):
        rewrap_dek(
            WRAPPED,
            KEY,
            OTHER_KEY.public_key(),
            backup_id=uuid4(),  # another backup's: refused
            from_version="P-001",
            to_version="P-002",
        )
