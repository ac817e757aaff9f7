"""Webhooks: a POST signed per Standard Webhooks, the way Svix, Hookdeck and Convoy send them.

The receiver checks ``webhook-signature`` with its copy of the secret (any Standard Webhooks
library does) and drops repeats by ``webhook-id``, which is the event id.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from standardwebhooks import Webhook

from mps_callback.forward.event import Event
from mps_callback.forward.sinks.base import DEFAULT_TIMEOUT_SECONDS, ConnectedSink, Delivered, Disable, Outcome, Retry

#: Statuses whose ``Retry-After`` says when to come back.
RETRY_AFTER_STATUSES = frozenset({429, 503})
#: A receiver asking to wait longer than a day is waited for a day (the schedule's own longest wait).
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
#: Of a receiver's answer only this much is read (then the connection is dropped): the status and
#: headers are all a delivery needs, and a receiver must not make the forwarder hold gigabytes.
MAX_ANSWER_BYTES = 64 * 1024


class WebhookSink(ConnectedSink[httpx.AsyncClient]):
    kind = "webhook"

    def __init__(self, name: str, url: str, secret: str | None, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        if not secret:
            raise ValueError("a webhook needs `secret` (a Standard Webhooks signing secret, whsec_...)")
        super().__init__(name, url, secret=secret, timeout=timeout)
        self._url = url
        try:
            base64.b64decode(secret.removeprefix("whsec_"), validate=True)  # the library's decoding is lenient
            self._signer = Webhook(secret)
        except Exception:  # base64 errors quote the input: say what is wrong, not what it was
            raise ValueError("`secret` is not a Standard Webhooks secret (whsec_ followed by base64)") from None

    async def _connect(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)

    async def _disconnect(self, connection: httpx.AsyncClient) -> None:
        await connection.aclose()

    async def _send(self, connection: httpx.AsyncClient, event: Event) -> Outcome:
        body = event.body()
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(event.id, now, body.decode()),
        }
        async with connection.stream("POST", self._url, content=body, headers=headers) as response:
            read = 0
            async for chunk in response.aiter_raw():  # drained when small, so the connection is kept
                read += len(chunk)
                if read > MAX_ANSWER_BYTES:
                    break  # leaving the block closes the connection instead
            return self._outcome(response)

    def _outcome(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return Delivered()
        if status == 410:
            return Disable(f"HTTP 410 Gone: the receiver asked to stop sending to sink {self.name!r}")
        after = retry_after(response.headers.get("retry-after")) if status in RETRY_AFTER_STATUSES else None
        return Retry(self.reason(f"HTTP {status} {response.reason_phrase}".strip()), after)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - (now or datetime.now(UTC))).total_seconds()), MAX_RETRY_AFTER_SECONDS)
