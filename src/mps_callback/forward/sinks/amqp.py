"""RabbitMQ (AMQP 0-9-1): persistent messages on a durable topic exchange, routed by event type.

Consumers bind a queue with a pattern (``task.*``, ``#``). The publish waits for the broker's
confirm; a nack, or a message no queue is bound to take (returned, ``mandatory``), is a `Retry`,
so an event is never dropped silently by a topic nobody listens to yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.connection import make_url

from mps_callback.forward.event import Event
from mps_callback.forward.sinks.base import DEFAULT_TIMEOUT_SECONDS, ConnectedSink, Delivered, Outcome
from mps_callback.forward.urls import query_parameters, without_query

DEFAULT_EXCHANGE = "mps.events"


@dataclass(slots=True)
class Publisher:
    connection: AbstractRobustConnection
    channel: AbstractChannel
    exchange: AbstractExchange


class AmqpSink(ConnectedSink[Publisher]):
    kind = "amqp"

    def __init__(self, name: str, url: str, secret: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        super().__init__(name, url, secret=secret, timeout=timeout)
        self.exchange = query_parameters(url).get("exchange", DEFAULT_EXCHANGE)
        if not self.exchange:
            raise ValueError("`exchange=` is empty")
        self._url = without_query(url, "exchange")

    async def _connect(self) -> Publisher:
        # connect_robust, unrolled: a first connect that fails leaves an object that must still be closed.
        connection = aio_pika.RobustConnection(make_url(self._url))
        try:
            await connection.connect(timeout=self.timeout)
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        except BaseException:
            await connection.close()
            raise
        return Publisher(connection, channel, exchange)

    async def _disconnect(self, connection: Publisher) -> None:
        await connection.connection.close()

    async def _send(self, connection: Publisher, event: Event) -> Outcome:
        message = aio_pika.Message(
            event.body(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.id,
            type=event.type,
            timestamp=event.timestamp,
            headers={"sequence": event.sequence, "task_id": event.task_id or ""},
        )
        # Raises DeliveryError on a nack and PublishError on a return: the base turns both into Retry.
        await connection.exchange.publish(message, routing_key=event.type, mandatory=True, timeout=self.timeout)
        return Delivered()
