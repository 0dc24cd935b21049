"""Retention rules (SPEC §13.4): create, read and change them, each change audited.

There is no delete: a rule is switched off with ``is_active: false`` and stays on record, like a
policy. A rule that keeps nothing is refused (``422``) before anything is written, on creation
and on a change alike — the domain's :class:`~ssbg.domain.retention.RetentionPolicy` decides
what a valid rule is. Creating or changing a rule raises alert M9 (a rule decides what is
deleted: a change to one is a policy change).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from ssbg.domain.audit_events import AuditEvent, retention_rule_resource
from ssbg.domain.enums import AuditAction
from ssbg.domain.errors import Conflict, NotFound, ValidationFailed
from ssbg.domain.identity import Actor
from ssbg.domain.retention import RetentionPolicy
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import RetentionRule
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase

KEEP_COUNTS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")
# The fields a rule's audit entries and its policy are made of, in this order.
RULE_FIELDS = ("name", "source_systems", "classifications", *KEEP_COUNTS, "min_age_days")


@dataclass(frozen=True)
class NewRetentionRule:
    name: str
    source_systems: list[str]
    classifications: list[str]
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    min_age_days: int = 0
    is_active: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*RULE_FIELDS, "is_active")}


@dataclass(frozen=True)
class RetentionRuleChanges:
    """Fields to change; ``None`` means "leave as it is"."""

    name: str | None = None
    source_systems: list[str] | None = None
    classifications: list[str] | None = None
    keep_last: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    min_age_days: int | None = None
    is_active: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        names = (*RULE_FIELDS, "is_active")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


def policy_of(rule: RetentionRule | Mapping[str, Any]) -> RetentionPolicy:
    """The domain's policy for a rule (or for a rule's fields); ``ValueError`` if invalid."""
    values = (
        rule if isinstance(rule, Mapping) else {name: getattr(rule, name) for name in RULE_FIELDS}
    )
    return RetentionPolicy(
        name=values["name"],
        source_systems=tuple(values["source_systems"]),
        classifications=tuple(values["classifications"]),
        **{name: values[name] for name in (*KEEP_COUNTS, "min_age_days")},
    )


def _check(values: Mapping[str, Any]) -> None:
    """``422`` naming the fields, unless ``values`` make a rule that keeps something."""
    if not any(values[name] for name in KEEP_COUNTS):
        message = "a retention rule must keep something: set at least one keep count above 0"
        raise ValidationFailed(
            "A retention rule that keeps nothing is refused.",
            {name: message for name in KEEP_COUNTS},
        )
    try:
        policy_of(values)
    except ValueError as exc:
        raise ValidationFailed(details={"rule": str(exc)}) from None


class RetentionRuleService:
    def __init__(self, db: AppDatabase, trail: AuditTrail, clock: Clock) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock

    async def create_rule(self, actor: Actor, request: NewRetentionRule) -> RetentionRule:
        values = request.as_dict()
        _check(values)
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            if await tx.retention_rules.get_by_name_or_none(request.name) is not None:
                raise Conflict("A retention rule with this name exists.", {"name": request.name})
            rule = RetentionRule(
                id=uuid4(),
                **values,
                created_at=now,
                created_by=actor.key_id,
                updated_at=now,
                updated_by=actor.key_id,
            )
            tx.retention_rules.add(rule)
            await tx.retention_rules.flush()
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.RETENTION_RULE_CREATE,
                    retention_rule_resource(rule.id),
                    **values,
                ),
            )
        return rule

    async def list_rules(self) -> Sequence[RetentionRule]:
        async with self._db.transaction(write=False) as tx:
            return await tx.retention_rules.list_rules()

    async def get_rule(self, rule_id: UUID) -> RetentionRule:
        async with self._db.transaction(write=False) as tx:
            rule = await tx.retention_rules.get_or_none(rule_id)
        if rule is None:
            raise NotFound("Retention rule not found.")
        return rule

    async def update_rule(
        self, actor: Actor, rule_id: UUID, changes: RetentionRuleChanges
    ) -> RetentionRule:
        requested = changes.as_dict()
        async with self._db.transaction(write=True) as tx:
            rule = await tx.retention_rules.get_or_none(rule_id)
            if rule is None:
                raise NotFound("Retention rule not found.")
            before = {name: getattr(rule, name) for name in (*RULE_FIELDS, "is_active")}
            _check({**before, **requested})
            new_name = changes.name
            if (
                new_name is not None
                and new_name != rule.name
                and await tx.retention_rules.get_by_name_or_none(new_name) is not None
            ):
                raise Conflict("A retention rule with this name exists.", {"name": new_name})
            for name, value in requested.items():
                setattr(rule, name, value)
            changed = sorted(name for name in requested if before[name] != requested[name])
            rule.updated_at = self._clock.now()
            rule.updated_by = actor.key_id
            await tx.retention_rules.flush()
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.RETENTION_RULE_UPDATE,
                    retention_rule_resource(rule.id),
                    name=rule.name,
                    changed=changed,
                    before={name: before[name] for name in changed},
                    after={name: requested[name] for name in changed},
                ),
            )
        return rule
