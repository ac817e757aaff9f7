"""The behaviour every connected sink inherits: reasons without secrets, one retry on a fresh
connection when a reused one fails, and never an exception out of `deliver`."""

from __future__ import annotations

import asyncio
from typing import Any

from mps_callback.forward.event import Event
from mps_callback.forward.sinks.base import ConnectedSink, Delivered, Outcome, Retry
from mps_callback.forward.urls import secrets_of
from tests.support.forward import make_event

URL = "amqp://mps:Hunter2-secret@broker.example.com:5672/?exchange=x&token=tok-Secret-99"


class Scripted(ConnectedSink[int]):
    """A sink whose connections are numbers and whose sends follow a script of results."""

    kind = "scripted"

    def __init__(self, script: list[Any]) -> None:
        super().__init__("scripted", URL, secret="whsec_the-signing-secret", timeout=0.5)
        self.script = script
        self.opened = 0
        self.closed: list[int] = []

    async def _connect(self) -> int:
        self.opened += 1
        return self.opened

    async def _disconnect(self, connection: int) -> None:
        self.closed.append(connection)

    async def _send(self, connection: int, event: Event) -> Outcome:
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        if step == "hang":
            await asyncio.sleep(10)
        return Delivered()


def run(sink: Scripted, count: int = 1) -> list[Outcome]:
    async def go() -> list[Outcome]:
        return [await sink.deliver(make_event()) for _ in range(count)]

    return asyncio.run(go())


def test_a_reason_never_quotes_the_url_its_password_its_tokens_or_the_secret() -> None:
    sink = Scripted([OSError(f"cannot reach {URL}: Hunter2-secret rejected; whsec_the-signing-secret; tok-Secret-99")])
    [outcome] = run(sink)
    assert isinstance(outcome, Retry)
    for secret in ("Hunter2-secret", "tok-Secret-99", "whsec_the-signing-secret", URL):
        assert secret not in outcome.reason
    assert outcome.reason.startswith("OSError: cannot reach ***")
    assert "Hunter2" not in repr(sink) and repr(sink) == (
        "<Scripted 'scripted' amqp://***@broker.example.com:5672/?exchange=x&token=***>"
    )


def test_a_percent_encoded_password_is_scrubbed_decoded_too() -> None:
    sink = Scripted([OSError("login refused for p@ss/word")])
    sink._secrets = secrets_of("amqp://mps:p%40ss%2Fword@host/")
    [outcome] = run(sink)
    assert isinstance(outcome, Retry) and "p@ss/word" not in outcome.reason


def test_a_failure_on_a_reused_connection_is_tried_once_more_on_a_fresh_one() -> None:
    sink = Scripted(["ok", ConnectionResetError("peer closed"), "ok"])
    assert run(sink, 2) == [Delivered(), Delivered()]
    assert sink.opened == 2 and sink.closed == [1]


def test_a_failure_on_a_fresh_connection_is_a_retry_at_once() -> None:
    sink = Scripted([ConnectionRefusedError("refused"), "ok"])
    [outcome] = run(sink)
    assert outcome == Retry("ConnectionRefusedError: refused")
    assert sink.opened == 1 and sink.closed == [1]
    assert run(sink) == [Delivered()]  # and the next delivery opens a new connection


def test_a_hung_send_is_a_retry_after_the_timeout() -> None:
    sink = Scripted(["hang"])
    assert run(sink) == [Retry("timed out after 0.5 s")]


def test_a_hung_send_on_a_reused_connection_is_one_timeout_not_two() -> None:
    """A server that hangs is not tried again at once on a fresh connection: that would double the wait."""
    sink = Scripted(["ok", "hang", "ok"])
    assert run(sink, 2) == [Delivered(), Retry("timed out after 0.5 s")]
    assert sink.opened == 1 and sink.closed == [1]


def test_any_error_is_a_retry_not_an_exception() -> None:
    sink = Scripted([ValueError("a bug in a library"), KeyError("x")])
    [outcome] = run(sink)
    assert isinstance(outcome, Retry) and outcome.reason == "ValueError: a bug in a library"
