"""Verifying an evidence bundle offline (``ssbg audit verify --bundle``): no database, no
network, no key store — the file and, ideally, the gateway's public key obtained independently.

Two passes over the file, so memory stays flat: the first reads the header, every checkpoint,
the signed head and the order of the records; the second feeds the entries, in batches, to the
same :class:`ChainVerifier` the gateway validates its database with (rules 1-9, judging
checkpoint positions only by the intervals the checkpoints signed). Then rules 10-12 of
``domain.audit_bundle_checks``: what the verified signatures cover.

The trusted key: the PEM keys the auditor pins (``key_source: "pinned"``), else the key in the
bundle's own header (``"bundle"``), which shows the bundle is internally consistent, not who
made it — the result says which, and warns.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ssbg.domain.audit_bundle import (
    ENTRY_PREFIX,
    RECORD_ORDER,
    BundleHeader,
    SignedHead,
    decode_line,
    parse_certificate,
    parse_checkpoint,
    parse_end,
    parse_entry,
    parse_header,
    parse_signed_head,
    record_type,
)
from ssbg.domain.audit_bundle_checks import (
    BundleFacts,
    BundleWarning,
    bundle_problem,
    bundle_warnings,
    head_covers,
)
from ssbg.domain.audit_checkpoint import Checkpoint
from ssbg.domain.audit_verification import (
    ChainVerifier,
    EntryTuple,
    ValidationReason,
    ValidationResult,
)
from ssbg.domain.destruction_certificate import MalformedCertificate, check_shape, signing_input
from ssbg.domain.errors import BundleMalformed
from ssbg.infrastructure.crypto.audit_signing import CheckpointSignatureCheck

BATCH_SIZE = 5000


@dataclass(frozen=True, slots=True)
class BundleVerification:
    """The result of an offline verification, and how much it is worth."""

    result: ValidationResult
    bundle_version: int
    key_source: str  # "pinned": keys the auditor supplied; "bundle": the header's own key
    signed_head: bool  # a signed head verified and covers every entry
    warnings: list[BundleWarning] = field(default_factory=list)
    certificates_verified: int = 0  # key destruction certificates in the bundle, all valid

    @property
    def valid(self) -> bool:
        return self.result.valid

    def as_dict(self) -> dict[str, Any]:
        """``/audit/validate``'s shape, then what the verification rests on."""
        return {
            **self.result.as_dict(),
            "bundle_version": self.bundle_version,
            "key_source": self.key_source,
            "signed_head": self.signed_head,
            "warnings": [warning.value for warning in self.warnings],
            "certificates_verified": self.certificates_verified,
        }


def verify_bundle(path: Path, trusted_public_keys: list[str] | None = None) -> BundleVerification:
    """Verify a bundle file.

    ``trusted_public_keys``: PEM public keys (already known to parse) the auditor obtained
    independently; every signature must be by one of them. ``None`` trusts the key in the
    bundle's header. Raises ``BundleMalformed`` when the file is not a complete bundle in the
    documented format.
    """
    outline = _read_outline(path)
    header = outline.header
    pinned = trusted_public_keys is not None
    try:
        signatures = CheckpointSignatureCheck.of_pems(
            trusted_public_keys if trusted_public_keys is not None else [header.public_key_pem]
        )
    except ValueError:
        raise BundleMalformed("The header's signing key is not an EC P-384 key.") from None
    verifier = ChainVerifier(
        first_sequence=header.from_sequence,
        anchor_hash=header.anchor_hash,
        signature_valid=signatures,
        checkpoint_interval=None,  # only the intervals the checkpoints signed count
    )
    verifier.add_checkpoints(outline.checkpoints)
    anchor = header.audit_anchor
    hash_at_anchor = None
    # A certificate names its KEY_DESTROY entry: in range, that entry must have its hash.
    named = {c["audit_sequence"]: None for c in outline.certificates if _shaped(c)}
    hashes: dict[int, str | None] = dict(named)
    for batch in _entry_batches(path):
        if anchor is not None and hash_at_anchor is None:
            hash_at_anchor = _hash_in(batch, anchor.sequence)
        for sequence in named:
            hashes[sequence] = hashes[sequence] or _hash_in(batch, sequence)
        if not verifier.add_entries(batch):
            break
    reaches_head = header.to_sequence >= header.chain_head.sequence
    result = verifier.finish(
        head=header.chain_head,
        expected_last_sequence=header.to_sequence,
        expected_last_hash=header.chain_head.hash if reaches_head else None,
    )
    facts = BundleFacts(
        version=header.version,
        pinned=pinned,
        from_sequence=header.from_sequence,
        last_sequence=verifier.last_sequence,
        last_hash=verifier.last_hash,
        covered_through=verifier.last_checkpoint_sequence or header.from_sequence - 1,
        reaches_head=reaches_head,
        signed_head=outline.signed_head,
        signed_head_verified=_head_verifies(outline.signed_head, header, signatures),
        audit_anchor=anchor,
        hash_at_audit_anchor=hash_at_anchor,
    )
    signed = result.valid and head_covers(facts)
    if result.valid and (problem := bundle_problem(facts)) is not None:
        result = result.failed(*problem)
    if signed:
        result = replace(result, anchor=anchor)
    for certificate in outline.certificates:
        if not _certificate_holds(certificate, signatures, hashes, header):
            sequence = certificate.get("audit_sequence")
            at = sequence if isinstance(sequence, int) else header.from_sequence
            result = result.failed(at, ValidationReason.CERTIFICATE_INVALID)
    return BundleVerification(
        result=result,
        bundle_version=header.version,
        key_source="pinned" if pinned else "bundle",
        signed_head=signed,
        warnings=bundle_warnings(facts),
        certificates_verified=len(outline.certificates) if result.valid else 0,
    )


