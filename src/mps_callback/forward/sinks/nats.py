"""NATS: ``<subject>.<event type>``, through JetStream when a stream takes the subject.

With a stream, the publish waits for the stream's ack and carries ``Nats-Msg-Id`` (the event
id), so a repeat within the stream's duplicate window is stored once. Without one, a core
publish and a flush: NATS itself keeps nothing for a subscriber that is not there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError, NoServersError
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError, ServiceUnavailableError

from mps_callback.forward.event import Event
from mps_callback.forward.sinks.base import DEFAULT_TIMEOUT_SECONDS, ConnectedSink, Delivered, Outcome
from mps_callback.forward.urls import query_parameters, without_query

DEFAULT_SUBJECT = "mps.events"


@dataclass(slots=True)
class Publisher:
    client: Client
    jetstream: JetStreamContext
    streams: dict[str, bool]  # subject -> whether a JetStream stream takes it, asked once per connection


class NatsSink(ConnectedSink[Publisher]):
    kind = "nats"

    def __init__(self, name: str, url: str, secret: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        super().__init__(name, url, secret=secret, timeout=timeout)
        self.subject = query_parameters(url).get("subject", DEFAULT_SUBJECT).strip(".")
        if not self.subject or any(character in self.subject for character in " *>"):
            raise ValueError("`subject=` must be a plain NATS subject (no spaces or wildcards)")
        self._url = without_query(url, "subject")

    async def _connect(self) -> Publisher:
        # No background reconnects: a broken connection is dropped and reopened on the next delivery,
        # so a delivery never waits on the client's own reconnect loop (60 tries, 2 s apart, by default).
        errors: list[Exception] = []

        async def remember(error: Exception) -> None:
            errors.append(error)

        try:
            client = await nats.connect(
                self._url,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                connect_timeout=max(1, int(self.timeout)),
                error_cb=remember,
                name="mps-callback",
            )
        except NoServersError:
            raise (errors[-1] if errors else ConnectionError("no NATS server answered")) from None
        return Publisher(client, client.jetstream(timeout=self.timeout), {})

    async def _disconnect(self, connection: Publisher) -> None:
        await connection.client.close()

    async def _send(self, connection: Publisher, event: Event) -> Outcome:
        subject = f"{self.subject}.{event.type}"
        if connection.client.is_closed or not connection.client.is_connected:
            raise ConnectionError("the NATS connection is closed")
        if await self._in_stream(connection, subject):
            await connection.jetstream.publish(subject, event.body(), headers={"Nats-Msg-Id": event.id})
        else:
            await connection.client.publish(subject, event.body(), headers={"Nats-Msg-Id": event.id})
            # nats-py writes flush()'s PING straight to the socket, ahead of publishes still in its buffer,
            # so the PONG could come back before the server has the event: let the buffer go out first.
            while connection.client.pending_data_size:  # noqa: ASYNC110 -- the client offers no event to wait on
                await asyncio.sleep(0)
            await connection.client.flush(timeout=max(1, int(self.timeout)))
        return Delivered()

    async def _in_stream(self, connection: Publisher, subject: str) -> bool:
        if subject not in connection.streams:
            try:
                await connection.jetstream.find_stream_name_by_subject(subject)
                connection.streams[subject] = True
            except (NotFoundError, ServiceUnavailableError, NoRespondersError):  # no stream, or no JetStream
                connection.streams[subject] = False
        return connection.streams[subject]
