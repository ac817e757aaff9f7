"""Redis Streams: XADD to ``?stream=``, one entry per event, read by consumer groups (XREADGROUP).

The entry's fields are the event id (for the consumer's dedupe), its type, and the envelope as
JSON in ``body``. ``?maxlen=`` caps the stream (approximately, as Redis trims cheaply).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis

from mps_callback.forward.event import Event
from mps_callback.forward.sinks.base import DEFAULT_TIMEOUT_SECONDS, ConnectedSink, Delivered, Outcome
from mps_callback.forward.urls import query_parameters, without_query

DEFAULT_STREAM = "mps-events"


class RedisSink(ConnectedSink["redis.Redis"]):
    kind = "redis"

    def __init__(self, name: str, url: str, secret: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        super().__init__(name, url, secret=secret, timeout=timeout)
        parameters = query_parameters(url)
        self.stream = parameters.get("stream", DEFAULT_STREAM)
        if not self.stream:
            raise ValueError("`stream=` is empty")
        maxlen = parameters.get("maxlen", "")
        if maxlen and not maxlen.isdigit():
            raise ValueError("`maxlen=` must be a whole number")
        self.maxlen = int(maxlen) if maxlen else None
        self._url = without_query(url, "stream", "maxlen")

    async def _connect(self) -> redis.Redis:
        client: redis.Redis = redis.Redis.from_url(
            self._url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
        )
        await client.ping()
        return client

    async def _disconnect(self, connection: redis.Redis) -> None:
        await connection.aclose()

    async def _send(self, connection: redis.Redis, event: Event) -> Outcome:
        fields: dict[Any, Any] = {"id": event.id, "type": event.type, "body": event.body()}
        if event.task_id is not None:
            fields["task_id"] = event.task_id
        await connection.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
        return Delivered()
