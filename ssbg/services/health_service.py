"""Readiness: the database and the object store take writes, the key store is readable.

Never a false "ready": every check runs each time, with a timeout, and any failure or timeout
marks the gateway not ready.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ssbg.domain.errors import (
    DatabaseUnavailable,
    KeyUnavailable,
    SsbgError,
    StorageUnavailable,
)
from ssbg.domain.incident import effective_incident_level
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.key_store import AUDIT_SIGNING_NAME, FileKeyStore
from ssbg.infrastructure.storage.base import ObjectStore
from ssbg.services.unit_of_work import AppDatabase

CHECK_TIMEOUT_SECONDS = 5.0

_FAILURE_OF: dict[str, type[SsbgError]] = {
    "database": DatabaseUnavailable,
    "storage": StorageUnavailable,
    "key_store": KeyUnavailable,
}


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: int
    error: str | None = None


@dataclass(frozen=True)
class Readiness:
    checks: list[CheckResult]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    def failure(self) -> SsbgError:
        failed = [check.name for check in self.checks if not check.ok]
        error_type = _FAILURE_OF[failed[0]]
        return error_type(
            f"Not ready: {', '.join(failed)} check failed.",
            {"failed_checks": failed, "checks": {c.name: c.error or "ok" for c in self.checks}},
        )


class HealthService:
    def __init__(
        self, db: AppDatabase, object_store: ObjectStore, key_store: FileKeyStore, clock: Clock
    ) -> None:
        self._db = db
        self._store = object_store
        self._keys = key_store
        self._clock = clock

    async def readiness(self) -> Readiness:
        checks = await asyncio.gather(
            self._timed("database", self._db.check_writable),
            self._timed("storage", self._store.check_writable),
            self._timed("key_store", self._check_key_store),
        )
        return Readiness(list(checks))

    async def _check_key_store(self) -> None:
        names = [AUDIT_SIGNING_NAME]
        try:
            async with self._db.transaction(write=False) as tx:
                active = await tx.key_versions.get_active_or_none()
            if active is None:
                raise KeyUnavailable("No active key version.")
            names.append(active.version)
        except DatabaseUnavailable:
            pass  # reported by the database check; the files can still be checked
        await asyncio.to_thread(self._keys.check_readable, names)

    @staticmethod
    async def _timed(name: str, check: Callable[[], Awaitable[None]]) -> CheckResult:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            error = None
        except TimeoutError:
            error = "TIMEOUT"
        except SsbgError as exc:
            error = exc.code
        except Exception:
            error = "ERROR"
        latency = int((time.perf_counter() - started) * 1000)
        return CheckResult(name=name, ok=error is None, latency_ms=latency, error=error)

    async def details(self) -> dict[str, Any]:
        readiness = await self.readiness()
        now = self._clock.now()
        async with self._db.transaction(write=False) as tx:
            state = await tx.system_state.get()
            active = await tx.key_versions.get_active_or_none()
            head = await tx.audit.get_head()
        level = effective_incident_level(
            state.incident_level, state.incident_changed_at, state.last_alert_at, now
        )
        return {
            "status": "ready" if readiness.ready else "not_ready",
            "checks": {
                c.name: {"ok": c.ok, "latency_ms": c.latency_ms, "error": c.error}
                for c in readiness.checks
            },
            "incident_level": int(level),
            "active_key_version": active.version if active else None,
            "audit_head": {"sequence": head.sequence_number, "hash": head.entry_hash},
        }
