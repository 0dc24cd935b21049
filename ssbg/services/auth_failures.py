"""Failed authentications: each one audited, until an address fails too often (SPEC §13.2).

More than ``SSBG_AUTH_FAILURE_LIMIT`` failures from one source address within 5 minutes (see
``ssbg.domain.auth_throttle`` for the window) and that address's further failing requests are
refused with ``429 RATE_LIMITED`` and ``Retry-After``. The counts live in the database, so
every replica sees the same ones. The caller has checked the key already: a valid key is never
throttled, and a throttled request learns nothing about its key that a 401 would not tell.

Evidence and cost, per failing request from an address:

* not throttled: one write transaction counts it (one conditional upsert: concurrent
  failures on many replicas cannot count past the limit) and appends ``AUTH_FAILURE`` as
  before — the entry detection rule M1 counts;
* throttled, first time in an aligned 5-minute window: one write transaction records the
  window (``ON CONFLICT DO NOTHING``) and, only if this request created that row, appends the
  single ``AUTH_THROTTLED`` entry (actor none, resource ``system``, never the presented key);
* throttled, window recorded: one read of one statement and no write at all — an attacker
  at hundreds of requests a second neither takes the audit chain's lock nor, on SQLite, the
  database's writer lock.

One failure is audited even when its address is throttled: a key whose record's seal does
not match (``evidence``), which is evidence that the database was changed behind the gateway
(SPEC §13.7) — an attacker must not be able to hide it by failing often enough first. It is
answered 429 all the same, so the answer still says nothing about the key.

Throttled requests are not counted, so the throttle lapses once enough old failures have left
the window (``Retry-After`` says when). A failure with no source address is audited and never
throttled: there is nothing to count it under. Rows older than ten minutes are deleted at most
once a minute per process, after a counting transaction has committed.
"""

from datetime import datetime
from functools import partial

from ssbg.domain.audit_events import SYSTEM_RESOURCE, AuditEvent
from ssbg.domain.auth_throttle import (
    BUCKET,
    RETENTION,
    WINDOW_SECONDS,
    ThrottleState,
    bucket_of,
    first_bucket,
    throttle_state,
    throttle_window_start,
)
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import AuthThrottled
from ssbg.infrastructure.clock import Clock
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase, UnitOfWork

PURGE_CALLBACK = "auth_failures.purge"


class AuthFailures:
    def __init__(self, db: AppDatabase, trail: AuditTrail, clock: Clock, limit: int) -> None:
        if limit < 1:
            raise ValueError("the auth failure limit must be positive")
        self._db = db
        self._trail = trail
        self._clock = clock
        self._limit = limit
        self._next_purge: datetime | None = None

    async def record(self, failure: AuditEvent, *, evidence: bool = False) -> None:
        """Audit ``failure`` (an ``AUTH_FAILURE`` event) and count it against its source
        address, or raise ``AuthThrottled`` if that address is throttled (then ``failure`` is
        still audited if it is ``evidence`` of tampering).

        A failure without a source address (``None``) is audited and never throttled.
        """
        source_ip = failure.source_ip
        if source_ip is None:
            async with self._db.transaction(write=True) as tx:
                await self._trail.append(tx, failure)
            return
        now = self._clock.now()
        async with self._db.transaction(write=False) as tx:
            recent = await tx.auth_failures.recent(
                source_ip, first_bucket(now), throttle_window_start(now)
            )
        state = throttle_state(recent.buckets, now, self._limit)
        if state.throttled and recent.window_recorded and not evidence:
            raise AuthThrottled(retry_after_seconds=state.retry_after_seconds)
        async with self._db.transaction(write=True) as tx:
            state = await self._count_or_throttle(tx, failure, source_ip, now, evidence)
        if state.throttled:
            raise AuthThrottled(retry_after_seconds=state.retry_after_seconds)

    async def _count_or_throttle(
        self, tx: UnitOfWork, failure: AuditEvent, source_ip: str, now: datetime, evidence: bool
    ) -> ThrottleState:
        """Count ``failure`` and append it, or record the throttle window (appending
        ``AUTH_THROTTLED`` if this request opened it); the state that decided."""
        window_start = throttle_window_start(now)
        recent = await tx.auth_failures.recent(source_ip, first_bucket(now), window_start)
        state = throttle_state(recent.buckets, now, self._limit)
        if not state.throttled:
            current = bucket_of(now)
            older = sum(b.failures for b in recent.buckets if b.minute != current)
            if await tx.auth_failures.count_failure(
                source_ip, current, at_most=self._limit - older
            ):
                await self._trail.append(tx, failure)
                self._schedule_purge(tx, now)
                return state
            # Failures from this address on other connections were counted first (PostgreSQL
            # runs them concurrently): the window is over the limit now.
            recent = await tx.auth_failures.recent(source_ip, first_bucket(now), window_start)
            state = throttle_state(recent.buckets, now, self._limit)
            if not state.throttled:  # unreachable: the upsert refused, so the window is full
                state = ThrottleState(state.failures, throttled=True, retry_after_seconds=1)
        if await tx.auth_failures.open_window(source_ip, window_start, now):
            await self._trail.append(tx, self._throttled_event(failure, source_ip, state))
        if evidence:
            await self._trail.append(tx, failure)
        return state

    def _throttled_event(
        self, failure: AuditEvent, source_ip: str, state: ThrottleState
    ) -> AuditEvent:
        return AuditEvent(
            action=AuditAction.AUTH_THROTTLED,
            resource=SYSTEM_RESOURCE,
            result=AuditResult.DENIED,
            details={
                "failures": state.failures,
                "window_seconds": WINDOW_SECONDS,
                "limit": self._limit,
            },
            source_ip=source_ip,
            request_id=failure.request_id,
        )

    def _schedule_purge(self, tx: UnitOfWork, now: datetime) -> None:
        """At most once a minute per process, once ``tx`` has committed: delete old rows in a
        transaction of their own (its failure is logged and changes nothing for this request)."""
        if self._next_purge is not None and now < self._next_purge:
            return
        self._next_purge = now + BUCKET
        tx.after_commit(PURGE_CALLBACK, partial(self._purge, now - RETENTION))

    async def _purge(self, cutoff: datetime) -> None:
        async with self._db.transaction(write=True) as tx:
            await tx.auth_failures.purge_before(cutoff)
