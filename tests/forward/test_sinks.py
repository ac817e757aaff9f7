"""The shared sink suite: every kind, against its real server, passes the same cases.

A sink delivers an event with its id outside and inside the body, keeps two events apart,
survives its connection being cut between deliveries, turns a server that is down into a
`Retry` whose reason (and the sink's repr, and the logs) never show a credential, and closes
as often as it is asked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mps_callback.forward.sinks import Delivered, Retry, Sink, open_sink
from tests.support.consumers import (
    DOWN,
    AmqpHarness,
    AppriseHarness,
    Harness,
    JetStreamHarness,
    MqttHarness,
    NatsHarness,
    RedisHarness,
    S3Harness,
    SqsFifoHarness,
    SqsHarness,
    WebhookHarness,
)
from tests.support.forward import PASSWORD, closed_port, make_event, need

pytestmark = pytest.mark.brokers  # every test here talks to a real broker, moto or receiver

#: kind -> (how to build its harness from the pytest request, the broker it needs or None)
HARNESSES: dict[str, tuple[Callable[[pytest.FixtureRequest], Harness], str | None]] = {
    "webhook": (lambda request: WebhookHarness(request.getfixturevalue("receiver")), None),
    "apprise": (lambda request: AppriseHarness(request.getfixturevalue("receiver")), None),
    "amqp": (lambda request: AmqpHarness(), "amqp"),
    "nats": (lambda request: NatsHarness(), "nats"),
    "nats-jetstream": (lambda request: JetStreamHarness(), "nats"),
    "redis": (lambda request: RedisHarness(), "redis"),
    "mqtt": (lambda request: MqttHarness(), "mqtt"),
    "sqs": (lambda request: SqsHarness(request.getfixturevalue("moto_port")), None),
    "sqs-fifo": (lambda request: SqsFifoHarness(request.getfixturevalue("moto_port")), None),
    "s3": (lambda request: S3Harness(request.getfixturevalue("moto_port")), None),
}


@pytest.fixture(params=list(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Harness:
    build, broker = HARNESSES[request.param]
    if broker:
        need(broker)
    return build(request)


def scenario(harness: Harness, body: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``body`` between the harness's start and stop, in one event loop."""

    async def go() -> Any:
        await harness.start()
        try:
            return await body()
        finally:
            await harness.stop()

    return asyncio.run(go())


def sink_for(harness: Harness, port: int | None = None) -> Sink:
    return open_sink(f"test-{harness.kind}", harness.url(port or harness.server_port), harness.secret)


def assert_received(harness: Harness, received: list[tuple[str | None, dict[str, Any]]], events: list[Any]) -> None:
    """Each event arrived once, its id outside the body equal to the envelope's (in any order: S3 lists by key)."""
    assert len(received) == len(events), received
    if harness.carries_envelope:
        assert dict(received) == {event.id: event.envelope() for event in events}
    else:
        texts = sorted(payload["title"] + "\n" + payload["message"] for _id, payload in received)
        assert all(any(str(event.task_id) in text for text in texts) for event in events), texts


def test_an_event_arrives_with_its_id_and_envelope(harness: Harness) -> None:
    event = make_event()

    async def body() -> Any:
        sink = sink_for(harness)
        try:
            assert await sink.deliver(event) == Delivered()
        finally:
            await sink.close()
        return await harness.received(1)

    assert_received(harness, scenario(harness, body), [event])


def test_two_events_keep_their_ids(harness: Harness) -> None:
    events = [make_event("task.updated"), make_event("task.failed", task_id="2600011633-WorkflowTask-def456")]

    async def body() -> Any:
        sink = sink_for(harness)
        try:
            assert [await sink.deliver(event) for event in events] == [Delivered(), Delivered()]
        finally:
            await sink.close()
        return await harness.received(2)

    assert_received(harness, scenario(harness, body), events)


def test_a_cut_connection_is_reopened_on_the_next_delivery(harness: Harness, proxy_to: Any) -> None:
    proxy = proxy_to(harness.server_port)
    events = [make_event(), make_event()]

    async def body() -> Any:
        sink = sink_for(harness, proxy.port)
        try:
            assert await sink.deliver(events[0]) == Delivered()
            before = proxy.accepted
            proxy.cut()
            await asyncio.sleep(0.2)
            assert await sink.deliver(events[1]) == Delivered()
            assert proxy.accepted > before, "the second delivery did not go over a new connection"
        finally:
            await sink.close()
        return await harness.received(2)

    assert_received(harness, scenario(harness, body), events)


def test_a_server_away_then_back_is_retried_then_delivered(harness: Harness, proxy_to: Any) -> None:
    proxy = proxy_to(harness.server_port)
    events = [make_event(), make_event()]

    async def body() -> Any:
        sink = sink_for(harness, proxy.port)
        try:
            assert await sink.deliver(events[0]) == Delivered()
            proxy.down()
            await asyncio.sleep(0.2)  # the client sees its connection end (else it waits out the timeout: 10 s)
            outcome = await sink.deliver(events[1])
            assert isinstance(outcome, Retry), outcome
            proxy.up()
            assert await sink.deliver(events[1]) == Delivered()
        finally:
            await sink.close()
        return await harness.received(2)

    assert_received(harness, scenario(harness, body), events)


def test_a_server_that_is_down_is_a_retry_that_shows_no_credential(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = harness.url(closed_port(), DOWN)
    assert PASSWORD in url

    async def body() -> Any:
        sink = open_sink(f"test-{harness.kind}", url, harness.secret)
        try:
            outcome = await sink.deliver(make_event())
            again = await sink.deliver(make_event())
        finally:
            await sink.close()
        return sink, outcome, again

    sink, outcome, again = asyncio.run(body())
    assert isinstance(outcome, Retry) and isinstance(again, Retry)
    assert outcome.reason
    for shown in (outcome.reason, again.reason, repr(sink), caplog.text):
        assert PASSWORD not in shown
    assert "***" in repr(sink)


def test_close_is_idempotent_and_a_closed_sink_opens_again(harness: Harness) -> None:
    events = [make_event(), make_event()]

    async def body() -> Any:
        sink = sink_for(harness)
        await sink.close()  # never opened
        assert await sink.deliver(events[0]) == Delivered()
        await sink.close()
        await sink.close()
        assert await sink.deliver(events[1]) == Delivered()
        await sink.close()
        return await harness.received(2)

    assert_received(harness, scenario(harness, body), events)


def test_concurrent_deliveries_share_one_connection(harness: Harness, proxy_to: Any) -> None:
    proxy = proxy_to(harness.server_port)
    events = [make_event() for _ in range(5)]

    async def body() -> Any:
        sink = sink_for(harness, proxy.port)
        try:
            outcomes = await asyncio.gather(*(sink.deliver(event) for event in events))
        finally:
            await sink.close()
        assert outcomes == [Delivered()] * len(events)
        return await harness.received(len(events))

    assert_received(harness, scenario(harness, body), events)
    if harness.kind in ("amqp", "nats", "nats-jetstream", "mqtt"):  # one multiplexed connection; the others pool
        assert proxy.accepted == 1
