"""The webhook receiver as the gateway sees it: one signed POST, one outcome.

``WebhookClient.post`` never raises for anything the receiver or the network does: it returns
a :class:`DeliveryOutcome` whose ``error`` is a short description fit for the outbox row and
the log — a status code or an exception's type, never the URL (incoming-webhook URLs of chat
services carry their token in the path), the secret, or the receiver's answer.
"""

import asyncio
from dataclasses import dataclass

import httpx

from ssbg.domain.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign

USER_AGENT = "ssbg-webhook/1"


@dataclass(frozen=True)
class DeliveryOutcome:
    delivered: bool
    error: str | None = None


class WebhookClient:
    def __init__(self, url: str, secret: bytes, *, timeout_seconds: float) -> None:
        self._url = url
        self._secret = secret
        self._timeout = timeout_seconds
        # No redirects: a receiver that answers 3xx has not accepted the notification, and a
        # signed body must not be replayed to wherever a redirect points. The proxy settings
        # of the environment (HTTPS_PROXY, NO_PROXY) apply, as for any outbound client.
        self._http = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)

    async def post(self, delivery_id: int, event: str, body: str) -> DeliveryOutcome:
        """POST ``body`` (its exact bytes, signed); delivered only on a 2xx answer within the
        timeout (the whole exchange, not each read)."""
        content = body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(self._secret, content),
            EVENT_HEADER: event,
            DELIVERY_HEADER: str(delivery_id),
        }
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.post(self._url, content=content, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            return DeliveryOutcome(False, "timeout")
        except httpx.HTTPError as exc:
            return DeliveryOutcome(False, type(exc).__name__)
        if response.is_success:
            return DeliveryOutcome(True)
        return DeliveryOutcome(False, f"HTTP {response.status_code}")

    async def close(self) -> None:
        await self._http.aclose()
