"""Retention's calendar logic against restic's documented ``forget`` examples, and SSBG's own
protections (min age, legal hold, unmatched backups never deleted)."""

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from ssbg.domain.retention import (
    KeepReason,
    RetentionCandidate,
    RetentionPolicy,
    plan_retention,
)


def candidate(
    at: datetime, *, source: str = "mopped", classification: str = "INTERNAL", held: bool = False
) -> RetentionCandidate:
    return RetentionCandidate(uuid4(), source, classification, at, held)


def policy(**counts: int) -> RetentionPolicy:
    return RetentionPolicy(name="r", source_systems=("*",), **counts)


def kept_times(
    plan_candidates: list[RetentionCandidate], rule: RetentionPolicy, now: datetime
) -> list[datetime]:
    plan = plan_retention([rule], plan_candidates, now)
    return sorted(d.candidate.created_at for d in plan.kept)


def test_restic_example_one_backup_every_sunday_keep_daily_4_keeps_the_last_four() -> None:
    # restic doc/060_forget.rst: twelve Sundays from 2019-09-01, `forget --keep-daily 4`.
    sundays = [datetime(2019, 9, 1, 11, tzinfo=UTC) + timedelta(weeks=n) for n in range(12)]
    backups = [candidate(at) for at in sundays]

    plan = plan_retention([policy(keep_daily=4)], backups, datetime(2019, 11, 18, tzinfo=UTC))

    assert [d.candidate.created_at.date() for d in plan.kept] == [
        date(2019, 10, 27),
        date(2019, 11, 3),
        date(2019, 11, 10),
        date(2019, 11, 17),
    ]
    assert len(plan.deleted) == 8
    assert all(d.kept_by == {"r": (KeepReason.DAILY,)} for d in plan.kept)


def test_restic_example_daily_backups_keep_daily_weekly_monthly() -> None:
    # restic: one backup a day, `--keep-daily 7 --keep-weekly 5 --keep-monthly 12` keeps the 7
    # dailies, 4 more last-day-of-week ones (the dailies include one), and 12 or 11
    # last-day-of-month ones.
    last = datetime(2026, 12, 6, 3, tzinfo=UTC)  # a Sunday
    days = [last - timedelta(days=n) for n in range(3 * 365)]
    rule = policy(keep_daily=7, keep_weekly=5, keep_monthly=12)

    kept = kept_times([candidate(at) for at in days], rule, last)

    dailies = {last - timedelta(days=n) for n in range(7)}
    sundays = {last - timedelta(weeks=n) for n in range(5)}
    month_ends = {last}
    for months_back in range(1, 12):
        year, month = divmod(last.year * 12 + last.month - 1 - months_back, 12)
        first_of_next = datetime(year + (month + 1) // 12, (month + 1) % 12 + 1, 1, 3, tzinfo=UTC)
        month_ends.add(first_of_next - timedelta(days=1))
    assert set(kept) == dailies | sundays | month_ends
    # December's newest and 30 November are month ends among the dailies: 10 more monthlies.
    assert len(kept) == 7 + 4 + 10


def test_a_short_history_keeps_its_oldest_backup_while_counts_are_left() -> None:
    # restic ≥ 0.15: not enough snapshots for every daily count → the oldest is kept too.
    morning = datetime(2026, 12, 1, 8, tzinfo=UTC)
    backups = [candidate(morning), candidate(morning + timedelta(hours=4))]

    plan = plan_retention([policy(keep_daily=5)], backups, morning + timedelta(days=1))

    assert plan.deleted == []
    reasons = {d.candidate.created_at: d.kept_by["r"] for d in plan.kept}
    assert reasons == {
        morning + timedelta(hours=4): (KeepReason.DAILY,),
        morning: (KeepReason.OLDEST_DAILY,),
    }


def test_keep_last_counts_backups_not_days() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    backups = [candidate(at + timedelta(minutes=n)) for n in range(5)]

    kept = kept_times(backups, policy(keep_last=2), at + timedelta(days=1))

    assert kept == [at + timedelta(minutes=3), at + timedelta(minutes=4)]


def test_a_backup_dated_in_the_future_is_kept_and_spends_no_count() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    future = candidate(now + timedelta(days=2))
    present = [candidate(now - timedelta(days=n)) for n in range(3)]

    plan = plan_retention([policy(keep_daily=1)], [future, *present], now)

    kept = {d.candidate.backup_id: d.kept_by["r"] for d in plan.kept}
    assert kept == {
        future.backup_id: (KeepReason.FUTURE,),
        present[0].backup_id: (KeepReason.DAILY,),
    }


def test_min_age_keeps_young_backups_whatever_the_counts() -> None:
    now = datetime(2026, 12, 10, tzinfo=UTC)
    backups = [candidate(now - timedelta(days=n, hours=1)) for n in range(10)]

    plan = plan_retention([policy(keep_last=1, min_age_days=7)], backups, now)

    assert sorted((now - d.candidate.created_at).days for d in plan.kept) == list(range(7))
    assert sorted((now - d.candidate.created_at).days for d in plan.deleted) == [7, 8, 9]


def test_rules_apply_per_source_system_and_only_to_what_they_match() -> None:
    now = datetime(2026, 12, 10, tzinfo=UTC)
    db1 = [candidate(now - timedelta(days=n), source="db-1") for n in range(3)]
    db2 = [candidate(now - timedelta(days=n), source="db-2") for n in range(3)]
    secret = [
        candidate(now - timedelta(days=n), source="db-3", classification="SECRET") for n in range(3)
    ]
    web = [candidate(now - timedelta(days=n), source="web-1") for n in range(3)]
    rule = RetentionPolicy(
        name="databases", source_systems=("db-*",), classifications=("INTERNAL",), keep_last=1
    )

    plan = plan_retention([rule], db1 + db2 + secret + web, now)

    assert {d.candidate.backup_id for d in plan.kept} == {db1[0].backup_id, db2[0].backup_id}
    assert {d.candidate.backup_id for d in plan.deleted} == {c.backup_id for c in db1[1:] + db2[1:]}
    untouched = [d for d in plan.decisions if d.candidate.source_system in {"db-3", "web-1"}]
    assert all(not d.delete and d.matched_by == () for d in untouched)


def test_rules_are_ored_and_a_held_backup_is_always_kept() -> None:
    now = datetime(2026, 12, 10, tzinfo=UTC)
    backups = [candidate(now - timedelta(days=n)) for n in range(5)]
    held = candidate(now - timedelta(days=30), held=True)
    short = RetentionPolicy(name="short", source_systems=("*",), keep_last=1)
    weekly = RetentionPolicy(name="long", source_systems=("mopped",), keep_last=2)

    plan = plan_retention([short, weekly], [*backups, held], now)

    decisions = {d.candidate.backup_id: d for d in plan.decisions}
    assert set(decisions[backups[0].backup_id].kept_by) == {"short", "long"}
    assert set(decisions[backups[1].backup_id].kept_by) == {"long"}
    assert decisions[held.backup_id].kept_by["short"] == (KeepReason.LEGAL_HOLD,)
    assert [d.candidate.backup_id for d in plan.deleted] == [b.backup_id for b in backups[:1:-1]]
    assert all(d.matched_by == ("short", "long") for d in plan.deleted)


@pytest.mark.parametrize(
    "counts",
    [{}, {"keep_last": 0, "keep_daily": 0}, {"keep_last": -1, "keep_daily": 3}],
)
def test_a_rule_that_keeps_nothing_is_refused(counts: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="keep"):
        RetentionPolicy(name="none", source_systems=("*",), **counts)
