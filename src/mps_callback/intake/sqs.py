"""The AWS SQS door: MPS's ``NotifyType: "AWS-SQS"`` puts each notification on an SQS queue; this pulls it.

A long poll (``WaitTimeSeconds`` 20, up to 10 messages) hands a batch to ``doors.pump``; the
messages it settles are deleted with ``DeleteMessageBatch``. An entry SQS refuses to delete is
logged and counted (``mps_door_errors_total{door="sqs"}``): that message comes back after its
visibility timeout and is then a duplicate, never a second row.

While a batch is being taken, a heartbeat (``ChangeMessageVisibilityBatch`` every half of the
queue's ``VisibilityTimeout``) keeps its messages invisible, so a slow journal does not hand the
same message to another consumer meanwhile. The heartbeat stops when the batch is acknowledged or
the next receive starts: a message left unsettled then comes back after one visibility timeout.

The body is the notification. MPS does not publish its SQS layout; a body that is an SNS envelope
(``{"Type": "Notification", "TopicArn": ..., "Message": "..."}``, a queue subscribed to a topic)
is unwrapped to its ``Message``: the notification's own bytes, whose signature is then checked.

Configuration: ``MPS_SQS_QUEUE_URL``, optional ``MPS_SQS_ENDPOINT_URL`` (a stand-in such as moto);
credentials from botocore's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profile,
instance role), the region from the queue URL when it is an AWS one, else ``AWS_DEFAULT_REGION``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from mps_callback import metrics
from mps_callback.config import Settings
from mps_callback.intake.accept import Delivery
from mps_callback.intake.doors import Message

log = logging.getLogger(__name__)

NAME = "sqs"
#: SQS's longest long poll and largest batch.
WAIT_SECONDS = 20
BATCH = 10
#: The part of the visibility timeout after which the heartbeat extends a batch still being taken.
HEARTBEAT_SHARE = 0.5
#: The system attributes kept as delivery metadata: attribute name -> header name.
ATTRIBUTES = {"ApproximateReceiveCount": "receive_count", "SentTimestamp": "sent_timestamp"}
#: An AWS queue URL names its region: ``https://sqs.REGION.amazonaws.com/...`` (or the legacy
#: ``https://REGION.queue.amazonaws.com/...``).
AWS_HOST = re.compile(r"^(?:sqs\.(?P<region>[a-z0-9-]+)|(?P<legacy>[a-z0-9-]+)\.queue)\.amazonaws\.com(?:\.cn)?$")


def region_of(queue_url: str) -> str | None:
    """The region an AWS queue URL names, or None (a stand-in's URL)."""
    found = AWS_HOST.match(urlsplit(queue_url).hostname or "")
    return None if found is None else found["region"] or found["legacy"]


def region(settings: Settings) -> str | None:
    """The queue URL's region, else the standard AWS environment's."""
    return (
        region_of(settings.sqs_queue_url)
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or None
    )


def configuration_error(settings: Settings) -> str | None:
    """Why the SQS settings cannot work (one line, no secret), or None."""
    for name, url in (
        ("MPS_SQS_QUEUE_URL", settings.sqs_queue_url),
        ("MPS_SQS_ENDPOINT_URL", settings.sqs_endpoint_url),
    ):
        parts = urlsplit(url)
        if url and (parts.scheme not in ("http", "https") or not parts.hostname):
            return f"{name} must be an http(s) URL"
    if not urlsplit(settings.sqs_queue_url).path.strip("/"):
        return "MPS_SQS_QUEUE_URL names no queue (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE)"
    if region(settings) is None:
        return "no region for MPS_SQS_QUEUE_URL: set AWS_DEFAULT_REGION"
    if bool(os.environ.get("AWS_ACCESS_KEY_ID")) != bool(os.environ.get("AWS_SECRET_ACCESS_KEY")):
        return "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together"
    return None


def notification_bytes(body: str) -> bytes:
    """The notification in a message body: the body itself, or the ``Message`` of an SNS envelope."""
    raw = body.encode(errors="surrogatepass")  # not UTF-8, then: refused as a notification, not a crash here
    if b'"TopicArn"' not in raw:  # the common case costs no parse
        return raw
    with contextlib.suppress(orjson.JSONDecodeError):
        envelope = orjson.loads(raw)
        if isinstance(envelope, dict) and envelope.get("Type") == "Notification":
            inner = envelope.get("Message")
            if isinstance(inner, str):
                return inner.encode(errors="surrogatepass")
    return raw


def message_of(received: dict[str, Any]) -> Message:
    """One SQS message as a door `Message`: its body, its id and receive count as delivery metadata."""
    attributes = received.get("Attributes", {})
    headers = {"message_id": received["MessageId"]}
    headers |= {header: attributes[name] for name, header in ATTRIBUTES.items() if name in attributes}
    sent = attributes.get("SentTimestamp")
    sent_at = datetime.fromtimestamp(int(sent) / 1000, UTC) if sent and sent.isdigit() else None
    return Message(
        notification_bytes(received["Body"]),
        Delivery(NAME, headers=headers, sent_at=sent_at),
        received["ReceiptHandle"],
    )


class SqsQueue:
    """An SQS queue as a door `Queue`; its client opens on the first receive."""

    name = NAME

    def __init__(self, queue_url: str, endpoint_url: str | None, region_name: str | None, wait_seconds: int) -> None:
        self.queue_url, self.endpoint_url, self.region_name = queue_url, endpoint_url, region_name
        self.wait_seconds = wait_seconds
        self.visibility_seconds = 0.0
        self.in_flight: set[str] = set()
        self._client: Any = None  # aiobotocore clients are generated at run time: no static type
        self._exits = AsyncExitStack()
        self._heartbeat: asyncio.Task[None] | None = None

    async def _open(self) -> Any:
        if self._client is None:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            config = AioConfig(connect_timeout=10, read_timeout=self.wait_seconds + 10, retries={"max_attempts": 2})
            self._client = await self._exits.enter_async_context(
                get_session().create_client(
                    "sqs", region_name=self.region_name, endpoint_url=self.endpoint_url, config=config
                )
            )
            answer = await self._client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"]
            )
            self.visibility_seconds = float(answer["Attributes"]["VisibilityTimeout"])
        return self._client

    async def receive(self) -> Sequence[Message]:
        """A long poll; the batch it brings stays invisible (the heartbeat) until acknowledged or the next receive."""
        await self._stop_heartbeat()
        client = await self._open()
        answer = await client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=BATCH,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=list(ATTRIBUTES),
            MessageSystemAttributeNames=list(ATTRIBUTES),
        )
        messages = [message_of(received) for received in answer.get("Messages", [])]
        self.in_flight = {message.handle for message in messages}
        if messages and self.visibility_seconds > 0:
            self._heartbeat = asyncio.create_task(self._keep_invisible())
        return messages

    async def acknowledge(self, handles: Sequence[Any]) -> None:
        """``DeleteMessageBatch`` by tens; an entry SQS fails is logged and counted (it comes back, a duplicate)."""
        self.in_flight.difference_update(handles)
        client = await self._open()
        for start in range(0, len(handles), BATCH):
            chunk = handles[start : start + BATCH]
            entries = [{"Id": str(number), "ReceiptHandle": handle} for number, handle in enumerate(chunk)]
            answer = await client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            self._failed("delete", answer.get("Failed", []))

    async def _keep_invisible(self) -> None:
        """Every half visibility timeout, push the batch still in flight a whole timeout further."""
        while True:
            await asyncio.sleep(self.visibility_seconds * HEARTBEAT_SHARE)
            handles = list(self.in_flight)
            if not handles:
                return
            try:
                for start in range(0, len(handles), BATCH):
                    entries = [
                        {"Id": str(number), "ReceiptHandle": handle, "VisibilityTimeout": int(self.visibility_seconds)}
                        for number, handle in enumerate(handles[start : start + BATCH])
                    ]
                    answer = await self._client.change_message_visibility_batch(
                        QueueUrl=self.queue_url, Entries=entries
                    )
                    self._failed("extend visibility", answer.get("Failed", []))
            except Exception as error:  # the batch is still being taken: a redelivery is only a duplicate
                metrics.DOOR_ERRORS.labels(NAME).inc()
                log.warning("sqs heartbeat failed", extra={"door": NAME, "error": type(error).__name__})

    def _failed(self, action: str, failed: list[dict[str, Any]]) -> None:
        if failed:
            metrics.DOOR_ERRORS.labels(NAME).inc(len(failed))
            codes = sorted({str(entry.get("Code")) for entry in failed})
            log.warning(
                f"sqs {action} failed for some messages", extra={"door": NAME, "count": len(failed), "codes": codes}
            )

    async def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

    async def close(self) -> None:
        await self._stop_heartbeat()
        await self._exits.aclose()
        self._client = None


def open_queue(settings: Settings, wait_seconds: int = WAIT_SECONDS) -> SqsQueue:
    """The queue ``MPS_SQS_QUEUE_URL`` names (checked at start by ``configuration_error``)."""
    return SqsQueue(settings.sqs_queue_url, settings.sqs_endpoint_url or None, region(settings), wait_seconds)
