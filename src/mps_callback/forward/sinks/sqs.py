"""Amazon SQS (or any SQS-compatible queue): one message per event.

The event id travels as the ``event_id`` message attribute; on a FIFO queue (name ending in
``.fifo``) it is also the ``MessageDeduplicationId``, so SQS drops a repeat within its
five-minute window, and the task id is the ``MessageGroupId``, so one task's events stay in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from mps_callback.forward.event import Event
from mps_callback.forward.sinks.aws import AwsClient, AwsTarget, open_client
from mps_callback.forward.sinks.base import DEFAULT_TIMEOUT_SECONDS, ConnectedSink, Delivered, Outcome


@dataclass(slots=True)
class Queue:
    aws: AwsClient
    url: str


class SqsSink(ConnectedSink[Queue]):
    kind = "sqs"

    def __init__(self, name: str, url: str, secret: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        super().__init__(name, url, secret=secret, timeout=timeout)
        parts = urlsplit(url)
        self.queue = unquote(parts.netloc.rpartition("@")[2])  # as written: queue names are case-sensitive
        if not self.queue or parts.path.strip("/"):
            raise ValueError("the SQS URL must be sqs://queue-name?region=... (the queue name is the host)")
        self.fifo = self.queue.endswith(".fifo")
        self._target = AwsTarget.from_url(url)

    async def _connect(self) -> Queue:
        aws = await open_client("sqs", self._target, self.timeout)
        try:
            answer = await aws.client.get_queue_url(QueueName=self.queue)
        except BaseException:
            await aws.close()
            raise
        return Queue(aws, answer["QueueUrl"])

    async def _disconnect(self, connection: Queue) -> None:
        await connection.aws.close()

    async def _send(self, connection: Queue, event: Event) -> Outcome:
        message: dict[str, Any] = {
            "QueueUrl": connection.url,
            "MessageBody": event.body().decode(),
            "MessageAttributes": {
                "event_id": {"DataType": "String", "StringValue": event.id},
                "event_type": {"DataType": "String", "StringValue": event.type},
            },
        }
        if self.fifo:
            message["MessageDeduplicationId"] = event.id
            message["MessageGroupId"] = event.task_id or event.type
        await connection.aws.client.send_message(**message)
        return Delivered()
