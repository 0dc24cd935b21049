"""The encrypted object format, version 1 (SPEC §6; specified in ``docs/object-format.md``).

Two objects per backup:

``backups/<id>/data.enc``
    ``header ‖ segment_0 ‖ … ‖ segment_n``. The header is self-describing (magic, format
    version, backup id, key version, segment size, algorithm ids). Each segment is AES-256-GCM
    of ``segment_size`` plaintext bytes (the last one: 1…``segment_size``) plus a 16-byte tag,
    under the backup's DEK, with nonce ``uint88_be(i) ‖ last_flag`` and the *whole header* as
    associated data. Reordered segments fail (index in the nonce); a truncated object fails
    (its new final segment was sealed with ``last_flag = 0``); appended bytes fail (the real
    final segment is then read as non-final); a segment or header from another backup fails
    (other DEK, other associated data).

``backups/<id>/dek.wrapped``
    ``dek_header ‖ hpke_ciphertext``: the 32-byte DEK sealed with HPKE base mode (RFC 9180),
    DHKEM(P-384, HKDF-SHA384) / HKDF-SHA384 / AES-256-GCM, to the key version's public key,
    with ``info = dek_header`` — which binds the format version, the backup id and the key
    version: a wrapped DEK moved to another backup or presented for another key version does
    not open.

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

from ssbg.domain.errors import IntegrityFailure

DATA_MAGIC = b"SSBG-ENC"
DEK_MAGIC = b"SSBG-DEK"
FORMAT_VERSION = 1

SEGMENT_CIPHER_AES_256_GCM = 0x0001
HPKE_KEM_DHKEM_P384_HKDF_SHA384 = 0x0011  # RFC 9180 §7.1
HPKE_KDF_HKDF_SHA384 = 0x0002  # RFC 9180 §7.2
HPKE_AEAD_AES_256_GCM = 0x0002  # RFC 9180 §7.3

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
# magic(8) version(2) header_length(2) backup_id(16) kem(2) kdf(2) aead(2) key_version_length(1)
_DEK_FIXED = struct.Struct(">8sHH16sHHHB")

DATA_HEADER_MAX_BYTES = _DATA_FIXED.size + MAX_KEY_VERSION_LENGTH


def _check_key_version(key_version: str) -> bytes:
    encoded = key_version.encode("ascii")
    if not 1 <= len(encoded) <= MAX_KEY_VERSION_LENGTH:
        raise ValueError("key version must be 1-64 ASCII characters")
    return encoded


@dataclass(frozen=True, slots=True)
class ObjectHeader:
    """The header of ``data.enc``; its encoding is the associated data of every segment."""

    backup_id: UUID
    key_version: str
    segment_size: int
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not MIN_SEGMENT_SIZE <= self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError("segment size out of range")
        _check_key_version(self.key_version)

    def encode(self) -> bytes:
        version = _check_key_version(self.key_version)
        return (
            _DATA_FIXED.pack(
                DATA_MAGIC,
                self.format_version,
                _DATA_FIXED.size + len(version),
                self.backup_id.bytes,
                self.segment_size,
                SEGMENT_CIPHER_AES_256_GCM,
                HPKE_KEM_DHKEM_P384_HKDF_SHA384,
                HPKE_KDF_HKDF_SHA384,
                HPKE_AEAD_AES_256_GCM,
                len(version),
            )
            + version
        )

    @staticmethod
    def encoded_length(key_version: str) -> int:
        """The header's length in bytes: where the first segment starts."""
        return _DATA_FIXED.size + len(_check_key_version(key_version))

    @classmethod
    def parse(cls, data: bytes) -> tuple["ObjectHeader", int]:
        """Parse the header at the start of ``data``; return it and its length in bytes."""
        if len(data) < _DATA_FIXED.size:
            raise IntegrityFailure()
        (magic, version, length, backup_id, segment_size, cipher, kem, kdf, aead, kv_length) = (
            _DATA_FIXED.unpack_from(data)
        )
        if (
            magic != DATA_MAGIC
            or version != FORMAT_VERSION
            or (cipher, kem, kdf, aead)
            != (
                SEGMENT_CIPHER_AES_256_GCM,
                HPKE_KEM_DHKEM_P384_HKDF_SHA384,
                HPKE_KDF_HKDF_SHA384,
                HPKE_AEAD_AES_256_GCM,
            )
            or length != _DATA_FIXED.size + kv_length
            or len(data) < length
        ):
            raise IntegrityFailure()
        try:
            key_version = data[_DATA_FIXED.size : length].decode("ascii")
            header = cls(UUID(bytes=backup_id), key_version, segment_size, version)
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

    def __init__(self, dek: bytes, header: bytes) -> None:
        if len(dek) != DEK_BYTES:
            raise ValueError("the DEK must be 32 bytes")
        self._aead = AESGCM(dek)
        self._aad = header

    def seal(self, index: int, plaintext: bytes | bytearray | memoryview, last: bool) -> bytes:
        if not plaintext:
            raise ValueError("segments are never empty")
        return self._aead.encrypt(segment_nonce(index, last), plaintext, self._aad)


