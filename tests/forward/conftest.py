"""Real servers for the sink tests: the local brokers, a webhook receiver, moto for S3 and SQS,
and a TCP proxy that cuts connections. A broker that is not running skips its tests here and
fails them on CI (``CI=true``), as the MariaDB and PostgreSQL tests do. The servers themselves
live in ``tests/support/forward.py``; these are the fixtures that start and stop them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.db import ON_CI
from tests.support.forward import Proxy, Receiver, running_receiver
from tests.support.service import free_port


@pytest.fixture
def proxy_to() -> Iterator[Any]:
    proxies: list[Proxy] = []

    def start(port: int) -> Proxy:
        proxies.append(Proxy(port))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


# ---------------------------------------------------------------- moto: S3 and SQS on 127.0.0.1


@pytest.fixture(scope="session")
def moto_port() -> Iterator[int]:
    """A moto server for the session (``moto[server]``); failing to start it fails on CI, skips here."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        if ON_CI:
            pytest.fail(f"moto[server] missing on CI: {error}")
        pytest.skip(f"moto[server] not installed: {error}")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield port
    server.stop()
