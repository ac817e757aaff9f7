"""What the SQS and S3 sinks share: an aiobotocore client from the sink URL.

Credentials come from the URL's user info (``sqs://KEY_ID:SECRET@queue``, percent-encoded)
or, without it, from botocore's usual chain (environment, profile, instance role).
``?region=`` and ``?endpoint_url=`` (COS, MinIO, a local stand-in) are read here.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from mps_callback.forward.urls import query_parameters


@dataclass(frozen=True, slots=True)
class AwsTarget:
    """Where an aiobotocore client connects, from a sink URL."""

    region: str | None
    endpoint_url: str | None
    access_key_id: str | None
    secret_access_key: str | None

    @classmethod
    def from_url(cls, url: str) -> AwsTarget:
        parts = urlsplit(url)
        parameters = query_parameters(url)
        if bool(parts.username) != bool(parts.password):
            raise ValueError("credentials in the URL need both the key id and the secret (KEY_ID:SECRET@)")
        endpoint = parameters.get("endpoint_url") or None
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ValueError("`endpoint_url=` must be an http(s) URL")
        return cls(
            region=parameters.get("region") or None,
            endpoint_url=endpoint,
            access_key_id=unquote(parts.username) if parts.username else None,
            secret_access_key=unquote(parts.password) if parts.password else None,
        )


@dataclass(slots=True)
class AwsClient:
    """An open client and what closes it."""

    client: Any  # aiobotocore clients are generated at run time: no static type
    exits: AsyncExitStack

    async def close(self) -> None:
        await self.exits.aclose()


async def open_client(service: str, target: AwsTarget, seconds: float, **config: Any) -> AwsClient:
    """A client that fails fast: one attempt per call (the forwarder owns retries), ``seconds`` per connect and read."""
    exits = AsyncExitStack()
    client = await exits.enter_async_context(
        get_session().create_client(
            service,
            region_name=target.region,
            endpoint_url=target.endpoint_url,
            aws_access_key_id=target.access_key_id,
            aws_secret_access_key=target.secret_access_key,
            config=AioConfig(connect_timeout=seconds, read_timeout=seconds, retries={"max_attempts": 1}, **config),
        )
    )
    return AwsClient(client, exits)
