"""Password-protected private key files: PKCS#8 ``EncryptedPrivateKeyInfo`` with PBES2.

Every password guess against a key file must cost at least :data:`MIN_ITERATIONS` rounds of
PBKDF2-HMAC-SHA256, with no cheaper check path (SPEC §6). PKCS#12 as ``cryptography`` writes
it fails that: its integrity MAC is keyed through the PKCS#12 KDF at 2,048 iterations whatever
the key bag uses, and ``cryptography``'s own PKCS#8 writer also stops at 2,048. So the file is
written here, as RFC 5958/8018 define it:

* ``EncryptedPrivateKeyInfo { encryptionAlgorithm = PBES2 { keyDerivationFunc = PBKDF2
  { salt (16 random bytes), iterationCount, keyLength 32, prf hmacWithSHA256 },
  encryptionScheme = aes256-CBC { iv (16 random bytes) } }, encryptedData }``, PEM
  ``ENCRYPTED PRIVATE KEY``; ``openssl pkey -in FILE`` reads it.
* Nothing in the file but the encrypted key: no MAC, no checksum keyed any cheaper. The only
  way to test a guess is the full derivation, then decryption (and a padding check and an
  ASN.1 parse of the result, which need the derived key too).

The DER structure is built and read with ``pyasn1`` (the ASN.1 schema of RFC 8018 from
``pyasn1-modules``); the key derivation and the cipher are ``cryptography``'s, and loading
hands the whole file to ``cryptography``'s PKCS#8 reader after the parameters were checked
(PBES2 + PBKDF2-HMAC-SHA256 + AES-256-CBC only, iterations within
[:data:`MIN_ITERATIONS`, :data:`MAX_ITERATIONS`]: a file edited to a lower count would
make guesses cheap, a huge one would make loading a denial of service).
"""

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from pyasn1.codec.der import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_modules import rfc5208, rfc8018

MIN_ITERATIONS = 600_000
MAX_ITERATIONS = 10_000_000
SALT_BYTES = 16
KEY_BYTES = 32
PEM_LABEL = "ENCRYPTED PRIVATE KEY"
KDF_NAME = "PBKDF2-HMAC-SHA256"
CIPHER_NAME = "AES-256-CBC"


class UnacceptableKeyFile(ValueError):
    """Not a key file this gateway writes, or protected more weakly than it promises."""


@dataclass(frozen=True, slots=True)
class KdfParameters:
    """How a guess at a key file's password is tested: what one guess costs."""

    scheme: str  # "PBES2"
    kdf: str  # "PBKDF2-HMAC-SHA256"
    iterations: int
    salt_bytes: int
    cipher: str  # "AES-256-CBC"


def _derive(password: bytes, salt: bytes, iterations: int) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, iterations=iterations)
    return kdf.derive(password)


def encrypt_private_key(
    key: ec.EllipticCurvePrivateKey, password: bytes, *, iterations: int = MIN_ITERATIONS
) -> bytes:
    """``key`` as a PEM ``ENCRYPTED PRIVATE KEY`` (see the module doc)."""
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError("iterations out of the accepted range")
    plain = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt, iv = os.urandom(SALT_BYTES), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(
        algorithms.AES(_derive(password, salt, iterations)), modes.CBC(iv)
    ).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()

    prf = rfc8018.AlgorithmIdentifier()
    prf["algorithm"] = rfc8018.id_hmacWithSHA256
    prf["parameters"] = univ.Null("")
    pbkdf2 = rfc8018.PBKDF2_params()
    pbkdf2["salt"]["specified"] = univ.OctetString(salt)
    pbkdf2["iterationCount"] = iterations
    pbkdf2["keyLength"] = KEY_BYTES
    pbkdf2["prf"] = prf
    kdf = rfc8018.AlgorithmIdentifier()
    kdf["algorithm"] = rfc8018.id_PBKDF2
    kdf["parameters"] = pbkdf2
    scheme = rfc8018.AlgorithmIdentifier()
    scheme["algorithm"] = rfc8018.aes256_CBC_PAD
    scheme["parameters"] = rfc8018.AES_IV(iv)
    pbes2 = rfc8018.PBES2_params()
    pbes2["keyDerivationFunc"] = kdf
    pbes2["encryptionScheme"] = scheme
    info = rfc5208.EncryptedPrivateKeyInfo()
    info["encryptionAlgorithm"]["algorithm"] = rfc8018.id_PBES2
    info["encryptionAlgorithm"]["parameters"] = pbes2
    info["encryptedData"] = encrypted
    return to_pem(encoder.encode(info))


