"""Offline recovery (SPEC §6, §11): ``data.enc`` + ``dek.wrapped`` + the key file → plaintext.

No database, no server, no configuration: backups outlive the gateway. Every segment is
authenticated as it is decrypted, and the output appears only after the *whole* object
verified: plaintext goes to a temporary file beside the output (mode 0600), which is fsynced
and renamed over the output at the end, or removed on any failure — including a truncated
object, which is only detectable at its end.
"""

import contextlib
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from ssbg.domain.errors import KeyUnavailable
from ssbg.infrastructure.crypto.object_format import ObjectDecryptor, dek_resolver_for

READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class RecoveredBackup:
    backup_id: UUID
    key_version: str
    size: int
    checksum_plaintext: str


def load_private_key_file(path: Path, password: str) -> ec.EllipticCurvePrivateKey:
    """Open a ``P-NNN.private.p12``; ``KeyUnavailable`` for a wrong password or another file."""
    try:
        key, _cert, _others = pkcs12.load_key_and_certificates(
            path.read_bytes(), password.encode("utf-8")
        )
    except (OSError, ValueError):
        raise KeyUnavailable("The key file cannot be opened with this password.") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyUnavailable("The key file holds no EC private key.")
    return key


def recover_to_file(
    data_path: Path,
    wrapped_path: Path,
    private_key: ec.EllipticCurvePrivateKey,
    output: Path,
) -> RecoveredBackup:
    """Decrypt and verify; raises ``IntegrityFailure`` (and writes nothing) if anything is off."""
    wrapped = wrapped_path.read_bytes()
    decryptor = ObjectDecryptor(
        dek_resolver_for(wrapped, private_key, expected_key_version=None), expected_backup_id=None
    )
    digest = hashlib.sha512()
    temporary = output.with_name(f".{output.name}.{secrets.token_hex(8)}.partial")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as sink, data_path.open("rb") as source:
            while chunk := source.read(READ_CHUNK):
                for plaintext in decryptor.feed(chunk):
                    digest.update(plaintext)
                    sink.write(plaintext)
            plaintext = decryptor.finish()
            digest.update(plaintext)
            sink.write(plaintext)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temporary, output)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    directory = os.open(output.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    header = decryptor.header
    assert header is not None
    return RecoveredBackup(
        backup_id=header.backup_id,
        key_version=header.key_version,
        size=decryptor.plaintext_bytes,
        checksum_plaintext=digest.hexdigest(),
    )
