"""Webhook notifications, written to the outbox in the transaction of what they report.

Alert triggers, escalations and incident level changes (SPEC §13.2) are recorded here as the
exact JSON body that will be POSTed; the sender (``ssbg.services.webhook_sender``) delivers
them after the commit, so a receiver that is slow or down never blocks or fails the request
that caused the notification. Nothing is written when no webhook is configured.
"""

import json
from collections.abc import Callable
from typing import Any

from ssbg.domain.webhooks import outbox_seal_message
from ssbg.infrastructure.clock import Clock
from ssbg.infrastructure.crypto.integrity import IntegrityKey
from ssbg.services.unit_of_work import UnitOfWork

WAKE_SENDER = "webhook-sender"


class Notifications:
    def __init__(
        self,
        clock: Clock,
        integrity: IntegrityKey,
        *,
        enabled: bool,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        self._integrity = integrity
        self.enabled = enabled
        self._wake = wake

    def enqueue(self, tx: UnitOfWork, event: str, subject: str, payload: dict[str, Any]) -> None:
        """Queue ``{"event": event, subject: payload}`` (``subject``: ``alert`` or
        ``incident``) for delivery once ``tx`` commits."""
        if not self.enabled:
            return
        body = json.dumps({"event": event, subject: payload}, sort_keys=True, separators=(",", ":"))
        now = self._clock.now()
        seal = self._integrity.seal(outbox_seal_message(event, body, now))
        tx.outbox.add(event, body, now, seal)
        if self._wake is not None:
            tx.after_commit(WAKE_SENDER, self._wake_sender)

    async def _wake_sender(self) -> None:
        # This process's sender delivers at once; the others find the row when they poll.
        if self._wake is not None:
            self._wake()
