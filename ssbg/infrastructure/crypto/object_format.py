"""The encrypted object format, versions 1 and 2 (SPEC §6, §13.4; ``docs/object-format.md``).

Two objects per backup:

``backups/<id>/data.enc``
    ``header ‖ segment_0 ‖ … ‖ segment_n``. The header is self-describing (magic, format
    version, backup id, key version, segment size, algorithm ids; in version 2 also the
    compression). Each segment is AES-256-GCM of ``segment_size`` plaintext bytes (the last
    one: 1…``segment_size``) plus a 16-byte tag, under the backup's DEK, with nonce
    ``uint88_be(i) ‖ last_flag`` and the *whole header* as associated data. Reordered segments
    fail (index in the nonce); a truncated object fails (its new final segment was sealed with
    ``last_flag = 0``); appended bytes fail (the real final segment is then read as non-final);
    a segment or header from another backup fails (other DEK, other associated data).

    Version 2 (written for compressed backups) frames each segment — ``flag ‖ length`` before
    the sealed bytes, both in the associated data — so a segment may be stored compressed
    (:mod:`ssbg.infrastructure.crypto.object_format_v2`). Version 1 is written otherwise and
    read forever.

``backups/<id>/dek.wrapped``
    ``dek_header ‖ hpke_ciphertext``: the 32-byte DEK sealed with HPKE base mode (RFC 9180),
    DHKEM(P-384, HKDF-SHA384) / HKDF-SHA384 / AES-256-GCM, to the key version's public key,
    with ``info = dek_header`` — which binds the format version, the backup id and the key
    version: a wrapped DEK moved to another backup or presented for another key version does
    not open. Its format is version 1 whatever the version of ``data.enc``.

Every failure to parse, unwrap or authenticate raises one exception,
:class:`~ssbg.domain.errors.IntegrityFailure`, with no detail (pyca's habit).
"""

import struct
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from ssbg.domain.enums import Compression
from ssbg.domain.errors import IntegrityFailure

DATA_MAGIC = b"SSBG-ENC"
DEK_MAGIC = b"SSBG-DEK"
# The version of dek.wrapped (always) and of data.enc without compression.
FORMAT_VERSION = 1
# The version of data.enc with framed segments, which may be compressed.
FRAMED_FORMAT_VERSION = 2
DATA_FORMAT_VERSIONS = (FORMAT_VERSION, FRAMED_FORMAT_VERSION)

SEGMENT_CIPHER_AES_256_GCM = 0x0001
HPKE_KEM_DHKEM_P384_HKDF_SHA384 = 0x0011  # RFC 9180 §7.1
HPKE_KDF_HKDF_SHA384 = 0x0002  # RFC 9180 §7.2
HPKE_AEAD_AES_256_GCM = 0x0002  # RFC 9180 §7.3
_ALGORITHMS = (
    SEGMENT_CIPHER_AES_256_GCM,
    HPKE_KEM_DHKEM_P384_HKDF_SHA384,
    HPKE_KDF_HKDF_SHA384,
    HPKE_AEAD_AES_256_GCM,
)
# The compression ids of a version 2 header.
COMPRESSION_IDS = {Compression.NONE: 0x0000, Compression.ZSTD: 0x0001}
_COMPRESSIONS = {ident: compression for compression, ident in COMPRESSION_IDS.items()}

DEK_BYTES = 32
TAG_BYTES = 16
NONCE_BYTES = 12
COUNTER_BYTES = 11
MAX_SEGMENT_INDEX = 2 ** (8 * COUNTER_BYTES) - 1
MIN_SEGMENT_SIZE = 1
MAX_SEGMENT_SIZE = 64 * 1024 * 1024
MAX_KEY_VERSION_LENGTH = 64
HPKE_ENC_BYTES = 97  # an uncompressed P-384 point
WRAPPED_DEK_BYTES = HPKE_ENC_BYTES + DEK_BYTES + TAG_BYTES