def _shaped(certificate: dict[str, Any]) -> bool:
    try:
        check_shape(certificate)
    except MalformedCertificate:
        return False
    return True


def _certificate_holds(
    certificate: dict[str, Any],
    signatures: CheckpointSignatureCheck,
    hashes: dict[int, str | None],
    header: BundleHeader,
) -> bool:
    """Signed by a trusted key; and, when its KEY_DESTROY entry is in the bundle, naming it."""
    if not _shaped(certificate):
        return False
    if not signatures.verifies(
        certificate["signing_key_id"], signing_input(certificate), certificate["signature"]
    ):
        return False
    sequence: int = certificate["audit_sequence"]
    if header.from_sequence <= sequence <= header.to_sequence:
        named: str = certificate["audit_entry_hash"]
        return hashes.get(sequence) == named
    return True


def _head_verifies(
    head: SignedHead | None, header: BundleHeader, signatures: CheckpointSignatureCheck
) -> bool:
    if head is None:
        return False
    try:
        message = head.signing_input(header)
    except ValueError:  # values no gateway signs
        return False
    return signatures.verifies(head.signing_key_id, message, head.signature)


def _hash_in(batch: list[EntryTuple], sequence_number: int) -> str | None:
    """The hash of the entry ``sequence_number`` in ``batch`` (ascending), if it is there."""
    if not batch or not batch[0][0] <= sequence_number <= batch[-1][0]:
        return None
    position = sequence_number - batch[0][0]
    if position < len(batch) and batch[position][0] == sequence_number:
        return batch[position][3]
    return next((entry[3] for entry in batch if entry[0] == sequence_number), None)


@dataclass
class _Outline:
    header: BundleHeader
    checkpoints: list[Checkpoint]
    signed_head: SignedHead | None
    certificates: list[dict[str, Any]] = field(default_factory=list)


def _read_outline(path: Path) -> _Outline:
    """First pass: the header, every checkpoint, the signed head, and the order of records."""
    outline: _Outline | None = None
    phase = "header"
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if outline is None:
                outline = _Outline(parse_header(decode_line(line, number), number), [], None)
                phase = "entry"
                continue
            kind = "entry" if line.startswith(ENTRY_PREFIX) else None
            record = None
            if kind is None:
                record = decode_line(line, number)
                kind = record_type(record, number)
            if (
                phase == "end"
                or kind == "header"
                or RECORD_ORDER.index(kind) < RECORD_ORDER.index(phase)
                or (kind == "signed_head" and phase == "signed_head")
            ):
                raise BundleMalformed(f"Line {number}: a {kind} record is out of order.")
            phase = kind
            if record is not None:
                _take(outline, kind, record, number)
    if outline is None:
        raise BundleMalformed("The bundle is empty.")
    if phase != "end":
        raise BundleMalformed("The bundle is incomplete: it has no end record.")
    return outline


def _take(outline: _Outline, kind: str, record: dict[str, Any], number: int) -> None:
    if kind == "checkpoint":
        checkpoint = parse_checkpoint(record, number)
        checkpoints = outline.checkpoints
        if checkpoints and checkpoint.sequence_number <= checkpoints[-1].sequence_number:
            raise BundleMalformed(f"Line {number}: checkpoints must ascend.")
        checkpoints.append(checkpoint)
    elif kind == "signed_head":
        if outline.header.version < 2:
            raise BundleMalformed(f"Line {number}: a version 1 bundle has no signed head.")
        outline.signed_head = parse_signed_head(record, number)
    elif kind == "certificate":
        outline.certificates.append(parse_certificate(record, number))
    elif kind == "end":
        _entries, _checkpoints, certificates = parse_end(record, number)
        if certificates != len(outline.certificates):
            raise BundleMalformed(f"Line {number}: the certificate count does not match.")


def _entry_batches(path: Path) -> Iterator[list[EntryTuple]]:
    """Second pass: the entries, parsed, in batches (memory stays flat)."""
    batch: list[EntryTuple] = []
    with path.open("rb") as lines:
        next(lines)  # the header
        for number, line in enumerate(lines, start=2):
            record = decode_line(line, number)
            if record.get("type") != "entry":
                break
            batch.append(parse_entry(record, number))
            if len(batch) == BATCH_SIZE:
                yield batch
                batch = []
    if batch:
        yield batch
