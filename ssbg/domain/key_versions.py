"""Key-encryption key versions (SPEC §5, §13.1): names and lifecycle.

``ACTIVE → RETIRED → DESTROYED`` (also ``ACTIVE → DESTROYED``, which the API refuses: rotate
first); exactly one version is ``ACTIVE``. Every other move raises ``InvalidStateTransition``.
A version whose crypto-shred has begun unwraps nothing any more, on any replica: a begun shred
is always completed (by a retry or the next start), and its key file may already be gone.
"""

import re

from ssbg.domain.enums import KeyVersionStatus
from ssbg.domain.errors import InvalidStateTransition

FIRST_KEY_VERSION = "P-001"
KEY_ALGORITHM = "EC-P384/HPKE-DHKEM-P384-HKDF-SHA384-AES256GCM"
_VERSION = re.compile(r"P-(\d{3,6})")

_ALLOWED: dict[KeyVersionStatus, frozenset[KeyVersionStatus]] = {
    KeyVersionStatus.ACTIVE: frozenset({KeyVersionStatus.RETIRED, KeyVersionStatus.DESTROYED}),
    KeyVersionStatus.RETIRED: frozenset({KeyVersionStatus.DESTROYED}),
    KeyVersionStatus.DESTROYED: frozenset(),
}


def is_key_version_name(value: str) -> bool:
    return _VERSION.fullmatch(value) is not None


def version_number(name: str) -> int:
    match = _VERSION.fullmatch(name)
    if match is None:
        raise ValueError(f"not a key version: {name!r}")
    return int(match.group(1))


def next_key_version(existing: list[str]) -> str:
    """The name after every one of ``existing``: ``[P-001, P-002]`` → ``P-003``."""
    return f"P-{max((version_number(name) for name in existing), default=0) + 1:03d}"


def check_key_transition(current: KeyVersionStatus, target: KeyVersionStatus) -> None:
    if target not in _ALLOWED[current]:
        raise InvalidStateTransition(
            f"A {current.value} key version cannot become {target.value}.",
            {"from_status": current.value, "to_status": target.value},
        )


def unwraps(status: KeyVersionStatus, shred_begun: bool) -> bool:
    """Whether a version's private key may still unwrap a DEK: not destroyed, and no shred of
    it begun (even a replica that holds the key in memory refuses it from then on)."""
    return status is not KeyVersionStatus.DESTROYED and not shred_begun


def shred_confirmation(version: str) -> str:
    """What the caller must type to destroy ``version``: ``DESTROY P-001``."""
    return f"DESTROY {version}"