HPKE_SUITE = Suite(KEM.P384, KDF.HKDF_SHA384, AEAD.AES_256_GCM)
WRAP_ALGORITHM = "HPKE-base/DHKEM-P384-HKDF-SHA384/HKDF-SHA384/AES-256-GCM"
SEGMENT_ALGORITHM = "AES-256-GCM/STREAM-uint88-counter-last-flag"

# magic(8) version(2) header_length(2) backup_id(16) segment_size(4) segment_cipher(2)
# kem(2) kdf(2) aead(2) key_version_length(1) — then the key version in ASCII.
_DATA_FIXED = struct.Struct(">8sHH16sIHHHHB")
# Version 2: the same, with compression(2) before key_version_length(1).
_DATA_FIXED_V2 = struct.Struct(">8sHH16sIHHHHHB")
_DATA_FIXED_BY_VERSION = {FORMAT_VERSION: _DATA_FIXED, FRAMED_FORMAT_VERSION: _DATA_FIXED_V2}
# magic(8) version(2) header_length(2) backup_id(16) kem(2) kdf(2) aead(2) key_version_length(1)
_DEK_FIXED = struct.Struct(">8sHH16sHHHB")

DATA_HEADER_MIN_BYTES = _DATA_FIXED.size  # enough to read the version and the length
DATA_HEADER_MAX_BYTES = _DATA_FIXED_V2.size + MAX_KEY_VERSION_LENGTH


def _check_key_version(key_version: str) -> bytes:
    encoded = key_version.encode("ascii")
    if not 1 <= len(encoded) <= MAX_KEY_VERSION_LENGTH:
        raise ValueError("key version must be 1-64 ASCII characters")
    return encoded


def format_version_for(compression: Compression) -> int:
    """The ``data.enc`` version the gateway writes: version 1 unless the backup is compressed
    (version 1 decrypts in place, segment-aligned, and every reader ever shipped reads it)."""
    return FORMAT_VERSION if compression is Compression.NONE else FRAMED_FORMAT_VERSION


@dataclass(frozen=True, slots=True)
class ObjectHeader:
    """The header of ``data.enc``; its encoding is the associated data of every segment."""

    backup_id: UUID
    key_version: str
    segment_size: int
    format_version: int = FORMAT_VERSION
    compression: Compression = Compression.NONE  # version 2 only

    def __post_init__(self) -> None:
        if not MIN_SEGMENT_SIZE <= self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError("segment size out of range")
        if self.format_version not in DATA_FORMAT_VERSIONS:
            raise ValueError("unknown format version")
        if self.format_version == FORMAT_VERSION and self.compression is not Compression.NONE:
            raise ValueError("format version 1 has no compression")
        _check_key_version(self.key_version)

    @property
    def framed(self) -> bool:
        """Whether segments are framed (version 2) rather than fixed-size (version 1)."""
        return self.format_version == FRAMED_FORMAT_VERSION

    def encode(self) -> bytes:
        version = _check_key_version(self.key_version)
        fixed = _DATA_FIXED_BY_VERSION[self.format_version]
        compression = (COMPRESSION_IDS[self.compression],) if self.framed else ()
        return (
            fixed.pack(
                DATA_MAGIC,
                self.format_version,
                fixed.size + len(version),
                self.backup_id.bytes,
                self.segment_size,
                *_ALGORITHMS,
                *compression,
                len(version),
            )
            + version
        )

    @staticmethod
    def encoded_length(key_version: str, format_version: int = FORMAT_VERSION) -> int:
        """The header's length in bytes: where the first segment starts."""
        fixed = _DATA_FIXED_BY_VERSION.get(format_version)
        if fixed is None:
            raise ValueError("unknown format version")
        return fixed.size + len(_check_key_version(key_version))

    @staticmethod
    def declared_length(data: bytes | bytearray) -> int:
        """The header length field of a header's first ``DATA_HEADER_MIN_BYTES`` bytes."""
        return int(struct.unpack_from(">H", data, 10)[0])

    @classmethod
    def parse(cls, data: bytes) -> tuple["ObjectHeader", int]:
        """Parse the header at the start of ``data``; return it and its length in bytes."""
        if len(data) < DATA_HEADER_MIN_BYTES:
            raise IntegrityFailure()
        magic, version = struct.unpack_from(">8sH", data)
        fixed = _DATA_FIXED_BY_VERSION.get(version)
        if magic != DATA_MAGIC or fixed is None or len(data) < fixed.size:
            raise IntegrityFailure()
        fields = fixed.unpack_from(data)
        length, backup_id, segment_size, algorithms = fields[2], fields[3], fields[4], fields[5:9]
        if fixed is _DATA_FIXED_V2:
            compression, kv_length = _COMPRESSIONS.get(fields[9]), fields[10]
        else:
            compression, kv_length = Compression.NONE, fields[9]
        if (
            algorithms != _ALGORITHMS
            or compression is None
            or length != fixed.size + kv_length
            or len(data) < length
        ):
            raise IntegrityFailure()
        try:
            key_version = data[fixed.size : length].decode("ascii")
            header = cls(UUID(bytes=backup_id), key_version, segment_size, version, compression)
        except ValueError:
            raise IntegrityFailure() from None
        return header, length


