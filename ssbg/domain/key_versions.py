"""Key-encryption key versions: names and lifecycle (SPEC §5)."""

import re

from ssbg.domain.enums import KeyVersionStatus
from ssbg.domain.errors import InvalidStateTransition

FIRST_KEY_VERSION = "P-001"
KEY_ALGORITHM = "EC-P384/HPKE-DHKEM-P384-HKDF-SHA384-AES256GCM"
_VERSION = re.compile(r"^P-(\d{3,})$")

_ALLOWED: dict[KeyVersionStatus, frozenset[KeyVersionStatus]] = {
    KeyVersionStatus.ACTIVE: frozenset({KeyVersionStatus.RETIRED, KeyVersionStatus.DESTROYED}),
    KeyVersionStatus.RETIRED: frozenset({KeyVersionStatus.DESTROYED}),
    KeyVersionStatus.DESTROYED: frozenset(),
}


def is_key_version_name(value: str) -> bool:
    return _VERSION.match(value) is not None


def next_key_version(current: str) -> str:
    match = _VERSION.match(current)
    if match is None:
        raise ValueError(f"not a key version: {current!r}")
    return f"P-{int(match.group(1)) + 1:03d}"


def check_key_transition(current: KeyVersionStatus, target: KeyVersionStatus) -> None:
    if target not in _ALLOWED[current]:
        raise InvalidStateTransition(
            f"Key version cannot go from {current.value} to {target.value}.",
            {"from": current.value, "to": target.value},
        )
