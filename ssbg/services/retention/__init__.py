"""Retention (SPEC §13.4): the rules, and applying them."""

from collections.abc import Sequence
from uuid import UUID

from ssbg.domain.identity import Actor
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.db.models import RetentionRule
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_service import AuthService
from ssbg.services.backups import BackupService
from ssbg.services.retention.rules import (
    NewRetentionRule,
    RetentionRuleChanges,
    RetentionRuleService,
)
from ssbg.services.retention.run import RetentionReport, RetentionRun
from ssbg.services.unit_of_work import AppDatabase

__all__ = [
    "NewRetentionRule",
    "RetentionReport",
    "RetentionRuleChanges",
    "RetentionService",
]


class RetentionService:
    def __init__(
        self,
        db: AppDatabase,
        trail: AuditTrail,
        clock: Clock,
        auth: AuthService,
        backups: BackupService,
    ) -> None:
        self._rules = RetentionRuleService(db, trail, clock)
        self._run = RetentionRun(db, trail, clock, auth, backups)

    async def create_rule(self, actor: Actor, request: NewRetentionRule) -> RetentionRule:
        return await self._rules.create_rule(actor, request)

    async def list_rules(self) -> Sequence[RetentionRule]:
        return await self._rules.list_rules()

    async def get_rule(self, rule_id: UUID) -> RetentionRule:
        return await self._rules.get_rule(rule_id)

    async def update_rule(
        self, actor: Actor, rule_id: UUID, changes: RetentionRuleChanges
    ) -> RetentionRule:
        return await self._rules.update_rule(actor, rule_id, changes)

    async def apply(
        self,
        actor: Actor,
        *,
        dry_run: bool,
        mfa_token: str | None = None,
        backup_ids: frozenset[UUID] | None = None,
    ) -> RetentionReport:
        return await self._run.apply(
            actor, dry_run=dry_run, mfa_token=mfa_token, backup_ids=backup_ids
        )
