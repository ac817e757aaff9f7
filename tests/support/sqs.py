"""The SQS door's real transport in tests: a moto server on 127.0.0.1 (``moto[server]``), one per test process.

`SqsDoor` is the door's `DoorHarness` for the shared suite: a fresh queue with a short visibility
timeout (and, on request, a dead-letter queue behind a redrive policy), the settings and AWS
environment that point the door at it.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import orjson
import pytest

from tests.support.db import ON_CI
from tests.support.service import free_port

#: Credentials moto takes; the tests check they appear nowhere.
ACCESS_KEY_ID = "AKIAMPSDOORTESTING01"
SECRET_ACCESS_KEY = "sqs-door-secret-never-logged-0123456789"
REGION = "us-east-1"


@functools.cache
def moto_port() -> int:
    """A moto server for the test process; failing to start it fails on CI, skips here."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:  # pragma: no cover - moto is a test dependency
        if ON_CI:
            pytest.fail(f"moto[server] missing on CI: {error}")
        pytest.skip(f"moto[server] not installed: {error}")
    port = free_port()
    ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False).start()
    return port


class SqsDoor:
    """A moto queue behind the ``sqs`` door."""

    name = "sqs"

    def __init__(self, visibility_seconds: int = 2, max_receive_count: int = 0) -> None:
        self.port = moto_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.visibility_seconds = float(visibility_seconds)
        self.client = boto3.client(
            "sqs",
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )
        name = f"mps-door-{uuid.uuid4().hex[:8]}"
        attributes = {"VisibilityTimeout": str(visibility_seconds)}
        self.dead_letter_url = ""
        if max_receive_count:
            self.dead_letter_url = self.client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            arn = self.client.get_queue_attributes(QueueUrl=self.dead_letter_url, AttributeNames=["QueueArn"])
            policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": max_receive_count}
            attributes["RedrivePolicy"] = orjson.dumps(policy).decode()
        self.queue_url = self.client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        self.settings: dict[str, Any] = {"sqs_queue_url": self.queue_url, "sqs_endpoint_url": self.endpoint}
        self.environment = {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def put(self, body: bytes) -> None:
        self.send(body)

    def send(self, body: bytes) -> str:
        """Put ``body`` on the queue; its MessageId."""
        return str(self.client.send_message(QueueUrl=self.queue_url, MessageBody=body.decode())["MessageId"])

    def counts(self, queue_url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the queue (or of another, the dead-letter queue)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.client.get_queue_attributes(QueueUrl=queue_url or self.queue_url, AttributeNames=names)
        return int(attributes["Attributes"][names[0]]), int(attributes["Attributes"][names[1]])

    def waiting(self) -> int:
        return sum(self.counts())

    def dead_letters(self) -> list[dict[str, Any]]:
        answer = self.client.receive_message(QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return list(answer.get("Messages", []))

    def close(self) -> None:
        for url in filter(None, (self.queue_url, self.dead_letter_url)):
            self.client.delete_queue(QueueUrl=url)


@contextmanager
def sqs_door(visibility_seconds: int = 2, max_receive_count: int = 0) -> Iterator[SqsDoor]:
    door = SqsDoor(visibility_seconds, max_receive_count)
    try:
        yield door
    finally:
        door.close()
