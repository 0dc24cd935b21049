"""File key store: the owner's keys, on the owner's volume, never in the database.

Layout of ``SSBG_KEYSTORE_DIR`` (directory mode 0700, files 0600):

* ``P-NNN.private.pem`` / ``P-NNN.public.pem`` — key-encryption key versions (EC P-384). The
  private key is a PKCS#8 ``ENCRYPTED PRIVATE KEY`` (PBES2: PBKDF2-HMAC-SHA256 at
  :data:`PBKDF2_ITERATIONS` iterations, AES-256-CBC) under ``SSBG_KEY_PASSWORD``, with no
  cheaper check of a password guess (see :mod:`ssbg.infrastructure.crypto.key_files`);
  ``openssl pkey`` reads it.
* ``audit-signing.private.pem`` / ``audit-signing.public.pem`` — the ECDSA P-384 key that signs
  audit checkpoints, stored the same way.
* ``mfa-seal.key`` — the AES-256 key that seals TOTP secrets in the database, itself sealed
  with AES-256-GCM under a PBKDF2-HMAC-SHA256 derivation of the password (the iteration count
  it records must lie in [600,000, 10^7]; the GCM tag is checked only with the derived key).
* ``integrity.key`` — the HMAC key of the database's keyed verifiers and row seals (SPEC
  §13.7), sealed the same way (magic ``SSBGINT1``); ``integrity.adopted`` records that a
  database was sealed with it.
* ``*.private.p12`` — the PKCS#12 files earlier versions wrote (their MAC made a guess cost
  only 2,048 iterations): read until :meth:`FileKeyStore.upgrade_key_files` rewrites them.
* ``.generated-key-password`` — development only: the password generated when
  ``SSBG_KEY_PASSWORD`` is unset. Production refuses to start without an explicit password.

Files are created atomically (temporary name, fsync, hard link into place, fsync the
directory), so replicas racing to create the same key end up sharing one of them.
"""

import hashlib
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.serialization import pkcs12

from ssbg.domain.errors import KeyUnavailable
from ssbg.infrastructure.crypto.key_files import (
    MAX_ITERATIONS,
    MIN_ITERATIONS,
    decrypt_private_key,
    encrypt_private_key,
)
from ssbg.infrastructure.crypto.secret_box import KEY_BYTES, SecretBox
from ssbg.infrastructure.durable_files import fsync_directory
from ssbg.infrastructure.private_files import make_private_directories

PBKDF2_ITERATIONS = MIN_ITERATIONS
PRIVATE_SUFFIX = ".private.pem"
LEGACY_PRIVATE_SUFFIX = ".private.p12"
AUDIT_SIGNING_NAME = "audit-signing"
MFA_SEAL_FILE = "mfa-seal.key"
GENERATED_PASSWORD_FILE = ".generated-key-password"  # noqa: S105 (a file name)
_MFA_SEAL_MAGIC = b"SSBGMFA1"
INTEGRITY_FILE = "integrity.key"
INTEGRITY_ADOPTED_FILE = "integrity.adopted"
_INTEGRITY_MAGIC = b"SSBGINT1"


@dataclass(frozen=True)
class PublicKeyInfo:
    name: str
    public_key_pem: str
    fingerprint: str  # SHA-256 hex of the DER SubjectPublicKeyInfo


