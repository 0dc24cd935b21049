"""A changed ``SSBG_AUDIT_CHECKPOINT_INTERVAL`` never makes an untouched chain invalid
(SPEC §13.3): each stretch of the chain is judged by the interval it was written with — the
checkpoints' signed intervals and the intervals gateways declare in ``SYSTEM_START``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from ssbg.domain.audit_verification import SequenceRange
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.services.container import Services, build_services
from ssbg.settings import Settings
from tests.support.audit_chain import CHECKPOINTS, append_until, execute
from tests.support.clock import FixedClock

pytestmark = pytest.mark.both_backends


@pytest.fixture
def gateway_with(settings: Settings, key_store: FileKeyStore, clock: FixedClock):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def gateway(interval: int) -> AsyncIterator[Services]:
        """A gateway process on the test's database, checkpointing every ``interval``."""
        changed = settings.model_copy(update={"audit_checkpoint_interval": interval})
        built = build_services(changed, clock=clock, key_store=key_store)
        try:
            yield built
        finally:
            await built.close()

    return gateway


async def validate(services: Services) -> tuple[bool, object, object]:
    result = await services.audit_validation.validate_chain(None, SequenceRange(), via="test")
    return result.valid, result.first_invalid_sequence, result.reason


async def test_a_chain_without_a_checkpoint_stays_valid_when_the_interval_is_lowered(
    gateway_with,  # type: ignore[no-untyped-def]
) -> None:
    async with gateway_with(1000) as first:
        await first.bootstrap.initialize()
        await append_until(first, 502)
    async with gateway_with(100) as lowered:
        assert await validate(lowered) == (True, None, None)


async def test_a_chain_whose_interval_was_raised_after_a_checkpoint_stays_valid(
    gateway_with,  # type: ignore[no-untyped-def]
) -> None:
    async with gateway_with(100) as first:
        await first.bootstrap.initialize()
        await append_until(first, 550)  # checkpoints at 100 … 500, signed with interval 100
    async with gateway_with(1000) as raised:
        await raised.bootstrap.record_start(replica="raised")  # declares 1000
        await append_until(raised, 720)
    async with gateway_with(100) as lowered_again:
        assert await validate(lowered_again) == (True, None, None)


async def test_deleted_checkpoints_are_still_evident_by_the_declared_interval(
    gateway_with,  # type: ignore[no-untyped-def]
) -> None:
    async with gateway_with(100) as gateway:
        await gateway.bootstrap.initialize()  # declares interval 100
        await append_until(gateway, 250)
        await execute(gateway, CHECKPOINTS.delete())

        assert await validate(gateway) == (False, 100, "CHECKPOINT_MISMATCH")
