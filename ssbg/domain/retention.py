"""Retention (SPEC §13.4): restic's ``forget`` semantics, applied per source system.

A rule matches backups by source-system glob and classification. Within each source system a
rule matches, the backups are walked newest first through its buckets — ``keep_last`` (every
backup is its own bucket), ``keep_daily`` (calendar day), ``keep_weekly`` (ISO week),
``keep_monthly`` (calendar month), all in UTC. A bucket with count left keeps the newest backup
of each new period it meets and spends one count; the results are ORed. As in restic:

* if a bucket still has count left when the walk reaches the oldest backup, the oldest is kept
  too ("oldest daily snapshot"), so a short history is kept whole rather than cut;
* a backup dated in the future (a clock that was wrong) is kept and spends no count.

SSBG adds two protections: a backup younger than ``min_age_days`` is kept, and a backup under a
legal hold is kept. A backup is deleted only if at least one rule matches it and no matching
rule keeps it: a backup no rule matches is never deleted by retention.
"""

import fnmatch
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID


class KeepReason(StrEnum):
    LAST = "last"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    OLDEST_DAILY = "oldest daily"
    OLDEST_WEEKLY = "oldest weekly"
    OLDEST_MONTHLY = "oldest monthly"
    MIN_AGE = "min_age"
    FUTURE = "in the future"
    LEGAL_HOLD = "legal hold"


@dataclass(frozen=True)
class RetentionPolicy:
    """One rule's matching and keep counts. At least one keep count must be positive: a rule
    that keeps nothing is refused (restic refuses an empty policy too)."""

    name: str
    source_systems: tuple[str, ...]
    classifications: tuple[str, ...] = ()
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    min_age_days: int = 0

    def __post_init__(self) -> None:
        counts = (self.keep_last, self.keep_daily, self.keep_weekly, self.keep_monthly)
        if any(count < 0 for count in counts) or self.min_age_days < 0:
            raise ValueError("keep counts and min_age_days must not be negative")
        if not any(counts):
            raise ValueError("a retention rule must keep something: set at least one keep count")
        if not self.source_systems:
            raise ValueError("a retention rule needs at least one source-system glob")

    def matches(self, candidate: "RetentionCandidate") -> bool:
        if self.classifications and candidate.classification not in self.classifications:
            return False
        return self.matches_source_system(candidate.source_system)

    def matches_source_system(self, source_system: str) -> bool:
        """Whether a source-system glob matches (case-sensitive, like the names)."""
        return any(fnmatch.fnmatchcase(source_system, glob) for glob in self.source_systems)


@dataclass(frozen=True)
class RetentionCandidate:
    backup_id: UUID
    source_system: str
    classification: str
    created_at: datetime
    held: bool = False


@dataclass(frozen=True)
class Decision:
    """What the plan says of one backup: kept (by which rules, for which reasons) or deleted
    (``kept_by`` empty; ``matched_by`` names the rules that let it go)."""

    candidate: RetentionCandidate
    matched_by: tuple[str, ...]
    kept_by: dict[str, tuple[KeepReason, ...]] = field(default_factory=dict)

    @property
    def delete(self) -> bool:
        return bool(self.matched_by) and not self.kept_by


@dataclass(frozen=True)
class RetentionPlan:
    decisions: tuple[Decision, ...]

    @property
    def deleted(self) -> list[Decision]:
        return [decision for decision in self.decisions if decision.delete]

    @property
    def kept(self) -> list[Decision]:
        return [decision for decision in self.decisions if decision.matched_by and decision.kept_by]


_Bucketer = Callable[[datetime, int], object]


def _day(at: datetime, _: int) -> object:
    return at.date()


def _week(at: datetime, _: int) -> object:
    year, week, _weekday = at.isocalendar()
    return (year, week)


def _month(at: datetime, _: int) -> object:
    return (at.year, at.month)


def _own(_: datetime, position: int) -> object:
    return position


def _buckets(policy: RetentionPolicy) -> list[tuple[int, _Bucketer, KeepReason, KeepReason]]:
    return [
        (policy.keep_last, _own, KeepReason.LAST, KeepReason.LAST),
        (policy.keep_daily, _day, KeepReason.DAILY, KeepReason.OLDEST_DAILY),
        (policy.keep_weekly, _week, KeepReason.WEEKLY, KeepReason.OLDEST_WEEKLY),
        (policy.keep_monthly, _month, KeepReason.MONTHLY, KeepReason.OLDEST_MONTHLY),
    ]


def apply_policy(
    policy: RetentionPolicy, group: Sequence[RetentionCandidate], now: datetime
) -> dict[UUID, tuple[KeepReason, ...]]:
    """The backups of one source system ``policy`` keeps, with the reasons (restic's walk)."""
    newest_first = sorted(group, key=lambda c: (c.created_at, str(c.backup_id)), reverse=True)
    present = [c for c in newest_first if c.created_at <= now]
    kept: dict[UUID, list[KeepReason]] = defaultdict(list)
    for candidate in newest_first:
        if candidate.created_at > now:
            kept[candidate.backup_id].append(KeepReason.FUTURE)
        elif now - candidate.created_at < timedelta(days=policy.min_age_days):
            kept[candidate.backup_id].append(KeepReason.MIN_AGE)
        if candidate.held:
            kept[candidate.backup_id].append(KeepReason.LEGAL_HOLD)
    for count, bucketer, reason, oldest_reason in _buckets(policy):
        last: object = None
        for position, candidate in enumerate(present):
            if count <= 0:
                break
            key = bucketer(candidate.created_at, position)
            is_oldest = position == len(present) - 1
            if key != last:
                kept[candidate.backup_id].append(reason)
                last = key
                count -= 1
            elif is_oldest and reason is not KeepReason.LAST:
                kept[candidate.backup_id].append(oldest_reason)
    return {backup_id: tuple(reasons) for backup_id, reasons in kept.items()}


def plan_retention(
    policies: Iterable[RetentionPolicy], candidates: Iterable[RetentionCandidate], now: datetime
) -> RetentionPlan:
    """Every candidate's decision under every rule that matches it (rules are ORed: a backup
    any matching rule keeps is kept)."""
    listed = list(candidates)
    matched: dict[UUID, list[str]] = defaultdict(list)
    kept: dict[UUID, dict[str, tuple[KeepReason, ...]]] = defaultdict(dict)
    for policy in policies:
        groups: dict[str, list[RetentionCandidate]] = defaultdict(list)
        for candidate in listed:
            if policy.matches(candidate):
                groups[candidate.source_system].append(candidate)
                matched[candidate.backup_id].append(policy.name)
        for group in groups.values():
            for backup_id, reasons in apply_policy(policy, group, now).items():
                kept[backup_id][policy.name] = reasons
    return RetentionPlan(
        tuple(
            Decision(c, tuple(matched.get(c.backup_id, ())), dict(kept.get(c.backup_id, {})))
            for c in sorted(listed, key=lambda c: (c.source_system, c.created_at))
        )
    )
