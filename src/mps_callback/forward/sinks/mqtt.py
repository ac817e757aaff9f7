"""MQTT: QoS 1 to ``<topic>/<event type>``, the event id in the MQTT 5 user properties.

QoS 1 means the publish waits for the broker's PUBACK: at least once, like every sink. The
payload is the envelope, which carries the id too, for MQTT 3 consumers.
"""

from __future__ import annotations

import ssl
import uuid
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mps_callback.forward.event import Event
from mps_callback.forward.sinks.base import DEFAULT_TIMEOUT_SECONDS, ConnectedSink, Delivered, Outcome
from mps_callback.forward.urls import query_parameters

DEFAULT_TOPIC = "mps/events"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class MqttSink(ConnectedSink[aiomqtt.Client]):
    kind = "mqtt"

    def __init__(self, name: str, url: str, secret: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        super().__init__(name, url, secret=secret, timeout=timeout)
        parts = urlsplit(url)
        self.topic = query_parameters(url).get("topic", DEFAULT_TOPIC).strip("/")
        if not self.topic or any(character in self.topic for character in "+#"):
            raise ValueError("`topic=` must be a plain MQTT topic (no wildcards)")
        if not parts.hostname:
            raise ValueError("the MQTT URL has no host")
        self._host = parts.hostname
        self._port = parts.port or DEFAULT_PORTS[parts.scheme]
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._tls = parts.scheme == "mqtts"

    async def _connect(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            identifier=f"mps-callback-{self.name}-{uuid.uuid4().hex[:8]}",
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=self.timeout,
            tls_context=ssl.create_default_context() if self._tls else None,
        )
        await client.__aenter__()
        return client

    async def _disconnect(self, connection: aiomqtt.Client) -> None:
        await connection.__aexit__(None, None, None)

    async def _send(self, connection: aiomqtt.Client, event: Event) -> Outcome:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho's constructor has no annotations
        properties.UserProperty = [("event-id", event.id), ("event-type", event.type)]
        properties.ContentType = "application/json"
        await connection.publish(f"{self.topic}/{event.type}", event.body(), qos=1, properties=properties)
        return Delivered()
