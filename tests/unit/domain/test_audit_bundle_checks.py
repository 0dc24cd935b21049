"""Rules 10-12 of offline verification, pure: what a bundle's verified signatures cover."""

from dataclasses import replace

import pytest

from ssbg.domain.audit_bundle import SignedHead
from ssbg.domain.audit_bundle_checks import (
    BundleFacts,
    BundleWarning,
    bundle_problem,
    bundle_warnings,
    head_covers,
)
from ssbg.domain.audit_verification import AnchorRef, ValidationReason

LAST = "ab" * 64
AT_ANCHOR = "cd" * 64
HEAD = SignedHead(26, LAST, "0" * 64, "c2ln")
GENUINE = BundleFacts(
    version=2,
    pinned=True,
    from_sequence=1,
    last_sequence=26,
    last_hash=LAST,
    covered_through=25,  # the last verified checkpoint
    reaches_head=True,
    signed_head=HEAD,
    signed_head_verified=True,
    audit_anchor=AnchorRef(25, AT_ANCHOR, "2026-11-27T12:00:00.000000Z"),
    hash_at_audit_anchor=AT_ANCHOR,
)


def test_a_genuine_version_2_bundle_is_covered_by_its_signed_head() -> None:
    assert head_covers(GENUINE)
    assert bundle_problem(GENUINE) is None
    assert bundle_problem(replace(GENUINE, pinned=False)) is None
    assert bundle_warnings(GENUINE) == []


def test_without_checkpoints_the_signed_head_alone_covers_every_entry() -> None:
    assert bundle_problem(replace(GENUINE, covered_through=0)) is None


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"signed_head": None}, (26, ValidationReason.SIGNED_HEAD_MISSING)),
        (
            {"signed_head": None, "covered_through": 0},
            (1, ValidationReason.SIGNED_HEAD_MISSING),
        ),
        ({"signed_head_verified": False}, (26, ValidationReason.SIGNED_HEAD_SIGNATURE_INVALID)),
        (
            {"signed_head": replace(HEAD, sequence_number=25)},
            (26, ValidationReason.SIGNED_HEAD_MISMATCH),
        ),
        (
            {"signed_head": replace(HEAD, entry_hash=AT_ANCHOR)},
            (26, ValidationReason.SIGNED_HEAD_MISMATCH),
        ),
        ({"hash_at_audit_anchor": LAST}, (25, ValidationReason.ANCHOR_MISMATCH)),
        (
            {"audit_anchor": AnchorRef(30, AT_ANCHOR, "2026-11-27T12:00:00.000000Z")},
            (27, ValidationReason.BEHIND_ANCHOR),
        ),
    ],
)
def test_version_2_problems(
    changes: dict[str, object], expected: tuple[int, ValidationReason]
) -> None:
    assert bundle_problem(replace(GENUINE, **changes)) == expected  # type: ignore[arg-type]


def test_an_anchor_outside_a_range_that_stops_before_the_head_is_not_judged() -> None:
    later = AnchorRef(30, AT_ANCHOR, "2026-11-27T12:00:00.000000Z")
    earlier = AnchorRef(1, AT_ANCHOR, "2026-11-27T12:00:00.000000Z")

    assert bundle_problem(replace(GENUINE, audit_anchor=later, reaches_head=False)) is None
    assert bundle_problem(replace(GENUINE, audit_anchor=earlier, from_sequence=2)) is None


def test_no_audit_anchor_is_a_warning_not_a_failure() -> None:
    facts = replace(GENUINE, audit_anchor=None, hash_at_audit_anchor=None)

    assert bundle_problem(facts) is None
    assert bundle_warnings(facts) == [BundleWarning.NO_AUDIT_ANCHOR]


VERSION_1 = replace(
    GENUINE, version=1, signed_head=None, signed_head_verified=False, audit_anchor=None
)


def test_version_1_under_a_pinned_key_needs_a_checkpoint_over_its_tail() -> None:
    assert bundle_problem(VERSION_1) == (26, ValidationReason.UNCOVERED_ENTRIES)
    assert bundle_problem(replace(VERSION_1, covered_through=0)) == (
        1,
        ValidationReason.UNCOVERED_ENTRIES,
    )
    assert bundle_problem(replace(VERSION_1, covered_through=26)) is None
    assert bundle_warnings(VERSION_1) == [BundleWarning.VERSION_1]


def test_version_1_without_a_pinned_key_passes_with_its_warnings() -> None:
    facts = replace(VERSION_1, pinned=False, covered_through=0)

    assert bundle_problem(facts) is None
    assert bundle_warnings(facts) == [BundleWarning.KEY_NOT_PINNED, BundleWarning.VERSION_1]
