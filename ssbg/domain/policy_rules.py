"""Custom policy records (SPEC §8): the rule schema and its validation, without I/O."""

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ssbg.domain.enums import Classification, PolicyEffect, PolicyOperation, Role
from ssbg.domain.hours import parse_hours, within_hours

_E = TypeVar("_E", PolicyOperation, Role, Classification)

RULE_FIELDS = frozenset(
    {"operations", "roles", "classifications", "source_systems", "departments", "hours"}
)


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """A rule field left out (``None``) matches everything."""

    operations: frozenset[PolicyOperation] | None = None
    roles: frozenset[Role] | None = None
    classifications: frozenset[Classification] | None = None
    source_systems: tuple[str, ...] | None = None
    departments: frozenset[str] | None = None
    hours: tuple[int, int] | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "PolicyRule":
        """Parse a stored rule; raises ``ValueError`` naming the first bad field."""
        unknown = set(raw) - RULE_FIELDS
        if unknown:
            raise ValueError(f"unknown rule fields: {', '.join(sorted(unknown))}")
        return cls(
            operations=_enum_set(raw, "operations", PolicyOperation),
            roles=_enum_set(raw, "roles", Role),
            classifications=_enum_set(raw, "classifications", Classification),
            source_systems=tuple(_strings(raw, "source_systems"))
            if raw.get("source_systems") is not None
            else None,
            departments=frozenset(_strings(raw, "departments"))
            if raw.get("departments") is not None
            else None,
            hours=parse_hours(raw["hours"]) if raw.get("hours") is not None else None,
        )

    def matches(
        self,
        *,
        operation: PolicyOperation,
        role: Role,
        classification: Classification | None,
        source_system: str | None,
        department: str | None,
        local_hour: int,
    ) -> bool:
        if self.operations is not None and operation not in self.operations:
            return False
        if self.roles is not None and role not in self.roles:
            return False
        if self.classifications is not None and classification not in self.classifications:
            return False
        if self.source_systems is not None and (
            source_system is None
            or not any(fnmatch.fnmatchcase(source_system, glob) for glob in self.source_systems)
        ):
            return False
        if self.departments is not None and department not in self.departments:
            return False
        return self.hours is None or within_hours(self.hours, local_hour)


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    name: str
    effect: PolicyEffect
    priority: int
    rule: PolicyRule


def _strings(raw: Mapping[str, Any], name: str) -> list[str]:
    value = raw[name]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{name} must be a list of non-empty strings")
    return value


def _enum_set(raw: Mapping[str, Any], name: str, enum: type[_E]) -> frozenset[_E] | None:
    if raw.get(name) is None:
        return None
    values = _strings(raw, name)
    try:
        return frozenset(enum(value) for value in values)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise ValueError(f"{name} accepts only: {allowed}") from None