def fingerprint_of(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def resolve_key_password(keystore_dir: Path, configured: str | None) -> str:
    """The configured password, or (development) a generated one kept beside the keys."""
    if configured:
        return configured
    path = keystore_dir / GENERATED_PASSWORD_FILE
    if not path.exists():
        _ensure_private_dir(keystore_dir)
        _write_new_file(path, secrets.token_urlsafe(32).encode("ascii"))
    return path.read_text(encoding="ascii").strip()


def _ensure_private_dir(path: Path) -> None:
    make_private_directories(path)
    path.chmod(0o700)


def _write_new_file(path: Path, content: bytes) -> bool:
    """Create ``path`` (mode 0600) unless it exists; True if this call created it."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
            created = True
        except FileExistsError:
            created = False
    finally:
        temporary.unlink(missing_ok=True)
    fsync_directory(path.parent)
    return created


def load_legacy_private_key(data: bytes, password: bytes) -> ec.EllipticCurvePrivateKey:
    """The EC key in a PKCS#12 file of an earlier version (``ValueError`` if it is not one)."""
    key, _certificate, _others = pkcs12.load_key_and_certificates(data, password)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an EC private key")
    return key


class FileKeyStore:
    def __init__(self, directory: Path, password: str) -> None:
        self.directory = directory
        self._password = password.encode("utf-8")
        self._private_keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self._mfa_box: SecretBox | None = None
        self._integrity_key: bytes | None = None

    # -- key-encryption key versions and the audit signing key ---------------------------

    def private_key_path(self, name: str) -> Path:
        return self.directory / f"{name}{PRIVATE_SUFFIX}"

    def legacy_private_key_path(self, name: str) -> Path:
        return self.directory / f"{name}{LEGACY_PRIVATE_SUFFIX}"

    def public_key_path(self, name: str) -> Path:
        return self.directory / f"{name}.public.pem"

    def ensure_key_pair(self, name: str) -> PublicKeyInfo:
        """Create the named EC P-384 key pair unless it exists; return its public half."""
        _ensure_private_dir(self.directory)
        if not self._private_key_file_exists(name):
            key = ec.generate_private_key(ec.SECP384R1())
            if _write_new_file(self.private_key_path(name), self._encrypt(key)):
                public_pem = key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                self.public_key_path(name).unlink(missing_ok=True)
                _write_new_file(self.public_key_path(name), public_pem)
        return self.public_key_info(name)

    def ensure_audit_signing_key(self) -> PublicKeyInfo:
        return self.ensure_key_pair(AUDIT_SIGNING_NAME)

    def public_key_info(self, name: str) -> PublicKeyInfo:
        public_key = self.load_private_key(name).public_key()
        pem = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
        return PublicKeyInfo(name=name, public_key_pem=pem, fingerprint=fingerprint_of(public_key))

    def load_private_key(self, name: str) -> ec.EllipticCurvePrivateKey:
        """Load (once per process) and return a private key; ``KeyUnavailable`` if it cannot be."""
        cached = self._private_keys.get(name)
        if cached is not None:
            return cached
        try:
            key = self._read_private_key(name)
        except (OSError, ValueError):
            raise KeyUnavailable(f"Key {name} cannot be loaded from the key store.") from None
        self._private_keys[name] = key
        return key

    def _private_key_file_exists(self, name: str) -> bool:
        return self.private_key_path(name).exists() or self.legacy_private_key_path(name).exists()

    def _read_private_key(self, name: str) -> ec.EllipticCurvePrivateKey:
        """The key from its current file, else from a legacy PKCS#12 file (``OSError`` /
        ``ValueError`` when neither can be read)."""
        try:
            return decrypt_private_key(self.private_key_path(name).read_bytes(), self._password)
        except FileNotFoundError:
            return load_legacy_private_key(
                self.legacy_private_key_path(name).read_bytes(), self._password
            )

    def _encrypt(self, key: ec.EllipticCurvePrivateKey) -> bytes:
        return encrypt_private_key(key, self._password, iterations=PBKDF2_ITERATIONS)

    def legacy_key_names(self) -> list[str]:
        """Names whose private key is still in a legacy PKCS#12 file."""
        return sorted(
            path.name.removesuffix(LEGACY_PRIVATE_SUFFIX)
            for path in self.directory.glob(f"*{LEGACY_PRIVATE_SUFFIX}")
        )

    def upgrade_key_file(self, name: str) -> bool:
        """Rewrite a legacy PKCS#12 key file in the current format; True if this call removed
        the legacy file (so exactly one of several replicas reports each upgrade).

        Crash-safe at every step: the new file is written beside the old one (temporary name,
        fsync, link into place), read back and compared with the old key, and only then is
        the old file removed. Until then the old file still works; a new file left by an
        interrupted upgrade is verified and adopted by the next one.
        """
        legacy_path = self.legacy_private_key_path(name)
        try:
            legacy = load_legacy_private_key(legacy_path.read_bytes(), self._password)
        except FileNotFoundError:
            return False
        except ValueError:
            raise KeyUnavailable(f"Key {name} cannot be opened to upgrade it.") from None
        _write_new_file(self.private_key_path(name), self._encrypt(legacy))
        try:
            upgraded = decrypt_private_key(self.private_key_path(name).read_bytes(), self._password)
        except (OSError, ValueError):
            raise KeyUnavailable(f"The upgraded file of key {name} does not load.") from None
        if upgraded.private_numbers() != legacy.private_numbers():
            raise KeyUnavailable(f"The current file of key {name} holds another key.")
        try:
            legacy_path.unlink()
        except FileNotFoundError:
            return False
        fsync_directory(self.directory)
        return True

    # -- the key that seals TOTP secrets --------------------------------------------------

    def mfa_secret_box(self) -> SecretBox:
        if self._mfa_box is None:
            self._mfa_box = SecretBox(
                self._sealed_key(MFA_SEAL_FILE, _MFA_SEAL_MAGIC, "MFA sealing")
            )
        return self._mfa_box

    def integrity_key(self) -> bytes:
        """The 256-bit key of the database's keyed verifiers and row seals (created once)."""
        if self._integrity_key is None:
            self._integrity_key = self._sealed_key(INTEGRITY_FILE, _INTEGRITY_MAGIC, "integrity")
        return self._integrity_key

    def integrity_adopted(self) -> bool:
        """Whether a database was already sealed with this key store (see
        ``ssbg.services.integrity_service``): after that, an unsealed row is a tampered one."""
        return (self.directory / INTEGRITY_ADOPTED_FILE).exists()

    def mark_integrity_adopted(self) -> None:
        _ensure_private_dir(self.directory)
        _write_new_file(self.directory / INTEGRITY_ADOPTED_FILE, b"sealed\n")

    def _sealed_key(self, file_name: str, magic: bytes, what: str) -> bytes:
        """A 256-bit key kept in ``file_name``, sealed under the password; created once."""
        path = self.directory / file_name
        if not path.exists():
            _ensure_private_dir(self.directory)
            _write_new_file(path, self._seal_key(magic, os.urandom(KEY_BYTES)))
        try:
            blob = path.read_bytes()
        except OSError:
            raise KeyUnavailable(f"The {what} key cannot be read.") from None
        return self._open_key(magic, blob, what)

    def _derive(self, salt: bytes, iterations: int) -> bytes:
        kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations)
        return kdf.derive(self._password)

    def _seal_key(self, magic: bytes, key: bytes) -> bytes:
        salt, nonce = os.urandom(16), os.urandom(12)
        header = magic + struct.pack(">I", PBKDF2_ITERATIONS) + salt + nonce
        wrapping = AESGCM(self._derive(salt, PBKDF2_ITERATIONS))
        return header + wrapping.encrypt(nonce, key, header)

    def _open_key(self, magic: bytes, blob: bytes, what: str) -> bytes:
        header_length = len(magic) + 4 + 16 + 12
        if len(blob) != header_length + KEY_BYTES + 16 or not blob.startswith(magic):
            raise KeyUnavailable(f"The {what} key file is damaged.")
        offset = len(magic)
        (iterations,) = struct.unpack(">I", blob[offset : offset + 4])
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise KeyUnavailable(f"The {what} key file records an unacceptable cost.")
        salt = blob[offset + 4 : offset + 20]
        nonce = blob[offset + 20 : offset + 32]
        try:
            wrapping = AESGCM(self._derive(salt, iterations))
            return wrapping.decrypt(nonce, blob[header_length:], blob[:header_length])
        except InvalidTag:
            raise KeyUnavailable(f"The {what} key cannot be opened with this password.") from None

    # -- crypto-shredding ------------------------------------------------------------------

    def forget(self, name: str) -> None:
        """Drop a private key this process holds in memory (after its version was destroyed)."""
        self._private_keys.pop(name, None)

    def destroy_private_key(self, name: str) -> bool:
        """Crypto-shred (SPEC §6): overwrite the private key file(s) of ``name`` with random
        bytes, fsync, unlink, fsync the folder; forget the key held in memory. The public
        key file stays, as evidence of what was destroyed. True if a file was destroyed
        (False: none was left, e.g. a retry after an interruption)."""
        self.forget(name)
        destroyed = False
        for path in (self.private_key_path(name), self.legacy_private_key_path(name)):
            try:
                fd = os.open(path, os.O_WRONLY)
            except FileNotFoundError:
                continue
            try:
                size = os.fstat(fd).st_size
                os.pwrite(fd, os.urandom(max(size, 1)), 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            path.unlink(missing_ok=True)
            destroyed = True
        fsync_directory(self.directory)
        return destroyed

    def has_private_key(self, name: str) -> bool:
        return self._private_key_file_exists(name)

    # -- health ---------------------------------------------------------------------------

    def check_readable(self, names: list[str]) -> None:
        """Raise ``KeyUnavailable`` unless every named private key file can be read."""
        for name in names:
            path = self.private_key_path(name)
            if not path.exists():
                path = self.legacy_private_key_path(name)
            if not os.access(path, os.R_OK):
                raise KeyUnavailable(f"Key {name} is not readable in the key store.")
