"""One harness per sink kind: a working URL, a consumer on the real server, and what it received.

`received` returns ``(transport id, envelope)`` pairs: the id the kind carries outside the body
(``webhook-id``, AMQP ``message_id``, ``Nats-Msg-Id``, ...) and the parsed envelope. The
Apprise harness has no envelope: it returns the JSON Apprise posted, with no transport id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiomqtt
import boto3
import nats
import orjson
import redis.asyncio as redis

from tests.support.forward import PASSWORD, SECRET, Receiver

WAIT_SECONDS = 10.0
Received = list[tuple[str | None, dict[str, Any]]]


def credentials(userinfo: tuple[str, str] | None) -> str:
    return f"{userinfo[0]}:{userinfo[1]}@" if userinfo else ""


#: The credentials every "server down" URL carries.
DOWN = ("mps", PASSWORD)


async def wait_for(read: Callable[[], Awaitable[Received]], count: int) -> Received:
    """Poll ``read()`` until it has ``count`` items or `WAIT_SECONDS` pass; then a short grace for extras."""
    deadline = time.monotonic() + WAIT_SECONDS
    items: Received = await read()
    while len(items) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        items = await read()
    await asyncio.sleep(0.2)
    return await read()


class Harness:
    kind: str
    server_port: int
    secret: str | None = None
    carries_envelope = True

    def url(self, port: int, userinfo: tuple[str, str] | None = None) -> str:
        raise NotImplementedError

    async def start(self) -> None:
        pass

    async def received(self, count: int) -> Received:
        raise NotImplementedError

    async def stop(self) -> None:
        pass


class WebhookHarness(Harness):
    kind = "webhook"
    secret: str | None = SECRET

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.server_port = receiver.port

    def url(self, port: int, userinfo: tuple[str, str] | None = None) -> str:
        return f"http://{credentials(userinfo)}127.0.0.1:{port}/hooks/mps"

    async def received(self, count: int) -> Received:
        async def read() -> Received:
            return [
                (request.headers.get("webhook-id"), orjson.loads(request.body))
                for request in self.receiver.requests
                if request.verified and request.path == "/hooks/mps"
            ]

        return await wait_for(read, count)


class AppriseHarness(WebhookHarness):
    kind = "apprise"
    secret = None
    carries_envelope = False

    def url(self, port: int, userinfo: tuple[str, str] | None = None) -> str:
        return f"apprise+json://{credentials(userinfo)}127.0.0.1:{port}/apprise"

    async def received(self, count: int) -> Received:
        async def read() -> Received:
            return [(None, orjson.loads(r.body)) for r in self.receiver.requests if r.path == "/apprise"]

        return await wait_for(read, count)


class AmqpHarness(Harness):
    kind = "amqp"
    server_port = 5672

    def __init__(self) -> None:
        self.exchange = f"mps.test.{uuid.uuid4().hex[:8]}"

    def url(self, port: int, userinfo: tuple[str, str] | None = ("guest", "guest")) -> str:
        return f"amqp://{credentials(userinfo)}127.0.0.1:{port}/?exchange={self.exchange}"

    async def start(self) -> None:
        self.connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        self.queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await self.queue.bind(exchange, "#")
        self.messages: list[Any] = []
        self.channel = channel

    async def received(self, count: int) -> Received:
        async def read() -> Received:
            while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
                self.messages.append(message)
            return [(message.message_id, orjson.loads(message.body)) for message in self.messages]

        return await wait_for(read, count)

    async def stop(self) -> None:
        await self.channel.exchange_delete(self.exchange)
        await self.connection.close()


class NatsHarness(Harness):
    kind = "nats"
    server_port = 4222
    jetstream = False

    def __init__(self) -> None:
        self.subject = f"mps.test.{uuid.uuid4().hex[:8]}"
        self.stream = f"MPS_TEST_{uuid.uuid4().hex[:8].upper()}"
        self.messages: list[Any] = []

    def url(self, port: int, userinfo: tuple[str, str] | None = None) -> str:
        return f"nats://{credentials(userinfo)}127.0.0.1:{port}?subject={self.subject}"

    async def start(self) -> None:
        self.client = await nats.connect("nats://127.0.0.1:4222")

        async def collect(message: Any) -> None:
            self.messages.append(message)

        await self.client.subscribe(f"{self.subject}.>", cb=collect)
        if self.jetstream:
            await self.client.jetstream().add_stream(name=self.stream, subjects=[f"{self.subject}.>"])
        await self.client.flush()

    async def received(self, count: int) -> Received:
        async def read() -> Received:
            return [((m.headers or {}).get("Nats-Msg-Id"), orjson.loads(m.data)) for m in self.messages]

        return await wait_for(read, count)

    async def stored(self) -> int:
        info = await self.client.jetstream().stream_info(self.stream)
        return info.state.messages

    async def stop(self) -> None:
        if self.jetstream:
            with contextlib.suppress(Exception):
                await self.client.jetstream().delete_stream(self.stream)
        await self.client.close()


class JetStreamHarness(NatsHarness):
    kind = "nats-jetstream"
    jetstream = True


class RedisHarness(Harness):
    kind = "redis"
    server_port = 6379

    def __init__(self) -> None:
        self.stream = f"mps-test-{uuid.uuid4().hex[:8]}"

    def url(self, port: int, userinfo: tuple[str, str] | None = None) -> str:
        return f"redis://{credentials(userinfo)}127.0.0.1:{port}/0?stream={self.stream}"

    async def start(self) -> None:
        self.client = redis.Redis.from_url("redis://127.0.0.1:6379/0")

    async def received(self, count: int) -> Received:
        async def read() -> Received:
            entries = await self.client.xrange(self.stream) or []
            return [(_text(fields[b"id"]), orjson.loads(fields[b"body"])) for _id, fields in entries if fields]

        return await wait_for(read, count)

    async def stop(self) -> None:
        await self.client.delete(self.stream)
        await self.client.aclose()


class MqttHarness(Harness):
    kind = "mqtt"
    server_port = 1883

    def __init__(self) -> None:
        self.topic = f"mps/test/{uuid.uuid4().hex[:8]}"
        self.messages: list[aiomqtt.Message] = []

    def url(self, port: int, userinfo: tuple[str, str] | None = None) -> str:
        return f"mqtt://{credentials(userinfo)}127.0.0.1:{port}?topic={self.topic}"

    async def start(self) -> None:
        self.client = aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5)
        await self.client.__aenter__()
        await self.client.subscribe(f"{self.topic}/#", qos=1)

        async def collect() -> None:
            async for message in self.client.messages:
                self.messages.append(message)

        self.task = asyncio.create_task(collect())

    async def received(self, count: int) -> Received:
        async def read() -> Received:
            return [(user_property(m, "event-id"), orjson.loads(payload(m))) for m in self.messages]

        return await wait_for(read, count)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        await self.client.__aexit__(None, None, None)


def payload(message: aiomqtt.Message) -> bytes:
    assert isinstance(message.payload, bytes | bytearray), message.payload
    return bytes(message.payload)


def user_property(message: aiomqtt.Message, name: str) -> str | None:
    properties = getattr(message.properties, "UserProperty", None) or []
    return next((value for key, value in properties if key == name), None)


class SqsHarness(Harness):
    kind = "sqs"
    fifo = False

    def __init__(self, moto_port: int) -> None:
        self.server_port = moto_port
        self.queue = f"mps-test-{uuid.uuid4().hex[:8]}" + (".fifo" if self.fifo else "")
        self.client = boto3.client(
            "sqs",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{moto_port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.messages: list[dict[str, Any]] = []

    def url(self, port: int, userinfo: tuple[str, str] | None = ("testing", "testing")) -> str:
        return f"sqs://{credentials(userinfo)}{self.queue}?region=us-east-1&endpoint_url=http://127.0.0.1:{port}"

    async def start(self) -> None:
        attributes = {"FifoQueue": "true"} if self.fifo else {}
        self.queue_url = self.client.create_queue(QueueName=self.queue, Attributes=attributes)["QueueUrl"]

    async def received(self, count: int) -> Received:
        async def read() -> Received:
            answer = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            self.messages += answer.get("Messages", [])
            return [(m["MessageAttributes"]["event_id"]["StringValue"], orjson.loads(m["Body"])) for m in self.messages]

        return await wait_for(read, count)

    async def stop(self) -> None:
        self.client.delete_queue(QueueUrl=self.queue_url)


class SqsFifoHarness(SqsHarness):
    kind = "sqs-fifo"
    fifo = True


class S3Harness(Harness):
    kind = "s3"

    def __init__(self, moto_port: int, key: str = "") -> None:
        self.server_port = moto_port
        self.bucket = f"mps-test-{uuid.uuid4().hex[:8]}"
        self.key = key
        self.client = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{moto_port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def url(self, port: int, userinfo: tuple[str, str] | None = ("testing", "testing")) -> str:
        key = f"&key={self.key}" if self.key else ""
        return (
            f"s3://{credentials(userinfo)}{self.bucket}/mps/archive"
            f"?region=us-east-1&endpoint_url=http://127.0.0.1:{port}{key}"
        )

    async def start(self) -> None:
        self.client.create_bucket(Bucket=self.bucket)

    def keys(self) -> list[str]:
        return [item["Key"] for item in self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])]

    async def received(self, count: int) -> Received:
        async def read() -> Received:
            objects = [self.client.get_object(Bucket=self.bucket, Key=key) for key in self.keys()]
            return [(o["Metadata"].get("event-id"), orjson.loads(o["Body"].read())) for o in objects]

        return await wait_for(read, count)

    async def stop(self) -> None:
        for key in self.keys():
            self.client.delete_object(Bucket=self.bucket, Key=key)
        self.client.delete_bucket(Bucket=self.bucket)


def _text(value: bytes | str) -> str:
    """A Redis field as text (the client hands back bytes unless told to decode)."""
    return value.decode() if isinstance(value, bytes) else value
