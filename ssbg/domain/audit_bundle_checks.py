"""What the signatures of an evidence bundle cover (pure): rules 10-12 of offline verification,
applied once the chain of a bundle passed rules 1-9 (``domain.audit_verification``).

The hash chain only shows that entries agree with each other; a signature shows the gateway
wrote them. An entry is **covered** when a verified signature vouches for it or for an entry
after it (the hashes chain every earlier entry into a later one): a verified checkpoint at or
after it, or the bundle's verified signed head. Rule 9 judges where checkpoints had to be by
the intervals the checkpoints themselves signed — never by anything in the unsigned header.

10. Version 2: the signed head must be there (``SIGNED_HEAD_MISSING``), verify under the
    trusted key (``SIGNED_HEAD_SIGNATURE_INVALID``) and name the bundle's last entry and its
    hash (``SIGNED_HEAD_MISMATCH``) — reported at the first entry no verified checkpoint
    covers. Its signature also covers the header's range, chain head, audit anchor and export
    time, so those are the gateway's word from here on.
11. Version 2: the chain must reach the audit anchor the gateway held when it exported: the
    entry at the anchor's sequence, if in the bundle, has the anchor's hash
    (``ANCHOR_MISMATCH``), and a bundle that runs to the head does not stop before it
    (``BEHIND_ANCHOR``) — a history the database's writer replaced or cut, which the gateway
    exported (and signed) as it found it.
12. Version 1 with a pinned key: every entry is covered by a verified checkpoint
    (``UNCOVERED_ENTRIES``, at the first one that is not). Version 1 had no signed head: the
    entries after its last checkpoint — at least its own export entry — were signed by nothing,
    so a pinned key cannot vouch for them.

Without a pinned key the signatures are checked against the key in the bundle's own header,
which shows the bundle is internally consistent, not that the gateway made it: a version 1
bundle then passes rule 12 (with its warnings), as it always did.
"""

from dataclasses import dataclass
from enum import StrEnum

from ssbg.domain.audit_bundle import SignedHead
from ssbg.domain.audit_verification import AnchorRef, ValidationReason


class BundleWarning(StrEnum):
    KEY_NOT_PINNED = "KEY_NOT_PINNED"  # checked against the key in the bundle's own header
    VERSION_1 = "VERSION_1"  # no signed head: the header and the tail are unsigned
    NO_AUDIT_ANCHOR = "NO_AUDIT_ANCHOR"  # the gateway had no audit anchor when it exported


@dataclass(frozen=True, slots=True)
class BundleFacts:
    """What the verifier found in a bundle whose chain passed rules 1-9."""

    version: int
    pinned: bool
    from_sequence: int
    last_sequence: int  # the last entry (from_sequence - 1 when there is none)
    last_hash: str | None  # its hash (the header's anchor_hash when there is none)
    covered_through: int  # the last verified checkpoint (from_sequence - 1: none)
    reaches_head: bool  # the bundle runs to the chain head its header names
    signed_head: SignedHead | None
    signed_head_verified: bool  # its signature verified under the trusted key
    audit_anchor: AnchorRef | None  # from the header
    hash_at_audit_anchor: str | None  # the bundle's entry at the anchor's sequence, if any


def head_covers(facts: BundleFacts) -> bool:
    """Whether the signed head verified and names the bundle's last entry."""
    head = facts.signed_head
    return (
        head is not None
        and facts.signed_head_verified
        and head.sequence_number == facts.last_sequence
        and head.entry_hash == facts.last_hash
    )


def bundle_problem(facts: BundleFacts) -> tuple[int, ValidationReason] | None:
    """Rules 10-12: the first problem as ``(first_invalid_sequence, reason)``, or ``None``."""
    uncovered = facts.covered_through + 1
    if facts.version >= 2:
        if facts.signed_head is None:
            return uncovered, ValidationReason.SIGNED_HEAD_MISSING
        if not facts.signed_head_verified:
            return uncovered, ValidationReason.SIGNED_HEAD_SIGNATURE_INVALID
        if not head_covers(facts):
            return uncovered, ValidationReason.SIGNED_HEAD_MISMATCH
        return _anchor_problem(facts)
    if facts.pinned and facts.covered_through < facts.last_sequence:
        return uncovered, ValidationReason.UNCOVERED_ENTRIES
    return None


def _anchor_problem(facts: BundleFacts) -> tuple[int, ValidationReason] | None:
    anchor = facts.audit_anchor
    if anchor is None:
        return None
    if facts.from_sequence <= anchor.sequence <= facts.last_sequence:
        if facts.hash_at_audit_anchor != anchor.hash:
            return anchor.sequence, ValidationReason.ANCHOR_MISMATCH
    elif facts.reaches_head and facts.last_sequence < anchor.sequence:
        return facts.last_sequence + 1, ValidationReason.BEHIND_ANCHOR
    return None


def bundle_warnings(facts: BundleFacts) -> list[BundleWarning]:
    warnings = []
    if not facts.pinned:
        warnings.append(BundleWarning.KEY_NOT_PINNED)
    if facts.version == 1:
        warnings.append(BundleWarning.VERSION_1)
    elif facts.audit_anchor is None:
        warnings.append(BundleWarning.NO_AUDIT_ANCHOR)
    return warnings
