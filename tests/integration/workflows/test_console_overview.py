"""The console overview's figures (SPEC §13.5): counted in SQL on both databases, per UTC day,
only what the caller may see."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from ssbg.domain.enums import BackupStatus, Classification, Role
from ssbg.domain.identity import Actor
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.backups.idempotency import BackupSubmission
from ssbg.services.container import Services
from tests.support.clock import FixedClock
from tests.support.factories import actor, create_api_key

pytestmark = pytest.mark.both_backends


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _store(services: Services, who: Actor, classification: Classification) -> None:
    submission = BackupSubmission(
        classification=classification,
        source_system="db-1",
        description=None,
        original_filename="dump.sql",
        content_type="application/octet-stream",
    )
    await services.backups.create_backup(who, submission, _chunks(b"x" * 100))


async def test_backups_are_counted_per_utc_day_status_and_classification(
    services: Services, clock: FixedClock, bootstrap_key: IssuedApiKey
) -> None:
    operator = actor(await create_api_key(services, Role.OPERATOR))
    other = actor(await create_api_key(services, Role.OPERATOR))
    clock.set(datetime(2026, 11, 20, 23, 59, 59, 999999, tzinfo=UTC))
    await _store(services, operator, Classification.PUBLIC)
    clock.set(datetime(2026, 11, 21, 0, 0, tzinfo=UTC))  # the next day, to the microsecond
    await _store(services, operator, Classification.SECRET)
    await _store(services, other, Classification.SECRET)
    clock.set(datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    await _store(services, operator, Classification.PUBLIC)

    mine = await services.console_overview.overview(operator)
    everyone = await services.console_overview.overview(actor(bootstrap_key))

    assert mine.activity is not None
    assert everyone.activity is not None
    assert mine.backups is not None
    assert everyone.backups is not None
    days = [day.isoformat() for day in mine.activity.days]
    assert days == [f"2026-11-{day}" for day in range(14, 28)]
    per_day = dict(zip(days, mine.activity.backups, strict=True))
    assert (per_day["2026-11-20"], per_day["2026-11-21"], per_day["2026-11-27"]) == (1, 1, 1)
    assert sum(mine.activity.backups) == 3
    assert sum(everyone.activity.backups) == 4
    assert mine.backups.by_status[BackupStatus.ACTIVE] == 3
    assert mine.backups.by_classification == {
        Classification.PUBLIC: 2,
        Classification.INTERNAL: 0,
        Classification.CONFIDENTIAL: 0,
        Classification.SECRET: 1,
    }
    assert everyone.backups.by_classification[Classification.SECRET] == 2
    assert mine.backups.stored_bytes > 300  # ciphertext: payload plus header and tags
    assert mine.activity.restores is None
    assert everyone.activity.restores == [0] * 14
    assert (mine.audit, mine.keys, mine.incident_level) == (None, None, None)
    assert everyone.audit is not None
    assert everyone.audit.head_sequence > 0
    assert everyone.keys is not None
    assert [(k.record.version, k.backups) for k in everyone.keys] == [("P-001", 4)]
