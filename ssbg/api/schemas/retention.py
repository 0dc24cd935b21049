from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from annotated_types import Interval
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from ssbg.api.schemas.common import INTEGRAL, StrictInput
from ssbg.domain.enums import Classification
from ssbg.domain.retention import Decision
from ssbg.infrastructure.db.models import RetentionRule
from ssbg.services.retention import NewRetentionRule, RetentionReport, RetentionRuleChanges

Name = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9 ._:-]+$"),
]
Glob = Annotated[
    str,
    StringConstraints(
        strict=True, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._\-*?\[\]!]+$"
    ),
]
Globs = Annotated[list[Glob], Field(min_length=1, max_length=100)]
Classifications = Annotated[list[Classification], Field(max_length=len(Classification))]
Keep = Annotated[StrictInt, Interval(ge=0, le=1_000_000), INTEGRAL]
MinAgeDays = Annotated[StrictInt, Interval(ge=0, le=36_500), INTEGRAL]
KEEP_COUNTS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")


class RetentionRuleCreate(StrictInput):
    """restic's ``forget`` counts per source system; at least one keep count above 0.
    ``classifications`` empty (the default) matches every classification."""

    # "At least one keep count above 0", stated in the description too (a rule that keeps
    # nothing is a 422 whatever its other fields).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "integer", "minimum": 1}}}
                for name in KEEP_COUNTS
            ]
        },
    )

    name: Name
    source_systems: Globs
    classifications: Classifications = []
    keep_last: Keep = 0
    keep_daily: Keep = 0
    keep_weekly: Keep = 0
    keep_monthly: Keep = 0
    min_age_days: MinAgeDays = 0
    is_active: StrictBool = True

    def to_request(self) -> NewRetentionRule:
        return NewRetentionRule(
            name=self.name,
            source_systems=list(self.source_systems),
            classifications=[c.value for c in self.classifications],
            keep_last=self.keep_last,
            keep_daily=self.keep_daily,
            keep_weekly=self.keep_weekly,
            keep_monthly=self.keep_monthly,
            min_age_days=self.min_age_days,
            is_active=self.is_active,
        )


class RetentionRulePatch(StrictInput):
    """Fields to change; the rule as changed must still keep something."""

    name: Name | None = None
    source_systems: Globs | None = None
    classifications: Classifications | None = None
    keep_last: Keep | None = None
    keep_daily: Keep | None = None
    keep_weekly: Keep | None = None
    keep_monthly: Keep | None = None
    min_age_days: MinAgeDays | None = None
    is_active: StrictBool | None = None

    def to_changes(self) -> RetentionRuleChanges:
        return RetentionRuleChanges(
            name=self.name,
            source_systems=list(self.source_systems) if self.source_systems is not None else None,
            classifications=[c.value for c in self.classifications]
            if self.classifications is not None
            else None,
            keep_last=self.keep_last,
            keep_daily=self.keep_daily,
            keep_weekly=self.keep_weekly,
            keep_monthly=self.keep_monthly,
            min_age_days=self.min_age_days,
            is_active=self.is_active,
        )


class RetentionRuleOut(BaseModel):
    rule_id: UUID
    name: str
    source_systems: list[str]
    classifications: list[Classification]
    keep_last: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    min_age_days: int
    is_active: bool
    created_at: datetime
    created_by: UUID | None
    updated_at: datetime
    updated_by: UUID | None

    @classmethod
    def of(cls, rule: RetentionRule) -> "RetentionRuleOut":
        return cls(
            rule_id=rule.id,
            name=rule.name,
            source_systems=rule.source_systems,
            classifications=[Classification(c) for c in rule.classifications],
            keep_last=rule.keep_last,
            keep_daily=rule.keep_daily,
            keep_weekly=rule.keep_weekly,
            keep_monthly=rule.keep_monthly,
            min_age_days=rule.min_age_days,
            is_active=rule.is_active,
            created_at=rule.created_at,
            created_by=rule.created_by,
            updated_at=rule.updated_at,
            updated_by=rule.updated_by,
        )


class RetentionApply(StrictInput):
    """``dry_run`` (default ``true``) only plans. ``backup_ids``, on a real run, limits the
    deletions to these (the ones a person confirmed); others of the plan are skipped."""

    dry_run: StrictBool = True
    backup_ids: Annotated[list[UUID], Field(max_length=100_000)] | None = None


class PlannedBackup(BaseModel):
    backup_id: UUID
    source_system: str
    classification: Classification
    created_at: datetime
    matched_rules: list[str]

    @classmethod
    def fields_of(cls, decision: Decision) -> dict[str, Any]:
        candidate = decision.candidate
        return {
            "backup_id": candidate.backup_id,
            "source_system": candidate.source_system,
            "classification": Classification(candidate.classification),
            "created_at": candidate.created_at,
            "matched_rules": list(decision.matched_by),
        }


class KeptBackup(PlannedBackup):
    held: bool
    kept_by: dict[str, list[str]] = Field(
        description="Per rule that keeps the backup, its reasons: last, daily, weekly, "
        "monthly, oldest daily|weekly|monthly, min_age, in the future, legal hold."
    )


class SkippedBackup(PlannedBackup):
    reason: str = Field(
        description="LEGAL_HOLD, STATUS_CHANGED, POLICY_DENIED, MFA_REQUIRED (send "
        "X-MFA-Token), NOT_FOUND or NOT_CONFIRMED."
    )
    details: dict[str, Any]


class RetentionSummary(BaseModel):
    deleted: int
    kept: int
    skipped: int
    not_matched: int
    objects_pending: int


class RetentionReportOut(BaseModel):
    """``deleted``: what the run deleted — on a dry run, what it would delete."""

    dry_run: bool
    evaluated_at: datetime
    rules: list[str]
    summary: RetentionSummary
    deleted: list[PlannedBackup]
    kept: list[KeptBackup]
    skipped: list[SkippedBackup]

    @classmethod
    def of(cls, report: RetentionReport) -> "RetentionReportOut":
        return cls(
            dry_run=report.dry_run,
            evaluated_at=report.evaluated_at,
            rules=list(report.rules),
            summary=RetentionSummary(
                deleted=len(report.deleted),
                kept=len(report.kept),
                skipped=len(report.skipped),
                not_matched=report.not_matched,
                objects_pending=len(report.objects_pending),
            ),
            deleted=[PlannedBackup(**PlannedBackup.fields_of(d)) for d in report.deleted],
            kept=[
                KeptBackup(
                    **PlannedBackup.fields_of(d),
                    held=d.candidate.held,
                    kept_by={rule: [r.value for r in why] for rule, why in d.kept_by.items()},
                )
                for d in report.kept
            ],
            skipped=[
                SkippedBackup(
                    **PlannedBackup.fields_of(d),
                    reason=str(why["reason"]),
                    details={k: v for k, v in why.items() if k != "reason"},
                )
                for d, why in report.skipped
            ],
        )
