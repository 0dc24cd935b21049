"""Webhook notifications, written to the outbox in the transaction of what they report.

Alert triggers, escalations and incident level changes (SPEC §13.2) are recorded here as the
exact JSON body that will be POSTed; the sender (``ssbg.services.webhook_sender``) delivers
them after the commit, so a receiver that is slow or down never blocks or fails the request
that caused the notification. Nothing is written when no webhook is configured.
"""

import json
from collections.abc import Callable
from typing import Any

from ssbg.infrastructure.clock import Clock
from ssbg.services.unit_of_work import UnitOfWork

WAKE_SENDER = "webhook-sender"


class Notifications:
    def __init__(
        self, clock: Clock, *, enabled: bool, wake: Callable[[], None] | None = None
    ) -> None:
        self._clock = clock
        self.enabled = enabled
        self._wake = wake

    def enqueue(self, tx: UnitOfWork, event: str, subject: str, payload: dict[str, Any]) -> None:
        """Queue ``{"event": event, subject: payload}`` (``subject``: ``alert`` or
        ``incident``) for delivery once ``tx`` commits."""
        if not self.enabled:
            return
        body = json.dumps({"event": event, subject: payload}, sort_keys=True, separators=(",", ":"))
        tx.outbox.add(event, body, self._clock.now())
        if self._wake is not None:
            tx.after_commit(WAKE_SENDER, self._wake_sender)

    async def _wake_sender(self) -> None:
        # This process's sender delivers at once; the others find the row when they poll.
        if self._wake is not None:
            self._wake()
