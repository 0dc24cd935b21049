"""Applying retention (SPEC §13.4): plan with restic's ``forget`` semantics, then — unless it is
a dry run — delete what the plan lets go, through the normal deletion lifecycle.

*Candidates* are the ``ACTIVE`` backups. A ``QUARANTINED`` backup failed an integrity check and
is evidence: retention neither deletes it nor counts it as a kept copy (so a corrupt backup never
takes the place of a sound one). The plan is the pure
:func:`~ssbg.domain.retention.plan_retention` over the active rules, one source system at a
time (restic groups by host the same way), so memory holds one source system's candidates — a
few fields each, not whole rows — and the decisions reported. A backup no rule matches is never
deleted; a held one is kept (reason ``legal hold``).

A real run then deletes the plan's deletions in batches of :data:`BATCH`, each batch one
transaction (:meth:`~ssbg.services.backups.deletion.BackupDeletion.delete_expired`) that locks
and reads every backup again: one that was held, deleted or quarantined since the plan is left
and reported as skipped, never deleted on stale facts, and each deletion passes the policy
engine like a deletion by hand. Each is audited ``RETENTION_DELETE`` with the rules that let it
go; the run ends with one ``RETENTION_APPLY`` entry (counts and rules). A dry run writes nothing.

``backup_ids`` limits a real run to deletions a person confirmed (``ssbg retention apply``
shows the plan, asks, and sends the ids it showed): a deletion the plan gained meanwhile is
skipped as ``NOT_CONFIRMED``.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from ssbg.domain.audit_events import SYSTEM_RESOURCE, AuditEvent
from ssbg.domain.enums import AuditAction
from ssbg.domain.identity import Actor
from ssbg.domain.retention import Decision, RetentionPolicy, plan_retention
from ssbg.infrastructure.clock import Clock
from ssbg.services.audit_service import AuditTrail
from ssbg.services.auth_service import AuthService
from ssbg.services.backups import BackupService
from ssbg.services.backups.deletion import EXPIRABLE, Expired
from ssbg.services.retention.rules import policy_of
from ssbg.services.unit_of_work import AppDatabase

BATCH = 100


@dataclass
class RetentionReport:
    """A plan, and — after a real run — what was done with it.

    ``deleted``: the backups the run deleted (a dry run: the ones it would delete), with the
    rules that matched each; ``kept``: every matched survivor, with the rules that keep it and
    why; ``skipped``: planned deletions a real run left, with the reason; ``not_matched``: how
    many candidates no active rule matches (never deleted)."""

    dry_run: bool
    evaluated_at: datetime
    rules: tuple[str, ...]
    deleted: list[Decision] = field(default_factory=list)
    kept: list[Decision] = field(default_factory=list)
    skipped: list[tuple[Decision, dict[str, Any]]] = field(default_factory=list)
    objects_pending: list[UUID] = field(default_factory=list)
    not_matched: int = 0


@dataclass(frozen=True, slots=True)
class RetentionRun:
    db: AppDatabase
    trail: AuditTrail
    clock: Clock
    auth: AuthService
    backups: BackupService

    async def apply(
        self,
        actor: Actor,
        *,
        dry_run: bool,
        mfa_token: str | None = None,
        backup_ids: frozenset[UUID] | None = None,
    ) -> RetentionReport:
        mfa_verified = False
        if mfa_token and not dry_run:
            await self.auth.verify_mfa(actor, mfa_token)
            mfa_verified = True
        report = await self.plan(dry_run=dry_run)
        if dry_run:
            return report
        planned, report.deleted = report.deleted, []
        confirmed = [d for d in planned if _confirmed(d, backup_ids)]
        report.skipped = [
            (d, {"reason": "NOT_CONFIRMED"}) for d in planned if not _confirmed(d, backup_ids)
        ]
        for start in range(0, len(confirmed), BATCH):
            batch = confirmed[start : start + BATCH]
            outcome = await self.backups.delete_expired(
                actor,
                [Expired(d.candidate.backup_id, d.matched_by) for d in batch],
                mfa_verified=mfa_verified,
            )
            deleted = set(outcome.deleted)
            report.deleted.extend(d for d in batch if d.candidate.backup_id in deleted)
            report.skipped.extend(
                (d, outcome.skipped[d.candidate.backup_id])
                for d in batch
                if d.candidate.backup_id in outcome.skipped
            )
            report.objects_pending.extend(outcome.objects_pending)
        await self._record(actor, report, mfa_verified=mfa_verified)
        return report

    async def plan(self, *, dry_run: bool = True) -> RetentionReport:
        now = self.clock.now()
        async with self.db.transaction(write=False) as tx:
            rules = await tx.retention_rules.list_rules(active_only=True)
            candidates = await tx.backups.count_with_status(EXPIRABLE)
            systems = await tx.backups.source_systems_with_status(EXPIRABLE)
        policies = [policy_of(rule) for rule in rules]
        report = RetentionReport(dry_run, now, tuple(policy.name for policy in policies))
        for system in _matched(policies, systems):
            async with self.db.transaction(write=False) as tx:
                group = await tx.backups.retention_candidates(system, EXPIRABLE)
            for decision in plan_retention(policies, group, now).decisions:
                if decision.delete:
                    report.deleted.append(decision)
                elif decision.matched_by:
                    report.kept.append(decision)
        report.not_matched = max(0, candidates - len(report.deleted) - len(report.kept))
        return report

    async def _record(self, actor: Actor, report: RetentionReport, *, mfa_verified: bool) -> None:
        async with self.db.transaction(write=True) as tx:
            await self.trail.append(
                tx,
                AuditEvent.by(
                    actor,
                    AuditAction.RETENTION_APPLY,
                    SYSTEM_RESOURCE,
                    rules=list(report.rules),
                    deleted=len(report.deleted),
                    kept=len(report.kept),
                    skipped=len(report.skipped),
                    objects_pending=len(report.objects_pending),
                    mfa_verified=mfa_verified,
                ),
            )


def _matched(policies: Sequence[RetentionPolicy], systems: Sequence[str]) -> list[str]:
    return [s for s in systems if any(p.matches_source_system(s) for p in policies)]


def _confirmed(decision: Decision, backup_ids: frozenset[UUID] | None) -> bool:
    return backup_ids is None or decision.candidate.backup_id in backup_ids
