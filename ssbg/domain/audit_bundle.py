"""The evidence bundle, format version 2 (version 1 still read): JSON Lines an auditor verifies
offline (pure).

Documented with test vectors in docs/audit-evidence.md. One JSON object per line (UTF-8, LF):

1. ``header`` - format name and version, generator, export time, the range, the hash that
   anchors the range's first entry, the chain head at export time, the gateway's audit anchor
   at export time (version 2; version 1 had the configured checkpoint interval instead), and
   the signing key (key id, algorithm, public key PEM);
2. one ``entry`` per audit entry of the range, ascending: the twelve hashed fields, in their
   canonical form, plus ``prev_hash`` and ``entry_hash``;
3. one ``checkpoint`` per signed checkpoint of the range, ascending;
3b. one ``certificate`` per key destruction certificate whose ``KEY_DESTROY`` entry is in the
   range (``{"type": "certificate", "certificate": {…}}``, the document of
   ``domain.destruction_certificate``, signed by the same key; none in most bundles);
4. ``signed_head`` (version 2) - the gateway's signature over the bundle's last entry and the
   header's range, chain head, audit anchor and export time (:func:`signed_head_input`), like
   a transparency log's signed tree head: it covers every entry, and makes the header's claims
   signed ones;
5. ``end`` - counts of entries and checkpoints (and of certificates, when there are any), so an
   interrupted download is evident.

The line layout is not itself hashed or signed — the entry hashes and the signatures are — so
the parser is strict instead: unknown or missing fields, wrong JSON types, duplicate keys or
records out of order make the bundle :class:`BundleMalformed`. A well-formed bundle whose
content was changed is reported by the verifier as an invalid chain, not here (a version 2
bundle without its signed head, too: ``domain.audit_bundle_checks``).
"""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ssbg.domain.audit_chain import (
    HASHED_FIELDS,
    NotCanonical,
    canonical_entry_text,
    check_canonical,
)
from ssbg.domain.audit_checkpoint import (
    HASH_FORMAT,
    SIGNATURE_ALGORITHM,
    TIMESTAMP_FORMAT,
    Checkpoint,
)
from ssbg.domain.audit_verification import AnchorRef, EntryColumns, EntryTuple, HeadRef
from ssbg.domain.errors import BundleMalformed

BUNDLE_FORMAT = "SSBG-AUDIT-BUNDLE"
BUNDLE_VERSION = 2  # what the gateway writes
READABLE_VERSIONS = (1, 2)
BUNDLE_MEDIA_TYPE = "application/x-ndjson"
SIGNED_HEAD_STATEMENT = "SSBG-AUDIT-BUNDLE-HEAD-V1"

ENTRY_PREFIX = b'{"type":"entry",'
# The records in the order a bundle holds them (a signed head only in version 2).
RECORD_ORDER = ("header", "entry", "checkpoint", "certificate", "signed_head", "end")

_INT_FIELDS = frozenset({"sequence_number", "incident_level"})
_OPTIONAL_FIELDS = frozenset({"actor_id", "actor_role", "source_ip", "request_id"})
_ENTRY_KEYS = frozenset({"type", *HASHED_FIELDS, "prev_hash", "entry_hash"})
_CHECKPOINT_KEYS = frozenset(
    {
        "type",
        "sequence_number",
        "entry_hash",
        "created_at",
        "checkpoint_interval",
        "previous_checkpoint_sequence",
        "signing_key_id",
        "signature",
    }
)
_COMMON_HEADER_KEYS = frozenset(
    {
        "type",
        "format",
        "version",
        "generator",
        "exported_at",
        "range",
        "anchor_hash",
        "chain_head",
        "signing_key",
    }
)
_HEADER_KEYS = {
    1: _COMMON_HEADER_KEYS | {"checkpoint_interval"},
    2: _COMMON_HEADER_KEYS | {"audit_anchor"},
}
_SIGNED_HEAD_KEYS = frozenset(
    {"type", "sequence_number", "entry_hash", "signing_key_id", "signature"}
)


