"""Reading the cost of a password guess out of a key file, without the gateway's own reader.

The structures are walked generically (DER decoded with no schema), so a change in how the
gateway writes or reads its files cannot make this agree by accident.
"""

import base64
import struct
from pathlib import Path
from typing import Any

from pyasn1.codec.der import decoder
from pyasn1.type import univ

OIDS = {
    "1.2.840.113549.1.5.13": "PBES2",
    "1.2.840.113549.1.5.12": "PBKDF2",
    "1.2.840.113549.2.9": "hmacWithSHA256",
    "2.16.840.1.101.3.4.1.42": "aes256-CBC",
}


def _der_of_pem(path: Path) -> bytes:
    lines = path.read_text(encoding="ascii").strip().splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED PRIVATE KEY-----", lines[0]
    assert lines[-1] == "-----END ENCRYPTED PRIVATE KEY-----", lines[-1]
    return base64.b64decode("".join(lines[1:-1]))


def password_costs_of_pkcs8(path: Path) -> dict[str, Any]:
    """PKCS#8 EncryptedPrivateKeyInfo: the KDF and everything else in the file."""
    info, rest = decoder.decode(_der_of_pem(path))
    assert rest == b""
    algorithm, encrypted = info[0], info[1]
    assert OIDS.get(str(algorithm[0])) == "PBES2"
    key_derivation, scheme = algorithm[1][0], algorithm[1][1]
    pbkdf2 = key_derivation[1]
    salt, iterations = bytes(pbkdf2[0]), int(pbkdf2[1])
    parts = [pbkdf2[index] for index in range(len(pbkdf2))]
    # After salt and iterations: an optional keyLength INTEGER, then an optional prf
    # AlgorithmIdentifier (absent means HMAC-SHA1, RFC 8018).
    prf = next(
        (OIDS.get(str(part[0])) for part in parts[2:] if isinstance(part, univ.Sequence)), None
    )
    return {
        "kdf": OIDS.get(str(key_derivation[0])),
        "prf": prf or "hmacWithSHA1",
        "iterations": iterations,
        "salt_bytes": len(salt),
        "cipher": OIDS.get(str(scheme[0])),
        # EncryptedPrivateKeyInfo has two fields; anything after them could be a cheaper check.
        "other_checks": [type(info[index]).__name__ for index in range(2, len(info))]
        + ([] if len(bytes(encrypted)) % 16 == 0 else ["odd ciphertext"]),
    }


def password_costs_of_sealed_key(path: Path) -> dict[str, Any]:
    """``magic (SSBGMFA1 or SSBGINT1) ‖ iterations (u32) ‖ salt ‖ nonce ‖ AES-GCM(key)``: one
    derivation, one tag."""
    blob = path.read_bytes()
    assert blob[:8] in (b"SSBGMFA1", b"SSBGINT1")
    (iterations,) = struct.unpack(">I", blob[8:12])
    assert len(blob) == 8 + 4 + 16 + 12 + 32 + 16  # nothing but the sealed key and its tag
    return {"kdf": "PBKDF2-HMAC-SHA256", "iterations": iterations}
