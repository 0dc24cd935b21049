"""Key files: what a password guess costs, and which files are refused."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from pyasn1.codec.der import decoder, encoder
from pyasn1_modules import rfc5208, rfc8018

from ssbg.domain.errors import KeyUnavailable
from ssbg.infrastructure.crypto.key_files import (
    MAX_ITERATIONS,
    MIN_ITERATIONS,
    UnacceptableKeyFile,
    decrypt_private_key,
    der_of,
    encrypt_private_key,
    kdf_parameters,
    to_pem,
)
from ssbg.infrastructure.crypto.key_store import FileKeyStore

PASSWORD = b"correct horse battery staple"
KEY = ec.generate_private_key(ec.SECP384R1())
WRITTEN = encrypt_private_key(KEY, PASSWORD)


def with_iterations(pem: bytes, iterations: int) -> bytes:
    """The same file with its recorded iteration count edited (as an attacker could)."""
    info, _ = decoder.decode(der_of(pem), asn1Spec=rfc5208.EncryptedPrivateKeyInfo())
    pbes2, _ = decoder.decode(
        info["encryptionAlgorithm"]["parameters"], asn1Spec=rfc8018.PBES2_params()
    )
    pbkdf2, _ = decoder.decode(
        pbes2["keyDerivationFunc"]["parameters"], asn1Spec=rfc8018.PBKDF2_params()
    )
    pbkdf2["iterationCount"] = iterations
    pbes2["keyDerivationFunc"]["parameters"] = pbkdf2
    info["encryptionAlgorithm"]["parameters"] = pbes2
    return to_pem(encoder.encode(info))


def test_a_written_key_file_loads_with_its_password_and_records_the_promised_cost() -> None:
    assert decrypt_private_key(WRITTEN, PASSWORD).private_numbers() == KEY.private_numbers()
    parameters = kdf_parameters(WRITTEN)
    assert (parameters.kdf, parameters.iterations, parameters.cipher) == (
        "PBKDF2-HMAC-SHA256",
        600_000,
        "AES-256-CBC",
    )
    assert parameters.salt_bytes == 16


def test_a_wrong_password_is_refused_as_such() -> None:
    with pytest.raises(ValueError, match="password") as refused:
        decrypt_private_key(WRITTEN, b"a guess")
    assert not isinstance(refused.value, UnacceptableKeyFile)


@pytest.mark.parametrize("iterations", [2_048, MIN_ITERATIONS - 1, MAX_ITERATIONS + 1, 2**31 - 1])
def test_a_file_edited_to_another_cost_is_refused_before_any_derivation(iterations: int) -> None:
    with pytest.raises(UnacceptableKeyFile, match="iteration"):
        decrypt_private_key(with_iterations(WRITTEN, iterations), PASSWORD)


def test_the_library_pkcs8_writer_is_refused_because_a_guess_costs_it_too_little() -> None:
    # cryptography's own PKCS#8 writer keys PBES2 with far fewer rounds than promised: should a
    # future change fall back to it, loading fails instead of silently weakening the files.
    weak = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD),
    )
    with pytest.raises(UnacceptableKeyFile):
        decrypt_private_key(weak, PASSWORD)


@pytest.mark.parametrize(
    "data",
    [b"", b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n!!\n-----END ENCRYPTED PRIVATE KEY-----", b"x"],
)
def test_damaged_files_are_refused(data: bytes) -> None:
    with pytest.raises(UnacceptableKeyFile):
        decrypt_private_key(data, PASSWORD)


def test_writing_a_weaker_file_is_impossible() -> None:
    with pytest.raises(ValueError, match="range"):
        encrypt_private_key(KEY, PASSWORD, iterations=MIN_ITERATIONS - 1)


# -- the key store's upgrade of PKCS#12 files written by earlier versions ---------------------


def legacy_store(directory: Path, name: str = "P-001") -> FileKeyStore:
    """A key store as earlier versions left it: the key in a PKCS#12 file."""
    directory.mkdir(mode=0o700)
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(MIN_ITERATIONS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(PASSWORD)
    )
    (directory / f"{name}.private.p12").write_bytes(
        pkcs12.serialize_key_and_certificates(name.encode(), KEY, None, None, encryption)
    )
    return FileKeyStore(directory, PASSWORD.decode())


def test_a_legacy_file_is_read_then_upgraded_once_and_removed(tmp_path: Path) -> None:
    store = legacy_store(tmp_path / "keys")

    assert store.load_private_key("P-001").private_numbers() == KEY.private_numbers()
    assert store.legacy_key_names() == ["P-001"]
    assert store.upgrade_key_file("P-001") is True
    assert store.upgrade_key_file("P-001") is False

    assert not store.legacy_private_key_path("P-001").exists()
    assert kdf_parameters(store.private_key_path("P-001").read_bytes()).iterations == 600_000
    fresh = FileKeyStore(store.directory, PASSWORD.decode())
    assert fresh.load_private_key("P-001").private_numbers() == KEY.private_numbers()
    assert fresh.legacy_key_names() == []


def test_an_upgrade_interrupted_after_writing_the_new_file_is_finished_by_the_next(
    tmp_path: Path,
) -> None:
    store = legacy_store(tmp_path / "keys")
    store.private_key_path("P-001").write_bytes(encrypt_private_key(KEY, PASSWORD))

    assert store.upgrade_key_file("P-001") is True
    assert not store.legacy_private_key_path("P-001").exists()


def test_an_upgrade_never_removes_the_old_file_for_a_new_one_holding_another_key(
    tmp_path: Path,
) -> None:
    store = legacy_store(tmp_path / "keys")
    other = ec.generate_private_key(ec.SECP384R1())
    store.private_key_path("P-001").write_bytes(encrypt_private_key(other, PASSWORD))

    with pytest.raises(KeyUnavailable):
        store.upgrade_key_file("P-001")
    assert store.legacy_private_key_path("P-001").exists()


def test_an_mfa_seal_file_edited_to_a_cheaper_cost_is_refused(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys", PASSWORD.decode())
    store.mfa_secret_box()
    path = store.directory / "mfa-seal.key"
    blob = bytearray(path.read_bytes())
    blob[8:12] = (2_048).to_bytes(4, "big")
    path.write_bytes(bytes(blob))

    with pytest.raises(KeyUnavailable, match="cost"):
        FileKeyStore(store.directory, PASSWORD.decode()).mfa_secret_box()


def test_replicas_upgrading_the_same_file_at_once_report_it_once(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = legacy_store(tmp_path / "keys")
    replicas = [FileKeyStore(store.directory, PASSWORD.decode()) for _ in range(4)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        reported = list(pool.map(lambda replica: replica.upgrade_key_file("P-001"), replicas))

    assert reported.count(True) == 1
    assert sorted(path.name for path in store.directory.iterdir()) == ["P-001.private.pem"]
    fresh = FileKeyStore(store.directory, PASSWORD.decode())
    assert fresh.load_private_key("P-001").private_numbers() == KEY.private_numbers()
