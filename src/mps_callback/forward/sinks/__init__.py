"""The sinks: one module per kind, chosen by the URL's scheme through one table.

A new kind is a module with a class taking ``(name, url, secret)`` and a row in `SINKS`.
Building a sink only reads its URL (a bad one raises ``ValueError`` with a reason that quotes
no credential); connections open on the first delivery.
"""

from __future__ import annotations

from typing import Protocol

from mps_callback.forward.sinks.amqp import AmqpSink
from mps_callback.forward.sinks.apprise import PREFIX as APPRISE_PREFIX
from mps_callback.forward.sinks.apprise import AppriseSink
from mps_callback.forward.sinks.base import Delivered, Disable, Outcome, Retry, Sink
from mps_callback.forward.sinks.mqtt import MqttSink
from mps_callback.forward.sinks.nats import NatsSink
from mps_callback.forward.sinks.redis import RedisSink
from mps_callback.forward.sinks.s3 import S3Sink
from mps_callback.forward.sinks.sqs import SqsSink
from mps_callback.forward.sinks.webhook import WebhookSink

__all__ = ["SINKS", "Delivered", "Disable", "Outcome", "Retry", "Sink", "open_sink", "scheme_of"]


class SinkFactory(Protocol):
    def __call__(self, name: str, url: str, secret: str | None) -> Sink: ...


#: scheme -> the sink that delivers there; ``apprise+`` stands for every ``apprise+<service>`` scheme.
SINKS: dict[str, SinkFactory] = {
    "http": WebhookSink,
    "https": WebhookSink,
    "amqp": AmqpSink,
    "amqps": AmqpSink,
    "nats": NatsSink,
    "redis": RedisSink,
    "rediss": RedisSink,
    "mqtt": MqttSink,
    "mqtts": MqttSink,
    "sqs": SqsSink,
    "s3": S3Sink,
    APPRISE_PREFIX: AppriseSink,
}

#: Schemes whose sinks sign with ``secret``; any other sink given one is a configuration mistake.
SIGNED = frozenset({"http", "https"})


def scheme_of(url: str) -> str:
    """The `SINKS` key for ``url``: its scheme, or ``apprise+`` for ``apprise+<service>://...``."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    head, plus, _service = scheme.partition("+")
    return head + plus


def open_sink(name: str, url: str, secret: str | None = None) -> Sink:
    """The sink for ``url``; ``ValueError`` (credential-free) when the scheme or URL is wrong."""
    scheme = scheme_of(url)
    factory = SINKS.get(scheme)
    if factory is None:
        known = ", ".join(key if key.endswith("+") else f"{key}://" for key in SINKS)
        raise ValueError(f"unknown scheme {scheme or '(none)'!r} in `url`; known: {known}")
    if secret and scheme not in SIGNED:
        raise ValueError("`secret` is only used by http/https webhooks; remove it")
    return factory(name, url, secret)