@dataclass(frozen=True, slots=True)
class BundleHeader:
    generator: str
    exported_at: str
    from_sequence: int
    to_sequence: int
    anchor_hash: str | None  # None: the entry before the range was missing at export
    chain_head: HeadRef
    signing_key_id: str
    public_key_pem: str
    version: int = BUNDLE_VERSION
    # Version 2: the gateway's audit anchor when it exported (None: it had none).
    audit_anchor: AnchorRef | None = None
    # Version 1 only: the interval the gateway was configured with — unsigned, never used to
    # judge checkpoint positions (each checkpoint's signed interval is).
    checkpoint_interval: int | None = None

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "type": "header",
            "format": BUNDLE_FORMAT,
            "version": self.version,
            "generator": self.generator,
            "exported_at": self.exported_at,
            "range": {"from_sequence": self.from_sequence, "to_sequence": self.to_sequence},
            "anchor_hash": self.anchor_hash,
            "chain_head": {"sequence": self.chain_head.sequence, "hash": self.chain_head.hash},
        }
        if self.version == 1:
            record["checkpoint_interval"] = self.checkpoint_interval
        else:
            anchor = self.audit_anchor
            record["audit_anchor"] = None if anchor is None else anchor.as_dict()
        record["signing_key"] = {
            "key_id": self.signing_key_id,
            "algorithm": SIGNATURE_ALGORITHM,
            "public_key_pem": self.public_key_pem,
        }
        return record


@dataclass(frozen=True, slots=True)
class SignedHead:
    """The signed head of a version 2 bundle: ``sequence_number`` and ``entry_hash`` name its
    last entry (the entry before the range and the header's ``anchor_hash`` if it has none)."""

    sequence_number: int
    entry_hash: str
    signing_key_id: str
    signature: str  # base64 of the DER signature over ``signed_head_input``

    def signing_input(self, header: BundleHeader) -> bytes:
        return signed_head_input(header, self.sequence_number, self.entry_hash)


def signed_head_input(header: BundleHeader, sequence_number: int, entry_hash: str) -> bytes:
    """The exact bytes a signed head's signature covers: ASCII ``name=value`` lines, each
    ending in LF, the first naming the statement (so no other signed statement of the gateway
    can pass for one). Empty values stand for null. ``ValueError`` for values that have no
    place in it (a gateway never signed such a head)."""
    anchor = header.audit_anchor
    hashes = [entry_hash, header.anchor_hash or "", header.chain_head.hash]
    times = [header.exported_at]
    if anchor is not None:
        hashes.append(anchor.hash)
        times.append(anchor.anchored_at)
    if not all(value == "" or HASH_FORMAT.fullmatch(value) for value in hashes):
        raise ValueError("hashes are 128 lowercase hex characters")
    if not all(TIMESTAMP_FORMAT.fullmatch(value) for value in times):
        raise ValueError("times are YYYY-MM-DDTHH:MM:SS.ffffffZ")
    lines = (
        SIGNED_HEAD_STATEMENT,
        f"sequence_number={sequence_number}",
        f"entry_hash={entry_hash}",
        f"from_sequence={header.from_sequence}",
        f"to_sequence={header.to_sequence}",
        f"anchor_hash={header.anchor_hash or ''}",
        f"chain_head_sequence={header.chain_head.sequence}",
        f"chain_head_hash={header.chain_head.hash}",
        f"audit_anchor_sequence={anchor.sequence if anchor else 0}",
        f"audit_anchor_hash={anchor.hash if anchor else ''}",
        f"audit_anchor_time={anchor.anchored_at if anchor else ''}",
        f"exported_at={header.exported_at}",
    )
    return "".join(f"{line}\n" for line in lines).encode("ascii")


# -- writing --------------------------------------------------------------------------------


def encode_record(record: dict[str, Any]) -> bytes:
    return (
        json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
    ).encode("utf-8")