class SegmentOpener:
    def __init__(self, dek: bytes, header: bytes) -> None:
        if len(dek) != DEK_BYTES:
            raise IntegrityFailure()
        self._aead = AESGCM(dek)
        self._aad = header

    def open(self, index: int, ciphertext: bytes | memoryview, last: bool) -> bytes:
        if len(ciphertext) <= TAG_BYTES or index > MAX_SEGMENT_INDEX:
            raise IntegrityFailure()
        try:
            return self._aead.decrypt(segment_nonce(index, last), ciphertext, self._aad)
        except (InvalidTag, ValueError):
            raise IntegrityFailure() from None


DekResolver = Callable[[ObjectHeader], bytes]


class ObjectDecryptor:
    """Push-style decryption of a ``data.enc`` stream, verifying as it goes.

    ``feed`` returns the plaintext of every segment that is now known *not* to be the last
    one; ``finish`` authenticates the final segment (with the last-segment flag) and returns
    its plaintext, or raises ``IntegrityFailure`` — so a caller that releases plaintext only
    after ``finish`` returns never releases a truncated object. Memory: one segment buffer
    and at most one chunk held. Chunks that start on segment boundaries (see
    :meth:`ObjectHeader.encoded_length`) are opened in place, without copying.

    ``resolve_dek`` receives the parsed header and returns the DEK (typically by unwrapping
    ``dek.wrapped`` after checking the header names the expected backup and key version).
    """

    def __init__(
        self,
        resolve_dek: DekResolver,
        *,
        expected_backup_id: UUID | None,
        expected_segment_size: int | None = None,
    ) -> None:
        self._resolve_dek = resolve_dek
        self._expected_backup_id = expected_backup_id
        # The gateway knows the segment size from the (sealed) metadata: a header that says
        # otherwise is refused before any buffer is sized from it.
        self._expected_segment_size = expected_segment_size
        self._header_bytes = bytearray()  # until the header is parsed
        self._opener: SegmentOpener | None = None
        # A segment arriving whole inside an immutable chunk is opened from a view of that
        # chunk (``_held`` until more data shows it is not the last); one that straddles
        # chunks is gathered in ``_segment``, allocated once and reused. No per-segment
        # copies: fresh 1 MiB allocations cost more than AES-GCM itself here.
        self._held: tuple[bytes, int] | None = None
        self._segment = bytearray()
        self._filled = 0
        self._index = 0
        self.header: ObjectHeader | None = None
        self.plaintext_bytes = 0

    def feed(self, chunk: bytes | memoryview) -> list[bytes]:
        if self._opener is None:
            self._header_bytes += chunk
            if not self._start():
                return []
            chunk, self._header_bytes = bytes(self._header_bytes), bytearray()
        out: list[bytes] = []
        segment, size = self._segment, len(self._segment)
        # Only an immutable chunk is held: a caller may reuse a memoryview's buffer.
        whole = chunk if isinstance(chunk, bytes) else None
        with memoryview(chunk) as data:
            offset, total = 0, len(data)
            while offset < total:
                # A full segment is non-final only if at least one more byte follows it.
                if self._held is not None:
                    out.append(self._open_held(last=False))
                elif self._filled == size:
                    out.append(self._open_filled(last=False))
                if whole is not None and self._filled == 0 and total - offset >= size:
                    self._held = (whole, offset)
                    offset += size
                    continue
                taken = min(size - self._filled, total - offset)
                segment[self._filled : self._filled + taken] = data[offset : offset + taken]
                self._filled += taken
                offset += taken
        return out

    def finish(self) -> bytes:
        if self._held is not None:
            return self._open_held(last=True)
        if self._opener is None or self._filled == 0:
            # No header, or no segment at all (truncated after the header).
            raise IntegrityFailure()
        return self._open_filled(last=True)

    def _start(self) -> bool:
        """Parse the header once it has arrived; what follows it stays in ``_header_bytes``."""
        buffered = self._header_bytes
        if len(buffered) < _DATA_FIXED.size:
            return False
        declared = struct.unpack_from(">H", buffered, 10)[0]
        if len(buffered) < min(declared, DATA_HEADER_MAX_BYTES):
            return False
        header, length = ObjectHeader.parse(bytes(buffered[:DATA_HEADER_MAX_BYTES]))
        if self._expected_backup_id is not None and header.backup_id != self._expected_backup_id:
            raise IntegrityFailure()
        expected_size = self._expected_segment_size
        if expected_size is not None and header.segment_size != expected_size:
            raise IntegrityFailure()
        self._opener = SegmentOpener(self._resolve_dek(header), bytes(buffered[:length]))
        self._segment = bytearray(header.segment_size + TAG_BYTES)
        self.header = header
        del buffered[:length]
        return True

    def _open_held(self, *, last: bool) -> bytes:
        assert self._held is not None
        chunk, offset = self._held
        self._held = None
        with memoryview(chunk) as view, view[offset : offset + len(self._segment)] as sealed:
            return self._open(sealed, last)

    def _open_filled(self, *, last: bool) -> bytes:
        with memoryview(self._segment) as view, view[: self._filled] as sealed:
            plaintext = self._open(sealed, last)
        self._filled = 0
        return plaintext

    def _open(self, sealed: memoryview, last: bool) -> bytes:
        assert self._opener is not None
        plaintext = self._opener.open(self._index, sealed, last)
        self._index += 1
        self.plaintext_bytes += len(plaintext)
        return plaintext


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
