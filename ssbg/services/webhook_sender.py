"""Delivering the webhook outbox (SPEC §13.2), safely from any number of replicas.

A notification is written to ``notification_outbox`` in the transaction of what it reports
(``ssbg.services.notifications``). Every gateway that owns its services runs one sender, which
loops:

1. **Claim** up to ``BATCH`` due rows in one short write transaction: each gets a lease
   (``claimed_until``, ``claimed_by``) and its attempt is counted. PostgreSQL skips rows another
   sender has locked (``FOR UPDATE SKIP LOCKED``); SQLite serialises write transactions. Commit.
2. **POST** each claimed body, in order, outside any transaction, with a short timeout.
3. **Settle** each in its own short transaction, a compare-and-set on the claim: delivered on a
   2xx, else released with ``next_attempt_at`` moved by the backoff of
   ``ssbg.domain.webhooks.retry_delay`` (5 s doubling to 10 minutes; never given up) and a
   short ``last_error``.

The lease outlasts the whole batch's POSTs, so in normal operation one sender holds a row from
claim to settle and each notification reaches the receiver once. The one exception is the
at-least-once edge of every outbox: a sender that stops (crash, kill, shutdown mid-POST)
after the receiver answered 2xx but before the mark leaves the row leased but undelivered;
once the lease lapses another sender (or the restarted one) delivers it again. Receivers
de-duplicate by ``X-SSBG-Delivery``, the row's id.

A claim or a retry time further ahead than any sender sets one (``LONGEST_LEASE``,
``MAX_RETRY``) was set by a clock ahead of ours — ours went back since — and counts as lapsed
or due now (``ssbg.domain.webhooks.SetAhead``): a notification never waits for the length of
a clock jump. A refused row stays refused.

The state is in the database, so pending notifications survive restarts and are picked up by
whichever replica runs next. A sender wakes every ``poll_seconds`` and, in its own process,
as soon as a transaction that queued a notification commits (:meth:`WebhookSender.wake`).
Delivered rows are pruned after ``RETENTION``.
"""

import asyncio
import contextlib
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from ssbg.domain.audit_events import AuditEvent
from ssbg.domain.enums import AuditAction, AuditResult
from ssbg.domain.errors import SsbgError
from ssbg.domain.webhooks import (
    MAX_TIMEOUT_SECONDS,
    SetAhead,
    outbox_seal_message,
    retry_delay,
)
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.infrastructure.db.models import OutboxNotification
from ssbg.infrastructure.webhook import WebhookClient
from ssbg.services.audit_service import AuditTrail
from ssbg.services.unit_of_work import AppDatabase

BATCH = 10
# The lease covers a whole batch of timed-out POSTs, with a margin for settling them.
LEASE_MARGIN = timedelta(seconds=30)
# The longest lease any sender takes, whatever its timeout setting.
LONGEST_LEASE = timedelta(seconds=MAX_TIMEOUT_SECONDS) * BATCH + LEASE_MARGIN
RETENTION = timedelta(days=7)
NEVER = timedelta(days=365 * 100)  # a refused (tampered) row is never due again
PRUNE_EVERY = timedelta(hours=1)

log = structlog.get_logger("ssbg.webhooks")


