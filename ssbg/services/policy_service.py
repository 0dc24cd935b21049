"""Custom policy records (SPEC §8): create, read and change them, each change audited."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from ssbg.domain.audit_events import AuditEvent, policy_resource
from ssbg.domain.enums import AuditAction, PolicyEffect
from ssbg.domain.errors import Conflict, NotFound, ValidationFailed
from ssbg.domain.identity import Actor
from ssbg.domain.policy_rules import PolicyRule
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import Policy
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase


@dataclass(frozen=True)
class NewPolicy:
    name: str
    description: str
    effect: PolicyEffect
    priority: int
    is_active: bool
    rule: dict[str, Any]


@dataclass(frozen=True)
class PolicyChanges:
    """Fields to change; ``None`` means "leave as it is"."""

    name: str | None = None
    description: str | None = None
    effect: PolicyEffect | None = None
    priority: int | None = None
    is_active: bool | None = None
    rule: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            name: value
            for name, value in (
                ("name", self.name),
                ("description", self.description),
                ("effect", self.effect),
                ("priority", self.priority),
                ("is_active", self.is_active),
                ("rule", self.rule),
            )
            if value is not None
        }


def _check_rule(rule: dict[str, Any]) -> None:
    try:
        PolicyRule.from_json(rule)
    except ValueError as exc:
        raise ValidationFailed(details={"rule": str(exc)}) from None


class PolicyService:
    def __init__(self, db: AppDatabase, trail: AuditTrail, clock: Clock) -> None:
        self._db = db
        self._trail = trail
        self._clock = clock

    async def create_policy(self, actor: Actor, request: NewPolicy) -> Policy:
        _check_rule(request.rule)
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            if await tx.policies.get_by_name_or_none(request.name) is not None:
                raise Conflict("A policy with this name exists.", {"name": request.name})
            policy = Policy(
                id=uuid4(),
                name=request.name,
                description=request.description,
                effect=request.effect,
                priority=request.priority,
                is_active=request.is_active,
                rule=request.rule,
                created_at=now,
                created_by=actor.key_id,
                updated_at=now,
                updated_by=actor.key_id,
            )
            tx.policies.add(policy)
            await tx.policies.flush()
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.POLICY_CREATE,
                    policy_resource(policy.id),
                    name=policy.name,
                    effect=policy.effect,
                    priority=policy.priority,
                    is_active=policy.is_active,
                    rule=policy.rule,
                ),
            )
        return policy

    async def list_policies(self) -> Sequence[Policy]:
        async with self._db.transaction(write=False) as tx:
            return await tx.policies.list_policies()

    async def get_policy(self, policy_id: UUID) -> Policy:
        async with self._db.transaction(write=False) as tx:
            policy = await tx.policies.get_or_none(policy_id)
        if policy is None:
            raise NotFound("Policy not found.")
        return policy

    async def update_policy(self, actor: Actor, policy_id: UUID, changes: PolicyChanges) -> Policy:
        if changes.rule is not None:
            _check_rule(changes.rule)
        requested = changes.as_dict()
        async with self._db.transaction(write=True) as tx:
            policy = await tx.policies.get_or_none(policy_id)
            if policy is None:
                raise NotFound("Policy not found.")
            new_name = changes.name
            if (
                new_name is not None
                and new_name != policy.name
                and await tx.policies.get_by_name_or_none(new_name) is not None
            ):
                raise Conflict("A policy with this name exists.", {"name": new_name})
            before = {name: getattr(policy, name) for name in requested}
            for name, value in requested.items():
                setattr(policy, name, value)
            after = {name: getattr(policy, name) for name in requested}
            changed = sorted(name for name in requested if before[name] != after[name])
            policy.updated_at = self._clock.now()
            policy.updated_by = actor.key_id
            await tx.policies.flush()
            await self._trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.POLICY_UPDATE,
                    policy_resource(policy.id),
                    changed=changed,
                    before={name: before[name] for name in changed},
                    after={name: after[name] for name in changed},
                ),
            )
        return policy
