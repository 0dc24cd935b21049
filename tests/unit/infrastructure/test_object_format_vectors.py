"""The published test vectors (tests/fixtures/object_format_v1 and _v2) decrypt — with our
code and with an independent decoder written only from docs/object-format.md."""

import hashlib
import json
import struct
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import zstandard
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from ssbg.domain.enums import Compression
from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor
from ssbg.infrastructure.crypto.object_format import (
    ObjectHeader,
    SegmentSealer,
    dek_resolver_for,
    unwrap_dek,
)
from ssbg.services.offline_recovery import load_private_key_file

FIXTURES = Path(__file__).parents[2] / "fixtures" / "object_format_v1"
FIXTURES_V2 = Path(__file__).parents[2] / "fixtures" / "object_format_v2"
SUITE = json.loads((FIXTURES / "vectors.json").read_text())
VECTORS: list[dict[str, Any]] = SUITE["vectors"]
VECTORS_V2: list[dict[str, Any]] = json.loads((FIXTURES_V2 / "vectors.json").read_text())["vectors"]
# (directory, vector) of both versions: the same key and DEK, other backup ids.
ALL_VECTORS = [(FIXTURES / v["name"], v) for v in VECTORS] + [
    (FIXTURES_V2 / v["name"], v) for v in VECTORS_V2
]
ALL_IDS = [f"v1-{v['name']}" for v in VECTORS] + [f"v2-{v['name']}" for v in VECTORS_V2]


def private_key() -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(
        (FIXTURES / "P-001.private.pem").read_bytes(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def independent_decrypt(data: bytes, wrapped: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """A second implementation, following the document byte by byte."""
    assert data[:8] == b"SSBG-ENC"
    version, header_length = struct.unpack(">HH", data[8:12])
    assert version in (1, 2)
    backup_id = data[12:28]
    (segment_size,) = struct.unpack(">I", data[28:32])
    cipher, kem, kdf, aead = struct.unpack(">HHHH", data[32:40])
    assert (cipher, kem, kdf, aead) == (1, 0x11, 2, 2)
    if version == 1:
        compression, key_version = 0, data[41 : 41 + data[40]]
    else:
        (compression,) = struct.unpack(">H", data[40:42])
        assert compression in (0, 1)
        key_version = data[43 : 43 + data[42]]
    header = data[:header_length]

    assert wrapped[:8] == b"SSBG-DEK"
    (info_length,) = struct.unpack(">H", wrapped[10:12])
    info = wrapped[:info_length]
    assert info[12:28] == backup_id
    assert info[35:] == key_version
    suite = Suite(KEM.P384, KDF.HKDF_SHA384, AEAD.AES_256_GCM)
    dek = suite.decrypt(wrapped[info_length:], key, info=info)

    body = data[header_length:]
    if version == 1:
        step = segment_size + 16
        pieces = [(b"", body[i : i + step]) for i in range(0, len(body), step)]
    else:
        pieces, offset = [], 0
        while offset < len(body):
            frame = body[offset : offset + 5]
            flag, length = struct.unpack(">BI", frame)
            assert flag in (0, 1)
            assert flag == 0 or compression == 1
            assert 16 < length <= segment_size + 16
            pieces.append((frame, body[offset + 5 : offset + 5 + length]))
            offset += 5 + length
        assert offset == len(body)
    out = bytearray()
    for index, (frame, sealed) in enumerate(pieces):
        last = index == len(pieces) - 1
        nonce = index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        opened = AESGCM(dek).decrypt(nonce, sealed, header + frame)
        if frame and frame[0] == 1:
            declared = zstandard.frame_content_size(opened)
            assert 0 < declared <= segment_size
            opened = zstandard.ZstdDecompressor().decompress(
                opened, max_output_size=declared, allow_extra_data=False
            )
        assert len(opened) == segment_size or (last and 0 < len(opened) <= segment_size)
        out += opened
    return bytes(out)


@pytest.mark.parametrize(("directory", "vector"), ALL_VECTORS, ids=ALL_IDS)
def test_vectors_decrypt_with_an_independent_decoder(
    directory: Path, vector: dict[str, Any]
) -> None:
    data, wrapped = (directory / "data.enc").read_bytes(), (directory / "dek.wrapped").read_bytes()
    plaintext = (directory / "plaintext.bin").read_bytes()

    assert independent_decrypt(data, wrapped, private_key()) == plaintext
    assert hashlib.sha512(plaintext).hexdigest() == vector["plaintext_sha512"]
    assert hashlib.sha512(data).hexdigest() == vector["data_enc_sha512"]


@pytest.mark.parametrize(("directory", "vector"), ALL_VECTORS, ids=ALL_IDS)
def test_vectors_decrypt_with_the_gateway_code(directory: Path, vector: dict[str, Any]) -> None:
    data, wrapped = (directory / "data.enc").read_bytes(), (directory / "dek.wrapped").read_bytes()
    key = load_private_key_file(FIXTURES / "P-001.private.p12", SUITE["password"])
    backup_id = UUID(vector["backup_id"])

    assert unwrap_dek(wrapped, key, backup_id=backup_id, key_version="P-001").hex() == vector["dek"]
    decryptor = ObjectDecryptor(
        dek_resolver_for(wrapped, key, expected_key_version="P-001"), expected_backup_id=backup_id
    )
    plaintext = b"".join(decryptor.feed(data)) + decryptor.finish()
    assert plaintext == (directory / "plaintext.bin").read_bytes()


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_the_encoder_reproduces_the_vectors(vector: dict[str, Any]) -> None:
    header = ObjectHeader(UUID(vector["backup_id"]), "P-001", vector["segment_size"]).encode()
    assert header.hex() == vector["header"]
    sealer = SegmentSealer(bytes.fromhex(vector["dek"]), header)
    for segment in vector["segments"]:
        sealed = sealer.seal(segment["index"], bytes.fromhex(segment["plaintext"]), segment["last"])
        assert sealed.hex() == segment["sealed"]


@pytest.mark.parametrize("vector", VECTORS_V2, ids=[v["name"] for v in VECTORS_V2])
def test_the_encoder_reproduces_the_v2_vectors(vector: dict[str, Any]) -> None:
    """Header, frames and sealed bytes from each segment's body; the zstd bodies themselves
    depend on the zstd version, so they are checked by decompressing them."""
    header = ObjectHeader(
        UUID(vector["backup_id"]), "P-001", vector["segment_size"], 2, Compression.ZSTD
    ).encode()
    assert header.hex() == vector["header"]
    sealer = SegmentSealer(bytes.fromhex(vector["dek"]), header)
    stored_size = 0
    for segment in vector["segments"]:
        body, frame = bytes.fromhex(segment["body"]), bytes.fromhex(segment["frame"])
        assert frame == struct.pack(">BI", segment["flag"], len(body) + 16)
        assert segment["associated_data"] == (header + frame).hex()
        sealed = sealer.seal(segment["index"], body, segment["last"], frame)
        assert (frame + sealed).hex() == segment["stored"]
        plaintext = bytes.fromhex(segment["plaintext"])
        if segment["flag"] == 1:
            assert zstandard.ZstdDecompressor().decompress(body) == plaintext
            assert len(body) < len(plaintext)
        else:
            assert body == plaintext
        stored_size += len(body)
    assert stored_size == vector["stored_size"]
    assert {segment["flag"] for v in VECTORS_V2 for segment in v["segments"]} == {0, 1}