def sender_id() -> str:
    """A name for one sender: host, process and a random part (several in one process)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    lost_claims: list[int] = field(default_factory=list)


class WebhookSender:
    def __init__(
        self,
        db: AppDatabase,
        client: WebhookClient,
        clock: Clock,
        integrity: IntegrityKey,
        trail: AuditTrail,
        *,
        timeout_seconds: float,
        poll_seconds: float = 1.0,
        name: str | None = None,
    ) -> None:
        self._db = db
        self._client = client
        self._clock = clock
        self._integrity = integrity
        self._trail = trail
        self._poll = poll_seconds
        self._lease = timedelta(seconds=timeout_seconds) * BATCH + LEASE_MARGIN
        self.name = name or sender_id()
        self._woken = asyncio.Event()
        self._pruned_at: datetime | None = None

    def wake(self) -> None:
        """Deliver promptly: a notification was just committed in this process."""
        self._woken.set()

    async def deliver_due(self) -> DeliveryReport:
        """Claim, POST and settle due notifications until none is left; a report of what
        happened. Raises only for the database (the caller logs and tries again later)."""
        report = DeliveryReport()
        while True:
            claimed = await self._claim()
            for notification in claimed:
                await self._deliver(notification, report)
            if len(claimed) < BATCH:
                return report

    async def _refuse_tampered(
        self, notification: OutboxNotification, report: DeliveryReport
    ) -> None:
        """A row the gateway did not write (its seal does not match): never signed or sent,
        kept as evidence, and audited (``TAMPERING_DETECTED``, which raises alert M6)."""
        log.error("webhook_notification_tampered", delivery_id=notification.id)
        resource = f"notification:{notification.id}"
        async with self._db.transaction(write=True) as tx:
            refused = await tx.outbox.refuse(
                notification.id, claimer=self.name, never=self._clock.now() + NEVER
            )
            if refused:
                await self._trail.append(
                    tx,
                    AuditEvent(
                        action=AuditAction.TAMPERING_DETECTED,
                        resource=resource,
                        result=AuditResult.FAILED,
                        details={"table": "notification_outbox"},
                    ),
                )
        report.failed.append(notification.id)

    async def _claim(self) -> list[OutboxNotification]:
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            rows = await tx.outbox.claim_due(
                now,
                claimer=self.name,
                lease_until=now + self._lease,
                limit=BATCH,
                set_ahead=SetAhead.at(now, LONGEST_LEASE),
            )
            return list(rows)

    async def _deliver(self, notification: OutboxNotification, report: DeliveryReport) -> None:
        if not self._integrity.seal_matches(
            outbox_seal_message(notification.event, notification.body, notification.created_at),
            notification.seal,
        ):
            await self._refuse_tampered(notification, report)
            return
        outcome = await self._client.post(notification.id, notification.event, notification.body)
        now = self._clock.now()
        async with self._db.transaction(write=True) as tx:
            if outcome.delivered:
                settled = await tx.outbox.mark_delivered(
                    notification.id, claimer=self.name, now=now
                )
            else:
                settled = await tx.outbox.schedule_retry(
                    notification.id,
                    claimer=self.name,
                    next_attempt_at=now + retry_delay(notification.attempts),
                    error=outcome.error or "failed",
                )
        if not settled:
            # Our lease lapsed and another sender took the row: it reports the outcome.
            report.lost_claims.append(notification.id)
            log.warning("webhook_claim_lost", delivery_id=notification.id)
        elif outcome.delivered:
            report.delivered.append(notification.id)
        else:
            report.failed.append(notification.id)
            log.warning(
                "webhook_delivery_failed",
                delivery_id=notification.id,
                notification_event=notification.event,
                attempts=notification.attempts,
                error=outcome.error,
            )

    async def prune(self) -> int:
        """Delete notifications delivered more than ``RETENTION`` ago."""
        async with self._db.transaction(write=True) as tx:
            return await tx.outbox.prune_delivered(self._clock.now() - RETENTION)

    async def run_once(self) -> DeliveryReport | None:
        """:meth:`deliver_due` (and, once per ``PRUNE_EVERY``, :meth:`prune`), logging
        instead of raising: a database outage only delays delivery."""
        try:
            report = await self.deliver_due()
            now = self._clock.now()
            if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
                self._pruned_at = now
                await self.prune()
        except SsbgError as exc:
            log.warning("webhook_sender_failed", code=exc.code)
            return None
        except Exception as exc:
            log.error("webhook_sender_failed", error=type(exc).__name__)
            return None
        return report

    async def run(self) -> None:
        """Deliver forever: at each wake-up and at least every ``poll_seconds`` (a task of
        the app's lifespan)."""
        while True:
            self._woken.clear()
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._poll)

    async def close(self) -> None:
        await self._client.close()