def entry_records(rows: Sequence[EntryColumns]) -> Iterator[dict[str, Any]]:
    """Stored entries as bundle records, exactly as stored (``details`` parsed, not judged)."""
    for row in rows:
        (
            sequence_number,
            event_id,
            occurred_at,
            actor_id,
            actor_role,
            action,
            resource,
            result,
            details_json,
            source_ip,
            request_id,
            incident_level,
            prev_hash,
            entry_hash,
        ) = row
        yield {
            "type": "entry",
            "sequence_number": sequence_number,
            "event_id": event_id,
            "occurred_at": occurred_at,
            "actor_id": actor_id,
            "actor_role": actor_role,
            "action": action,
            "resource": resource,
            "result": result,
            "details": json.loads(details_json),
            "source_ip": source_ip,
            "request_id": request_id,
            "incident_level": incident_level,
            "prev_hash": prev_hash,
            "entry_hash": entry_hash,
        }


def checkpoint_record(checkpoint: Checkpoint) -> dict[str, Any]:
    return {"type": "checkpoint", **checkpoint.as_dict()}


def signed_head_record(head: SignedHead) -> dict[str, Any]:
    return {
        "type": "signed_head",
        "sequence_number": head.sequence_number,
        "entry_hash": head.entry_hash,
        "signing_key_id": head.signing_key_id,
        "signature": head.signature,
    }


def certificate_record(certificate: dict[str, Any]) -> dict[str, Any]:
    return {"type": "certificate", "certificate": certificate}


def end_record(entries: int, checkpoints: int, certificates: int = 0) -> dict[str, Any]:
    record: dict[str, Any] = {"type": "end", "entries": entries, "checkpoints": checkpoints}
    if certificates:
        record["certificates"] = certificates
    return record


# -- reading --------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        raise ValueError("duplicate key")
    return record


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_float=Decimal, parse_constant=_no_constants
)


