"""Concurrent writers, in one process and many connections, never fork the chain."""

import asyncio

import pytest

from ssbg.domain.audit_verification import SequenceRange
from ssbg.services.api_key_service import IssuedApiKey
from ssbg.services.container import Services
from ssbg.settings import Settings
from tests.support.audit_chain import rich_event

# Appends serialise on BEGIN IMMEDIATE (SQLite) or the chain-head row lock (PostgreSQL).
pytestmark = pytest.mark.both_backends

INTERVAL = 7


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"audit_checkpoint_interval": INTERVAL})


async def test_concurrent_writers_never_fork_the_chain(
    services: Services, bootstrap_key: IssuedApiKey
) -> None:
    writers, appends = 8, 12
    before = (await services.audit.head()).sequence_number

    async def writer() -> None:
        for number in range(appends):
            async with services.db.transaction(write=True) as tx:
                await services.trail.append(tx, rich_event(number))

    await asyncio.gather(*(writer() for _ in range(writers)))

    checked = await services.audit_validation.check_chain(SequenceRange())
    result = checked.result
    head = before + writers * appends
    assert checked.whole_chain
    assert result.valid
    assert (result.entries_checked, result.head.sequence) == (head, head)
    assert result.checkpoints_verified == head // INTERVAL
