"""What every sink is: something that delivers an event and says how it went, never by raising.

The forwarder acts on the `Outcome` alone: mark the delivery done, schedule the next attempt,
or stop the sink. So a sink turns every failure (a broker down, a refused request, a timeout)
into a `Retry` or `Disable` whose reason is safe to store and show: no URL with credentials,
no secret.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, Protocol, TypeVar

from mps_callback.forward.event import Event
from mps_callback.forward.urls import safe_url, scrub, secrets_of

#: How long one delivery may take (connect included) before it counts as a failed attempt.
DEFAULT_TIMEOUT_SECONDS = 10.0
#: A reason is stored with every attempt: long library messages are cut.
MAX_REASON = 300


@dataclass(frozen=True, slots=True)
class Delivered:
    """The sink has the event (2xx, a broker's confirm, an object written)."""

    status: ClassVar[Literal["delivered"]] = "delivered"


@dataclass(frozen=True, slots=True)
class Retry:
    """Not delivered this time; try again later (``after_seconds`` when the receiver said when)."""

    reason: str
    after_seconds: float | None = None
    status: ClassVar[Literal["retry"]] = "retry"


@dataclass(frozen=True, slots=True)
class Disable:
    """The receiver asked never to be sent to again (a webhook's 410 Gone): stop the sink."""

    reason: str
    status: ClassVar[Literal["disable"]] = "disable"


Outcome = Delivered | Retry | Disable


class Sink(Protocol):
    """A configured destination. Connections open on the first delivery and are reused."""

    name: str

    async def deliver(self, event: Event) -> Outcome: ...

    async def close(self) -> None: ...


Connection = TypeVar("Connection")


class ConnectedSink(ABC, Generic[Connection]):
    """A sink that keeps one connection: opened lazily, reused, dropped and reopened when it breaks.

    A failure on a connection that was already open gets one more try on a fresh one in the same
    delivery, because the usual cause is the server having closed an idle connection; a failure
    on a fresh connection is the server's answer, and becomes a `Retry`, as does a timeout
    (trying again at once would hold the delivery twice as long). Only opening and
    dropping the connection take the lock: deliveries share it concurrently.
    """

    kind: ClassVar[str]

    def __init__(self, name: str, url: str, *, secret: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self.name = name
        self.timeout = timeout
        self._shown = safe_url(url)
        self._secrets = secrets_of(url, secret)
        self._connection: Connection | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._shown}>"

    @abstractmethod
    async def _connect(self) -> Connection:
        """Open a connection (and whatever it needs declared) to the server."""

    @abstractmethod
    async def _send(self, connection: Connection, event: Event) -> Outcome:
        """Deliver ``event`` on ``connection``; raise on a transport failure."""

    @abstractmethod
    async def _disconnect(self, connection: Connection) -> None:
        """Close ``connection``; it may already be broken."""

    async def deliver(self, event: Event) -> Outcome:
        """Deliver on the shared connection; deliveries may run concurrently (the clients multiplex)."""
        for last_try in (False, True):
            connection: Connection | None = None
            fresh = True
            try:
                async with asyncio.timeout(self.timeout):
                    connection, fresh = await self._open()
                    return await self._send(connection, event)
            except Exception as error:  # every failure is an outcome for the forwarder, never an exception
                await self._drop(connection)
                if fresh or last_try or isinstance(error, TimeoutError):  # a hung server gets one timeout, not two
                    return Retry(self.reason(error))
        raise AssertionError("unreachable: the last try returns")  # pragma: no cover

    async def _open(self) -> tuple[Connection, bool]:
        """The shared connection, and whether it was opened just now (a failure on it is the server's answer)."""
        async with self._lock:
            if self._connection is None:
                self._connection = await self._connect()
                return self._connection, True
            return self._connection, False

    async def _drop(self, connection: Connection | None) -> None:
        """Forget ``connection`` (if it is still the shared one) and close it, so the next delivery opens a new one."""
        async with self._lock:
            if connection is None or connection is not self._connection:
                return
            self._connection = None
        try:
            async with asyncio.timeout(self.timeout):
                await self._disconnect(connection)
        except Exception:  # noqa: S110 -- the connection is broken already; closing it is a courtesy
            pass

    async def close(self) -> None:
        """Close the connection, if one is open; closing twice, or before any delivery, does nothing."""
        await self._drop(self._connection)

    def reason(self, error: BaseException | str) -> str:
        """A one-line, credential-free reason: the error's type and message, secrets scrubbed."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}".rstrip(": ")
        if isinstance(error, TimeoutError):
            text = f"timed out after {self.timeout:g} s"
        return scrub(" ".join(text.split()), self._secrets)[:MAX_REASON]