def decode_line(line: bytes, number: int) -> dict[str, Any]:
    """One line as a JSON object; floats come back as ``Decimal`` (never canonical)."""
    try:
        record = _decoder.decode(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleMalformed(f"Line {number} is not a JSON object.") from None
    if not isinstance(record, dict):
        raise BundleMalformed(f"Line {number} is not a JSON object.")
    return record


def record_type(record: dict[str, Any], number: int) -> str:
    kind = record.get("type")
    if kind not in RECORD_ORDER:
        raise BundleMalformed(f"Line {number} has no known record type.")
    return str(kind)


def _field(record: dict[str, Any], name: str, kind: type, number: int) -> Any:
    value = record.get(name)
    if type(value) is not kind:  # exact: a bool is not an int here
        raise BundleMalformed(f"Line {number}: {name} must be a JSON {kind.__name__}.")
    return value


def _keys(record: dict[str, Any], expected: frozenset[str], number: int) -> None:
    if set(record) != expected:
        unexpected = sorted(set(record) - expected)
        missing = sorted(expected - set(record))
        raise BundleMalformed(
            f"Line {number}: unexpected fields {unexpected}, missing fields {missing}."
        )


def parse_header(record: dict[str, Any], number: int) -> BundleHeader:
    if record.get("type") != "header":
        raise BundleMalformed("The first line of a bundle is its header.")
    if record.get("format") != BUNDLE_FORMAT:
        raise BundleMalformed(f"Not an {BUNDLE_FORMAT} bundle.")
    version = record.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise BundleMalformed(f"Unsupported bundle version {version!r}.")
    _keys(record, _HEADER_KEYS[version], number)
    bounds = _field(record, "range", dict, number)
    head = _field(record, "chain_head", dict, number)
    key = _field(record, "signing_key", dict, number)
    _keys(bounds, frozenset({"from_sequence", "to_sequence"}), number)
    _keys(head, frozenset({"sequence", "hash"}), number)
    _keys(key, frozenset({"key_id", "algorithm", "public_key_pem"}), number)
    if key.get("algorithm") != SIGNATURE_ALGORITHM:
        raise BundleMalformed(f"Unsupported signature algorithm {key.get('algorithm')!r}.")
    interval = record.get("checkpoint_interval")
    if interval is not None and (type(interval) is not int or interval < 1):
        raise BundleMalformed(f"Line {number}: checkpoint_interval must be a positive integer.")
    header = BundleHeader(
        version=version,
        audit_anchor=_audit_anchor(record.get("audit_anchor"), number),
        generator=_field(record, "generator", str, number),
        exported_at=_field(record, "exported_at", str, number),
        from_sequence=_field(bounds, "from_sequence", int, number),
        to_sequence=_field(bounds, "to_sequence", int, number),
        anchor_hash=None
        if record["anchor_hash"] is None
        else _field(record, "anchor_hash", str, number),
        chain_head=HeadRef(
            sequence=_field(head, "sequence", int, number),
            hash=_field(head, "hash", str, number),
        ),
        checkpoint_interval=interval,
        signing_key_id=_field(key, "key_id", str, number),
        public_key_pem=_field(key, "public_key_pem", str, number),
    )
    if header.from_sequence < 1 or header.to_sequence < header.from_sequence - 1:
        raise BundleMalformed(f"Line {number}: the range is empty or inverted.")
    return header


def _audit_anchor(value: Any, number: int) -> AnchorRef | None:
    if value is None:
        return None
    if type(value) is not dict:
        raise BundleMalformed(f"Line {number}: audit_anchor must be a JSON object or null.")
    _keys(value, frozenset({"sequence", "hash", "anchored_at"}), number)
    return AnchorRef(
        sequence=_field(value, "sequence", int, number),
        hash=_field(value, "hash", str, number),
        anchored_at=_field(value, "anchored_at", str, number),
    )


def parse_signed_head(record: dict[str, Any], number: int) -> SignedHead:
    _keys(record, _SIGNED_HEAD_KEYS, number)
    return SignedHead(
        sequence_number=_field(record, "sequence_number", int, number),
        entry_hash=_field(record, "entry_hash", str, number),
        signing_key_id=_field(record, "signing_key_id", str, number),
        signature=_field(record, "signature", str, number),
    )


def parse_entry(record: dict[str, Any], number: int) -> EntryTuple:
    """An entry as verifier input; content with no canonical form hashes as ``None``."""
    _keys(record, _ENTRY_KEYS, number)
    values: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = record[name]
        if name in _OPTIONAL_FIELDS and value is None:
            values[name] = None
        elif name == "details":
            values[name] = _field(record, name, dict, number)
        else:
            values[name] = _field(record, name, int if name in _INT_FIELDS else str, number)
    prev_hash = _field(record, "prev_hash", str, number)
    entry_hash = _field(record, "entry_hash", str, number)
    try:
        check_canonical(values["details"])
        text: str | None = canonical_entry_text(**values)
    except NotCanonical:
        text = None
    return values["sequence_number"], text, prev_hash, entry_hash


def parse_checkpoint(record: dict[str, Any], number: int) -> Checkpoint:
    _keys(record, _CHECKPOINT_KEYS, number)
    return Checkpoint(
        sequence_number=_field(record, "sequence_number", int, number),
        entry_hash=_field(record, "entry_hash", str, number),
        created_at=_field(record, "created_at", str, number),
        checkpoint_interval=_field(record, "checkpoint_interval", int, number),
        previous_checkpoint_sequence=_field(record, "previous_checkpoint_sequence", int, number),
        signing_key_id=_field(record, "signing_key_id", str, number),
        signature=_field(record, "signature", str, number),
    )


def parse_certificate(record: dict[str, Any], number: int) -> dict[str, Any]:
    _keys(record, frozenset({"type", "certificate"}), number)
    certificate: dict[str, Any] = _field(record, "certificate", dict, number)
    return certificate


def parse_end(record: dict[str, Any], number: int) -> tuple[int, int, int]:
    """``(entries, checkpoints, certificates)``; a bundle without certificates omits their
    count."""
    if "certificates" in record:
        _keys(record, frozenset({"type", "entries", "checkpoints", "certificates"}), number)
        certificates = _field(record, "certificates", int, number)
    else:
        _keys(record, frozenset({"type", "entries", "checkpoints"}), number)
        certificates = 0
    return (
        _field(record, "entries", int, number),
        _field(record, "checkpoints", int, number),
        certificates,
    )