def to_pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        b"\n".join(
            [f"-----BEGIN {PEM_LABEL}-----".encode(), *lines, f"-----END {PEM_LABEL}-----".encode()]
        )
        + b"\n"
    )


def der_of(data: bytes) -> bytes:
    text = data.strip()
    begin, end = f"-----BEGIN {PEM_LABEL}-----".encode(), f"-----END {PEM_LABEL}-----".encode()
    if not (text.startswith(begin) and text.endswith(end)):
        raise UnacceptableKeyFile("not a PEM ENCRYPTED PRIVATE KEY")
    try:
        return base64.b64decode(b"".join(text[len(begin) : -len(end)].split()), validate=True)
    except binascii.Error:
        raise UnacceptableKeyFile("damaged PEM body") from None


def kdf_parameters(data: bytes) -> KdfParameters:
    """The password-protection parameters of a key file, checked against what this gateway
    accepts (``UnacceptableKeyFile`` otherwise)."""
    try:
        info, rest = decoder.decode(der_of(data), asn1Spec=rfc5208.EncryptedPrivateKeyInfo())
        algorithm = info["encryptionAlgorithm"]
        if rest or algorithm["algorithm"] != rfc8018.id_PBES2:
            raise UnacceptableKeyFile("not PBES2")
        pbes2, _ = decoder.decode(algorithm["parameters"], asn1Spec=rfc8018.PBES2_params())
        kdf = pbes2["keyDerivationFunc"]
        if kdf["algorithm"] != rfc8018.id_PBKDF2:
            raise UnacceptableKeyFile("not PBKDF2")
        pbkdf2, _ = decoder.decode(kdf["parameters"], asn1Spec=rfc8018.PBKDF2_params())
        prf = pbkdf2["prf"]["algorithm"] if pbkdf2["prf"].isValue else rfc8018.id_hmacWithSHA1
        if prf != rfc8018.id_hmacWithSHA256:
            raise UnacceptableKeyFile("PBKDF2 is not keyed with HMAC-SHA256")
        if pbes2["encryptionScheme"]["algorithm"] != rfc8018.aes256_CBC_PAD:
            raise UnacceptableKeyFile("not AES-256-CBC")
        if pbkdf2["keyLength"].isValue and int(pbkdf2["keyLength"]) != KEY_BYTES:
            raise UnacceptableKeyFile("wrong derived key length")
        salt = bytes(pbkdf2["salt"]["specified"])
        iterations = int(pbkdf2["iterationCount"])
    except PyAsn1Error:
        raise UnacceptableKeyFile("not an EncryptedPrivateKeyInfo") from None
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise UnacceptableKeyFile("iteration count out of the accepted range")
    if len(salt) < SALT_BYTES:
        raise UnacceptableKeyFile("salt too short")
    return KdfParameters("PBES2", KDF_NAME, iterations, len(salt), CIPHER_NAME)


def decrypt_private_key(data: bytes, password: bytes) -> ec.EllipticCurvePrivateKey:
    """The EC private key in a key file; ``UnacceptableKeyFile`` for a file outside what
    :func:`kdf_parameters` accepts, ``ValueError`` for a wrong password or damaged file."""
    kdf_parameters(data)
    key = serialization.load_der_private_key(der_of(data), password)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UnacceptableKeyFile("not an EC private key")
    return key
