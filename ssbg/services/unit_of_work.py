"""The unit of work: one open transaction and the repositories that work inside it.

The services open one with ``async with db.transaction(write=True) as tx:`` (see
:class:`ssbg.infrastructure.db.database.Database`); :func:`open_database` is the database
whose transactions hand out this unit of work.
"""

from collections.abc import Sequence
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.db.database import AfterCommit, Database
from ssbg.infrastructure.db.models import SystemState
from ssbg.repositories.alerts_repository import AlertsRepository
from ssbg.repositories.api_keys_repository import ApiKeysRepository
from ssbg.repositories.audit_repository import AuditRepository, LockedHead
from ssbg.repositories.auth_failures_repository import AuthFailuresRepository
from ssbg.repositories.backups_repository import BackupsRepository
from ssbg.repositories.console_sessions_repository import ConsoleSessionsRepository
from ssbg.repositories.detection_repository import DetectionRepository
from ssbg.repositories.incident_repository import IncidentRepository
from ssbg.repositories.key_versions_repository import KeyVersionsRepository
from ssbg.repositories.outbox_repository import OutboxRepository
from ssbg.repositories.policies_repository import PoliciesRepository
from ssbg.repositories.restores_repository import RestoresRepository
from ssbg.repositories.retention_rules_repository import RetentionRulesRepository
from ssbg.repositories.sealing import SealsRepository, bind_integrity_key
from ssbg.repositories.system_state_repository import SystemStateRepository
from ssbg.repositories.verify_jobs_repository import VerifyJobsRepository


class UnitOfWork:
    def __init__(self, session: AsyncSession, writable: bool, integrity: IntegrityKey) -> None:
        self.session = session
        self.writable = writable
        # Every sealed row this transaction reads is checked, and every one it writes sealed,
        # under this key (see ssbg.repositories.sealing).
        bind_integrity_key(session, integrity)
        self.alerts = AlertsRepository(session)
        self.api_keys = ApiKeysRepository(session)
        self.audit = AuditRepository(session)
        self.auth_failures = AuthFailuresRepository(session)
        self.incidents = IncidentRepository(session)
        self.backups = BackupsRepository(session)
        self.console_sessions = ConsoleSessionsRepository(session)
        self.detection = DetectionRepository(session)
        self.key_versions = KeyVersionsRepository(session)
        self.outbox = OutboxRepository(session)
        self.policies = PoliciesRepository(session)
        self.restores = RestoresRepository(session)
        self.retention_rules = RetentionRulesRepository(session)
        self.seals = SealsRepository(session)
        self.system_state = SystemStateRepository(session)
        self.verify_jobs = VerifyJobsRepository(session)
        self.flush_after_commit = False
        self._after_commit: dict[str, AfterCommit] = {}

    def after_commit(self, key: str, callback: AfterCommit) -> None:
        """Run ``callback`` once this transaction has committed and is durable (never if it
        rolls back). One callback per ``key``: registering under a key again replaces the
        earlier callback (so a transaction that appends many entries advances the audit anchor
        once, to its last)."""
        self._after_commit[key] = callback

    def pending_after_commit(self, key: str) -> AfterCommit | None:
        return self._after_commit.get(key)

    def take_after_commit(self) -> Sequence[AfterCommit]:
        callbacks = list(self._after_commit.values())
        self._after_commit.clear()
        return callbacks

    async def lock_audit_head(self) -> LockedHead:
        """Lock the audit chain head for an append (held until this transaction ends); also
        the incident state, read in the same statement (see ``AuditRepository.lock_head``).

        PostgreSQL: the same statement lets this transaction's COMMIT release its row locks
        before its WAL reaches disk; ``Database.transaction`` then waits for that flush before
        returning. Audit appends serialise on the chain-head row lock, so a lock held through
        each commit's fsync would cap the whole gateway at one append per disk flush. Released
        at commit instead, the next appender proceeds while the flushes of many transactions
        share one fsync (group commit). Nothing is reported done before it is durable, and WAL
        is replayed in order, so a crash can only lose a suffix of the chain whose callers
        were never told it succeeded — never a link in the middle.
        """
        postgresql = self.session.get_bind().dialect.name == "postgresql"
        locked = await self.audit.lock_head(commit_before_flush=postgresql)
        self.flush_after_commit = self.flush_after_commit or postgresql
        return locked

    async def lock_system_state(self) -> SystemState:
        """The system-state row (incident level), locked until this transaction ends.

        Lock order: the audit chain head first, then this row. Appends take the head lock and
        an alert raised by an append then locks this row (``ssbg.services.detection``); a
        transaction that locked this row first and appended after would deadlock with it.
        """
        await self.lock_audit_head()
        return await self.system_state.get(for_update=True)


AppDatabase = Database[UnitOfWork]


def open_database(
    url: str, integrity: IntegrityKey | None = None, *, pool_size: int = 10
) -> AppDatabase:
    """The database; without ``integrity`` (tools that read only the audit tables) every
    sealed row is refused — fail closed — rather than read unchecked."""
    key = integrity or IntegrityKey.unavailable("This database handle has no integrity key.")
    return Database(url, partial(UnitOfWork, integrity=key), pool_size=pool_size)
