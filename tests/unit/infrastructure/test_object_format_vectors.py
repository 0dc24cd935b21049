"""The published test vectors (tests/fixtures/object_format_v1) decrypt — with our code and
with an independent decoder written only from docs/object-format.md."""

import hashlib
import json
import struct
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor
from ssbg.infrastructure.crypto.object_format import (
    ObjectHeader,
    SegmentSealer,
    dek_resolver_for,
    unwrap_dek,
)
from ssbg.services.offline_recovery import load_private_key_file

FIXTURES = Path(__file__).parents[2] / "fixtures" / "object_format_v1"
SUITE = json.loads((FIXTURES / "vectors.json").read_text())
VECTORS: list[dict[str, Any]] = SUITE["vectors"]


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
    assert version == 1
    backup_id = data[12:28]
    (segment_size,) = struct.unpack(">I", data[28:32])
    cipher, kem, kdf, aead = struct.unpack(">HHHH", data[32:40])
    assert (cipher, kem, kdf, aead) == (1, 0x11, 2, 2)
    key_version = data[41 : 41 + data[40]]
    header = data[:header_length]

    assert wrapped[:8] == b"SSBG-DEK"
    (info_length,) = struct.unpack(">H", wrapped[10:12])
    info = wrapped[:info_length]
    assert info[12:28] == backup_id
    assert info[35:] == key_version
    suite = Suite(KEM.P384, KDF.HKDF_SHA384, AEAD.AES_256_GCM)
    dek = suite.decrypt(wrapped[info_length:], key, info=info)

    body = data[header_length:]
    step = segment_size + 16
    pieces = [body[i : i + step] for i in range(0, len(body), step)]
    out = bytearray()
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        nonce = index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        out += AESGCM(dek).decrypt(nonce, piece, header)
    return bytes(out)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vectors_decrypt_with_an_independent_decoder(vector: dict[str, Any]) -> None:
    directory = FIXTURES / vector["name"]
    data, wrapped = (directory / "data.enc").read_bytes(), (directory / "dek.wrapped").read_bytes()
    plaintext = (directory / "plaintext.bin").read_bytes()

    assert independent_decrypt(data, wrapped, private_key()) == plaintext
    assert hashlib.sha512(plaintext).hexdigest() == vector["plaintext_sha512"]
    assert hashlib.sha512(data).hexdigest() == vector["data_enc_sha512"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vectors_decrypt_with_the_gateway_code(vector: dict[str, Any]) -> None:
    directory = FIXTURES / vector["name"]
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
