"""S3 and S3-compatible stores (COS through its S3 endpoint, MinIO): one JSON object per event.

The working replacement for Tencent's MPS_SCF_COS template. The key is ``prefix`` (the URL's
path) plus a template (``?key=``, default ``{date}/{type}/{id}.json``) with the placeholders
``date`` (the event's UTC day), ``type``, ``id`` and ``task_id``. ``?addressing=path|virtual``
overrides how the bucket is addressed (COS endpoints are virtual-hosted by default). Writing the same event twice
writes the same key: a repeat replaces itself.
"""

from __future__ import annotations

import re
from datetime import UTC
from string import Formatter
from urllib.parse import unquote, urlsplit

from mps_callback.forward.event import Event
from mps_callback.forward.sinks.aws import AwsClient, AwsTarget, open_client
from mps_callback.forward.sinks.base import DEFAULT_TIMEOUT_SECONDS, ConnectedSink, Delivered, Outcome
from mps_callback.forward.urls import query_parameters

DEFAULT_KEY = "{date}/{type}/{id}.json"
ADDRESSING = frozenset({"path", "virtual"})
#: Endpoints that take only virtual-hosted requests (``bucket.host``): COS's S3 endpoints.
#: Elsewhere botocore's choice stands: path-style with an ``endpoint_url``, virtual-hosted on AWS.
VIRTUAL_HOSTED_ENDPOINTS = (".myqcloud.com", ".tencentcos.cn")
PLACEHOLDERS = frozenset({"date", "type", "id", "task_id"})
#: Characters kept in a key part; anything else (slashes, spaces, control characters) becomes ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class S3Sink(ConnectedSink[AwsClient]):
    kind = "s3"

    def __init__(self, name: str, url: str, secret: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        super().__init__(name, url, secret=secret, timeout=timeout)
        parts = urlsplit(url)
        self.bucket = unquote(parts.netloc.rpartition("@")[2])
        if not self.bucket:
            raise ValueError("the S3 URL must be s3://bucket/prefix?region=... (the bucket is the host)")
        self.prefix = unquote(parts.path).strip("/")
        self.template = query_parameters(url).get("key", DEFAULT_KEY)
        check_template(self.template)
        self._target = AwsTarget.from_url(url)
        self.addressing = query_parameters(url).get("addressing") or default_addressing(self._target.endpoint_url)
        if self.addressing not in ADDRESSING | {"auto"}:
            raise ValueError("`addressing=` must be path or virtual")

    async def _connect(self) -> AwsClient:
        return await open_client("s3", self._target, self.timeout, s3={"addressing_style": self.addressing})

    async def _disconnect(self, connection: AwsClient) -> None:
        await connection.close()

    async def _send(self, connection: AwsClient, event: Event) -> Outcome:
        await connection.client.put_object(
            Bucket=self.bucket,
            Key=self.key(event),
            Body=event.body(),
            ContentType="application/json",
            Metadata={"event-id": event.id, "event-type": event.type},
        )
        return Delivered()

    def key(self, event: Event) -> str:
        """The object key for ``event``: prefix and template, each value made safe for a key part."""
        values = {
            "date": event.timestamp.astimezone(UTC).strftime("%Y-%m-%d"),
            "type": event.type,
            "id": key_part(event.id),
            "task_id": key_part(event.task_id or "none"),
        }
        key = self.template.format_map(values)
        return f"{self.prefix}/{key}" if self.prefix else key


def default_addressing(endpoint_url: str | None) -> str:
    """``virtual`` for endpoints that need it (COS), else ``auto`` (botocore's choice)."""
    host = urlsplit(endpoint_url or "").hostname or ""
    return "virtual" if host.endswith(VIRTUAL_HOSTED_ENDPOINTS) else "auto"


def key_part(value: str) -> str:
    """``value`` as one key segment: MPS task ids hold ``-`` and ``_`` only, but nothing guarantees it."""
    return _UNSAFE.sub("_", value)[:200] or "_"


def check_template(template: str) -> None:
    """A key template names only known placeholders, with no format specs, and one object per event ({id})."""
    try:
        fields = [
            (name, spec, conversion)
            for _text, name, spec, conversion in Formatter().parse(template)
            if name is not None
        ]
    except ValueError as error:
        raise ValueError(f"`key=` template is malformed: {error}") from None
    unknown = sorted({name for name, _spec, _conversion in fields} - PLACEHOLDERS)
    if unknown:
        raise ValueError(f"`key=` template has unknown placeholders {unknown}; known: {sorted(PLACEHOLDERS)}")
    if any(spec or conversion for _name, spec, conversion in fields):
        raise ValueError("`key=` template placeholders take no format spec or conversion")
    if "id" not in {name for name, _spec, _conversion in fields}:
        raise ValueError("`key=` template must contain {id}: one object per event")
    if template.endswith("/"):
        raise ValueError("`key=` template must name an object, not a folder")