@dataclass(frozen=True, slots=True)
class WrappedDek:
    """The content of ``dek.wrapped``: a header that is also the HPKE ``info``, and the seal."""

    backup_id: UUID
    key_version: str
    sealed: bytes  # HPKE enc (97 bytes) ‖ AES-256-GCM(DEK) ‖ tag
    format_version: int = FORMAT_VERSION

    @staticmethod
    def header_for(
        backup_id: UUID, key_version: str, format_version: int = FORMAT_VERSION
    ) -> bytes:
        version = _check_key_version(key_version)
        return (
            _DEK_FIXED.pack(
                DEK_MAGIC,
                format_version,
                _DEK_FIXED.size + len(version),
                backup_id.bytes,
                HPKE_KEM_DHKEM_P384_HKDF_SHA384,
                HPKE_KDF_HKDF_SHA384,
                HPKE_AEAD_AES_256_GCM,
                len(version),
            )
            + version
        )

    @property
    def info(self) -> bytes:
        return self.header_for(self.backup_id, self.key_version, self.format_version)

    def encode(self) -> bytes:
        return self.info + self.sealed

    @classmethod
    def parse(cls, data: bytes) -> "WrappedDek":
        if len(data) < _DEK_FIXED.size:
            raise IntegrityFailure()
        magic, version, length, backup_id, kem, kdf, aead, kv_length = _DEK_FIXED.unpack_from(data)
        if (
            magic != DEK_MAGIC
            or version != FORMAT_VERSION
            or (kem, kdf, aead)
            != (HPKE_KEM_DHKEM_P384_HKDF_SHA384, HPKE_KDF_HKDF_SHA384, HPKE_AEAD_AES_256_GCM)
            or length != _DEK_FIXED.size + kv_length
            or len(data) != length + WRAPPED_DEK_BYTES
        ):
            raise IntegrityFailure()
        try:
            key_version = data[_DEK_FIXED.size : length].decode("ascii")
            _check_key_version(key_version)
        except ValueError:
            raise IntegrityFailure() from None
        return cls(UUID(bytes=backup_id), key_version, data[length:], version)


def generate_dek() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap_dek(
    dek: bytes, public_key: ec.EllipticCurvePublicKey, backup_id: UUID, key_version: str
) -> bytes:
    """Seal ``dek`` to the key version's public key; the result is the ``dek.wrapped`` object."""
    if len(dek) != DEK_BYTES:
        raise ValueError("the DEK must be 32 bytes")
    if not isinstance(public_key.curve, ec.SECP384R1):
        raise ValueError("key versions are P-384 keys")
    info = WrappedDek.header_for(backup_id, key_version)
    sealed = HPKE_SUITE.encrypt(dek, public_key, info=info)
    return WrappedDek(backup_id, key_version, sealed).encode()


