"""Offline recovery (SPEC §6, §11): ``data.enc`` + ``dek.wrapped`` + the key file → plaintext.

No database, no server, no configuration: backups outlive the gateway. Both format versions
are read (a compressed backup, version 2, is decompressed segment by segment). Every segment is
authenticated as it is decrypted, and the output appears only after the *whole* object
verified: plaintext goes to a temporary file beside the output (mode 0600, written with
``O_DIRECT`` where the filesystem allows it), which is fsynced and renamed over the output at
the end, or removed on any failure — including a truncated object, which is only detectable at
its end.
"""

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric import ec

from ssbg.domain.errors import KeyUnavailable
from ssbg.infrastructure.crypto.key_files import UnacceptableKeyFile, decrypt_private_key
from ssbg.infrastructure.crypto.key_store import load_legacy_private_key
from ssbg.infrastructure.crypto.object_decryptor import ObjectDecryptor
from ssbg.infrastructure.crypto.object_format import dek_resolver_for
from ssbg.infrastructure.durable_files import fsync_directory
from ssbg.infrastructure.hashing_file_writer import HashingFileWriter

READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class RecoveredBackup:
    backup_id: UUID
    key_version: str
    size: int
    checksum_plaintext: str
    format_version: int
    compression: str  # "none" or "zstd", from the object's header


def load_private_key_file(path: Path, password: str) -> ec.EllipticCurvePrivateKey:
    """Open a key version's private key file: ``P-NNN.private.pem`` (PKCS#8, current) or
    ``P-NNN.private.p12`` (PKCS#12, earlier versions); ``KeyUnavailable`` for a wrong
    password or another kind of file."""
    try:
        data = path.read_bytes()
    except OSError:
        raise KeyUnavailable("The key file cannot be read.") from None
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return decrypt_private_key(data, password.encode("utf-8"))
        return load_legacy_private_key(data, password.encode("utf-8"))
    except UnacceptableKeyFile as exc:
        raise KeyUnavailable(f"The key file is not one SSBG accepts: {exc}.") from None
    except ValueError:
        raise KeyUnavailable("The key file cannot be opened with this password.") from None


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
    temporary = output.with_name(f".{output.name}.{secrets.token_hex(8)}.partial")
    sink = HashingFileWriter(temporary, exclusive=True)  # never a file that is not ours
    try:
        with sink, data_path.open("rb") as source:
            while chunk := source.read(READ_CHUNK):
                for plaintext in decryptor.feed(chunk):
                    sink.write(plaintext)
            sink.write(decryptor.finish())
            _written, checksum = sink.finish()
        os.replace(temporary, output)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_directory(output.parent)
    header = decryptor.header
    assert header is not None
    return RecoveredBackup(
        backup_id=header.backup_id,
        key_version=header.key_version,
        size=decryptor.plaintext_bytes,
        checksum_plaintext=checksum,
        format_version=header.format_version,
        compression=header.compression.value,
    )
