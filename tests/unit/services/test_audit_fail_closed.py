"""If the audit entry cannot be written, the operation fails and changes nothing."""

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.domain.audit_chain import ChainedEntry
from ssbg.domain.enums import PolicyEffect, Role
from ssbg.domain.errors import DatabaseUnavailable
from ssbg.domain.identity import Actor, RequestContext
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.crypto.key_store import FileKeyStore
from ssbg.infrastructure.db.database import Database
from ssbg.repositories.audit_repository import AuditRepository
from ssbg.services.api_key_service import NewApiKey
from ssbg.services.container import Services, build_services
from ssbg.services.policy_service import NewPolicy
from ssbg.services.unit_of_work import UnitOfWork
from ssbg.settings import Settings
from tests.support.clock import FixedClock
from tests.support.databases import SqliteTemplate
from tests.support.factories import actor, create_api_key

CONTEXT = RequestContext(request_id="r", source_ip="192.0.2.1")


class BrokenAuditRepository(AuditRepository):
    """Stands in for an audit table that refuses writes (disk full, permissions, ...)."""

    async def insert_entry(self, entry: ChainedEntry, *, incident: object) -> bool:
        raise DatabaseUnavailable("audit insert failed")


class DatabaseWithBrokenAudit(Database[UnitOfWork]):
    broken = False

    def make_unit_of_work(self, session: AsyncSession, *, writable: bool) -> UnitOfWork:
        tx = super().make_unit_of_work(session, writable=writable)
        if self.broken:
            tx.audit = BrokenAuditRepository(session)
        return tx


class Setup(NamedTuple):
    services: Services
    db: DatabaseWithBrokenAudit
    actor: Actor


@pytest.fixture
async def setup(
    tmp_path: Path, sqlite_template: SqliteTemplate, shared_key_store: FileKeyStore
) -> AsyncIterator[Setup]:
    url = sqlite_template.fresh(tmp_path)
    integrity = IntegrityKey(shared_key_store.integrity_key)
    db = DatabaseWithBrokenAudit(url, partial(UnitOfWork, integrity=integrity))
    settings = Settings(_env_file=None, database_url=url, data_dir=tmp_path)  # type: ignore[call-arg]
    services = build_services(settings, clock=FixedClock(), db=db, key_store=shared_key_store)
    await services.bootstrap.initialize()
    admin = await create_api_key(services, Role.SUPER_ADMIN)
    yield Setup(services, db, actor(admin, CONTEXT))
    await services.close()


async def test_key_creation_fails_and_no_key_exists_when_audit_fails(setup: Setup) -> None:
    services, db, actor = setup
    before = len(await services.api_keys.list_api_keys())
    db.broken = True

    with pytest.raises(DatabaseUnavailable):
        await services.api_keys.create_api_key(
            actor, NewApiKey(role=Role.OPERATOR, description="never")
        )

    db.broken = False
    assert len(await services.api_keys.list_api_keys()) == before


async def test_policy_creation_fails_and_no_policy_exists_when_audit_fails(setup: Setup) -> None:
    services, db, actor = setup
    db.broken = True

    with pytest.raises(DatabaseUnavailable):
        await services.policies.create_policy(
            actor,
            NewPolicy(
                name="p",
                description="",
                effect=PolicyEffect.DENY,
                priority=1,
                is_active=True,
                rule={},
            ),
        )

    db.broken = False
    assert list(await services.policies.list_policies()) == []


async def test_revocation_fails_and_the_key_keeps_working_when_audit_fails(setup: Setup) -> None:
    services, db, actor = setup
    target = await create_api_key(services, Role.OPERATOR)
    db.broken = True

    with pytest.raises(DatabaseUnavailable):
        await services.api_keys.revoke_api_key(actor, target.record.id, "x")

    db.broken = False
    assert (await services.api_keys.get_api_key(target.record.id)).revoked_at is None
    assert (await services.auth.authenticate(target.api_key, CONTEXT)).principal.key_id == (
        target.record.id
    )