def unwrap_dek(
    wrapped: bytes,
    private_key: ec.EllipticCurvePrivateKey,
    *,
    backup_id: UUID,
    key_version: str,
) -> bytes:
    """Open a ``dek.wrapped`` object that must belong to ``backup_id`` under ``key_version``."""
    parsed = WrappedDek.parse(wrapped)
    if parsed.backup_id != backup_id or parsed.key_version != key_version:
        raise IntegrityFailure()
    try:
        dek = HPKE_SUITE.decrypt(parsed.sealed, private_key, info=parsed.info)
    except (InvalidTag, ValueError):
        raise IntegrityFailure() from None
    if len(dek) != DEK_BYTES:
        raise IntegrityFailure()
    return dek


def segment_nonce(index: int, last: bool) -> bytes:
    if not 0 <= index <= MAX_SEGMENT_INDEX:
        raise ValueError("segment index out of range")
    return index.to_bytes(COUNTER_BYTES, "big") + (b"\x01" if last else b"\x00")


class SegmentSealer:
    """Encrypts the segments of one object. Thread-safe: AESGCM holds no per-call state."""

    overhead = TAG_BYTES  # bytes a stored segment adds to its plaintext

    def __init__(self, dek: bytes, header: bytes) -> None:
        if len(dek) != DEK_BYTES:
            raise ValueError("the DEK must be 32 bytes")
        self._aead = AESGCM(dek)
        self._aad = header

    def seal(
        self, index: int, plaintext: bytes | bytearray | memoryview, last: bool, frame: bytes = b""
    ) -> bytes:
        """Segment ``index``; ``frame`` (version 2: the segment's flag and length) joins the
        header in the associated data."""
        if not plaintext:
            raise ValueError("segments are never empty")
        aad = self._aad + frame if frame else self._aad
        return self._aead.encrypt(segment_nonce(index, last), plaintext, aad)


class SegmentOpener:
    def __init__(self, dek: bytes, header: bytes) -> None:
        if len(dek) != DEK_BYTES:
            raise IntegrityFailure()
        self._aead = AESGCM(dek)
        self._aad = header

    def open(
        self, index: int, ciphertext: bytes | memoryview, last: bool, frame: bytes = b""
    ) -> bytes:
        if len(ciphertext) <= TAG_BYTES or index > MAX_SEGMENT_INDEX:
            raise IntegrityFailure()
        aad = self._aad + frame if frame else self._aad
        try:
            return self._aead.decrypt(segment_nonce(index, last), ciphertext, aad)
        except (InvalidTag, ValueError):
            raise IntegrityFailure() from None


DekResolver = Callable[[ObjectHeader], bytes]


def dek_resolver_for(
    wrapped: bytes, private_key: ec.EllipticCurvePrivateKey, *, expected_key_version: str | None
) -> DekResolver:
    """A resolver that unwraps ``wrapped`` for the backup the header names, under the key
    version ``wrapped`` names — which must be ``expected_key_version``, if given.

    The data header names the version the backup was first sealed under; after a rewrap
    (SPEC §13.1) ``dek.wrapped`` names another, the one that protects the DEK now."""

    def resolve(header: ObjectHeader) -> bytes:
        key_version = WrappedDek.parse(wrapped).key_version
        if expected_key_version is not None and key_version != expected_key_version:
            raise IntegrityFailure()
        return unwrap_dek(wrapped, private_key, backup_id=header.backup_id, key_version=key_version)

    return resolve


def rewrap_dek(
    wrapped: bytes,
    private_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    *,
    backup_id: UUID,
    from_version: str,
    to_version: str,
) -> bytes:
    """``dek.wrapped`` of ``backup_id`` under ``from_version``, sealed again to ``to_version``'s
    public key (the DEK exists only in memory meanwhile; the ciphertext is untouched)."""
    dek = unwrap_dek(wrapped, private_key, backup_id=backup_id, key_version=from_version)
    return wrap_dek(dek, public_key, backup_id, to_version)
