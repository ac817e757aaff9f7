"""What each kind does beyond the shared suite: webhook statuses and signatures, JetStream and
SQS FIFO dedupe, AMQP message properties, S3 keys, and the message Apprise sends to people."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from mps_callback.forward.sinks import Delivered, Disable, Retry, open_sink
from mps_callback.forward.sinks.apprise import message
from mps_callback.forward.sinks.s3 import S3Sink
from mps_callback.forward.sinks.sqs import SqsSink
from mps_callback.forward.sinks.webhook import retry_after
from tests.support.consumers import (
    AmqpHarness,
    JetStreamHarness,
    MqttHarness,
    NatsHarness,
    RedisHarness,
    S3Harness,
    SqsFifoHarness,
    user_property,
)
from tests.support.forward import OTHER_SECRET, SECRET, Receiver, make_event, need

pytestmark = pytest.mark.brokers  # every test here talks to a real broker, moto or receiver

# ---------------------------------------------------------------- webhook


def deliver_once(url: str, secret: str | None, event: Any) -> Any:
    async def go() -> Any:
        sink = open_sink("app", url, secret)
        try:
            return await sink.deliver(event)
        finally:
            await sink.close()

    return asyncio.run(go())


def test_webhook_headers_and_signature_verify_with_the_receivers_secret(receiver: Receiver) -> None:
    event = make_event()
    assert deliver_once(receiver.url(), SECRET, event) == Delivered()
    [request] = receiver.requests
    assert request.verified
    assert request.headers["webhook-id"] == event.id
    assert abs(int(request.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    assert orjson.loads(request.body) == event.envelope()


def test_webhook_signature_fails_with_another_secret(receiver: Receiver) -> None:
    receiver.secret = OTHER_SECRET
    assert deliver_once(receiver.url(), SECRET, make_event()) == Delivered()
    [request] = receiver.requests
    assert not request.verified


def test_webhook_410_disables_the_sink(receiver: Receiver) -> None:
    receiver.answers.append((410, {}))
    outcome = deliver_once(receiver.url(), SECRET, make_event())
    assert isinstance(outcome, Disable) and "410" in outcome.reason


@pytest.mark.parametrize("status", [429, 503])
def test_webhook_retry_after_seconds_is_honoured(receiver: Receiver, status: int) -> None:
    receiver.answers.append((status, {"Retry-After": "7"}))
    assert deliver_once(receiver.url(), SECRET, make_event()) == Retry(
        f"HTTP {status} {'Too Many Requests' if status == 429 else 'Service Unavailable'}", 7.0
    )


def test_webhook_retry_after_as_an_http_date_far_ahead_is_a_day(receiver: Receiver) -> None:
    receiver.answers.append((503, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}))
    outcome = deliver_once(receiver.url(), SECRET, make_event())
    assert isinstance(outcome, Retry) and outcome.after_seconds == 86400.0


def test_webhook_retry_after_past_any_date_is_a_day(receiver: Receiver) -> None:
    """A receiver cannot push a delivery past the dates a database stores (or stall it for ever)."""
    receiver.answers.append((503, {"Retry-After": "999999999999"}))
    assert deliver_once(receiver.url(), SECRET, make_event()) == Retry("HTTP 503 Service Unavailable", 86400.0)


def test_webhook_reads_little_of_an_endless_answer() -> None:
    """A receiver answering 200 with a body that never ends: delivered on its status, the body not read to the end
    (reading it would hold the forwarder's memory and the delivery until the timeout)."""
    sent: list[int] = []
    with endless_answer(sent) as port:
        outcome = deliver_once(f"http://127.0.0.1:{port}/hooks", SECRET, make_event())
    assert outcome == Delivered()
    assert sent[0] < 256, f"{sent[0]} chunks of 64 KiB were taken"  # socket buffers hold a few; reading all: 16,384


@contextlib.contextmanager
def endless_answer(sent: list[int]) -> Iterator[int]:
    """A server that answers a request ``200`` and then chunk after chunk of 64 KiB until the client leaves (or
    1 GiB); ``sent`` gets how many chunks it took."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
                count = 0
                with contextlib.suppress(OSError):
                    for count in range(1, 16 * 1024 + 1):  # noqa: B007 -- the count is the result
                        connection.sendall(chunk)
                sent.append(count)
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        listener.close()


@pytest.mark.parametrize("status", [400, 401, 404, 500, 502])
def test_webhook_other_errors_retry_with_the_status_and_no_credentials(receiver: Receiver, status: int) -> None:
    receiver.answers.append((status, {"Retry-After": "7"}))
    outcome = deliver_once(receiver.url(userinfo="hook:hunter22@"), SECRET, make_event())
    assert isinstance(outcome, Retry) and outcome.after_seconds is None
    assert str(status) in outcome.reason and "hunter22" not in outcome.reason
    assert receiver.requests[0].headers["authorization"].startswith("Basic ")  # user info is sent as basic auth


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert retry_after("7", now) == 7.0
    assert retry_after("Tue, 24 Nov 2026 12:00:30 GMT", now) == 30.0
    assert retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now) == 0.0
    assert retry_after("soon", now) is None
    assert retry_after(None, now) is None


# ---------------------------------------------------------------- NATS


def nats_twice(harness: NatsHarness) -> tuple[Any, int | None]:
    event = make_event()

    async def go() -> tuple[Any, int | None]:
        await harness.start()
        try:
            sink = open_sink("bus", harness.url(4222), None)
            try:
                assert [await sink.deliver(event), await sink.deliver(event)] == [Delivered(), Delivered()]
            finally:
                await sink.close()
            received = await harness.received(2)
            return received, await harness.stored() if harness.jetstream else None
        finally:
            await harness.stop()

    received, stored = asyncio.run(go())
    assert all(msg_id == event.id for msg_id, _ in received)
    return received, stored


def test_nats_jetstream_stores_a_repeated_event_once() -> None:
    need("nats")
    _received, stored = nats_twice(JetStreamHarness())
    assert stored == 1


def test_nats_without_a_stream_publishes_each_time() -> None:
    need("nats")
    received, _stored = nats_twice(NatsHarness())
    assert len(received) == 2


# ---------------------------------------------------------------- AMQP


def test_amqp_message_is_persistent_json_routed_by_event_type() -> None:
    need("amqp")
    harness = AmqpHarness()
    event = make_event("task.failed")

    async def go() -> Any:
        await harness.start()
        try:
            sink = open_sink("rabbit", harness.url(5672), None)
            try:
                assert await sink.deliver(event) == Delivered()
            finally:
                await sink.close()
            await harness.received(1)
            return harness.messages[0]
        finally:
            await harness.stop()

    message_ = asyncio.run(go())
    assert message_.routing_key == "task.failed"
    assert message_.delivery_mode == 2
    assert message_.content_type == "application/json"
    assert message_.message_id == event.id


def test_amqp_unroutable_event_is_a_retry_not_a_silent_drop() -> None:
    need("amqp")
    harness = AmqpHarness()  # not started: no queue is bound to its exchange

    async def go() -> Any:
        sink = open_sink("rabbit", harness.url(5672), None)
        try:
            return await sink.deliver(make_event())
        finally:
            await sink.close()
            await harness.start()  # to delete the exchange the sink declared
            await harness.stop()

    outcome = asyncio.run(go())
    assert isinstance(outcome, Retry), outcome
    assert "guest" not in outcome.reason


# ---------------------------------------------------------------- MQTT and Redis


def test_mqtt_publishes_at_qos_1_to_topic_and_event_type() -> None:
    need("mqtt")
    harness = MqttHarness()
    event = make_event("task.updated")

    async def go() -> Any:
        await harness.start()
        try:
            sink = open_sink("mqtt", harness.url(1883), None)
            try:
                assert await sink.deliver(event) == Delivered()
            finally:
                await sink.close()
            await harness.received(1)
            return harness.messages[0]
        finally:
            await harness.stop()

    received = asyncio.run(go())
    assert received.qos == 1
    assert str(received.topic) == f"{harness.topic}/task.updated"
    assert user_property(received, "event-type") == "task.updated"


def test_redis_entry_fields() -> None:
    need("redis")
    harness = RedisHarness()
    event = make_event()

    async def go() -> Any:
        await harness.start()
        try:
            sink = open_sink("redis", harness.url(6379), None)
            try:
                assert await sink.deliver(event) == Delivered()
            finally:
                await sink.close()
            return await harness.client.xrange(harness.stream)
        finally:
            await harness.stop()

    [(_entry_id, fields)] = asyncio.run(go())
    assert fields[b"id"] == event.id.encode() and fields[b"type"] == b"task.finished"
    assert fields[b"task_id"] == b"2600011633-WorkflowTask-abc123"
    assert orjson.loads(fields[b"body"]) == event.envelope()


# ---------------------------------------------------------------- SQS


def test_sqs_fifo_drops_a_repeat_and_groups_by_task(moto_port: int) -> None:
    harness = SqsFifoHarness(moto_port)
    event = make_event()

    async def go() -> Any:
        await harness.start()
        try:
            sink = open_sink("queue", harness.url(moto_port), None)
            try:
                assert [await sink.deliver(event), await sink.deliver(event)] == [Delivered(), Delivered()]
            finally:
                await sink.close()
            received = await harness.received(2)
            attributes = harness.client.get_queue_attributes(
                QueueUrl=harness.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            )
            return received, attributes
        finally:
            await harness.stop()

    received, _attributes = asyncio.run(go())
    assert [msg_id for msg_id, _ in received] == [event.id]
    assert harness.messages[0]["Attributes"]["MessageGroupId"] == event.task_id


# ---------------------------------------------------------------- S3


def s3_keys(moto_port: int, template: str, events: list[Any]) -> list[str]:
    harness = S3Harness(moto_port, template)

    async def go() -> list[str]:
        await harness.start()
        try:
            sink = open_sink("archive", harness.url(moto_port), None)
            try:
                for event in events:
                    assert await sink.deliver(event) == Delivered()
            finally:
                await sink.close()
            await harness.received(len(events))
            return harness.keys()
        finally:
            await harness.stop()

    return asyncio.run(go())


def test_s3_default_key_is_date_type_id(moto_port: int) -> None:
    event = make_event()
    assert s3_keys(moto_port, "", [event]) == [f"mps/archive/2026-11-24/task.finished/{event.id}.json"]


def test_s3_key_template_sanitises_task_ids(moto_port: int) -> None:
    event = make_event(task_id="../weird task/ id")
    [key] = s3_keys(moto_port, "{task_id}/{date}-{type}-{id}.json", [event])
    assert key == f"mps/archive/.._weird_task__id/2026-11-24-task.finished-{event.id}.json"


def test_s3_key_without_a_server() -> None:
    sink = S3Sink("archive", "s3://bucket?key={type}/{task_id}/{id}", None)
    event = make_event(task_id=None)
    assert sink.key(event) == f"task.finished/none/{event.id}"
    one_am_in_beijing = replace(event, timestamp=datetime(2026, 11, 25, 1, 0, tzinfo=timezone(timedelta(hours=8))))
    assert S3Sink("archive", "s3://bucket", None).key(one_am_in_beijing).startswith("2026-11-24/")


def test_s3_addressing_is_virtual_for_cos_and_botocores_choice_elsewhere() -> None:
    cos = "s3://bucket-1250000000?region=ap-guangzhou&endpoint_url=https://cos.ap-guangzhou.myqcloud.com"
    assert S3Sink("cos", cos, None).addressing == "virtual"
    assert S3Sink("minio", "s3://b?endpoint_url=http://127.0.0.1:9000", None).addressing == "auto"
    assert S3Sink("aws", "s3://b?region=us-east-1", None).addressing == "auto"
    assert S3Sink("forced", cos + "&addressing=path", None).addressing == "path"
    with pytest.raises(ValueError, match="addressing"):
        S3Sink("bad", "s3://b?addressing=sideways", None)


# ---------------------------------------------------------------- Apprise


FAILED_TASK = {
    "task_id": "2600011633-WorkflowTask-f00",
    "event_type": "WorkflowTask",
    "status": "FINISH",
    "failed": True,
    "err_code": 0,
    "message": "",
    "subtasks": [
        {"id": "1", "key": "SmartSubtitlesTask", "type": "SmartSubtitlesTask", "status": "FAIL",
         "err_code": 70000, "err_code_ext": "FailedOperation.AsrFailed", "message": "no speech found"},
        {"id": "2", "key": "TranscodeTask", "type": "Transcode", "status": "SUCCESS", "err_code": 0, "message": ""},
    ],
    "outputs": [
        {"subtask": "Transcode", "field": "OutputObjectPath", "url": "https://cdn.example.com/out/video.mp4"},
        {"subtask": "Transcode", "field": "Cover", "url": None},
    ],
}  # fmt: skip


def failed_event() -> Any:
    data = {name: value for name, value in FAILED_TASK.items() if name != "task_id"}
    return make_event("task.failed", task_id=str(FAILED_TASK["task_id"]), **data)


def test_apprise_message_for_a_failed_task() -> None:
    event = failed_event()
    title, body = message(event)
    assert "2600011633-WorkflowTask-f00" in title and "failed" in title
    assert "SmartSubtitlesTask: FailedOperation.AsrFailed no speech found" in body
    assert "Transcode: https://cdn.example.com/out/video.mp4" in body
    assert "TranscodeTask" not in body.split("Failed subtasks:")[1].split("Outputs:")[0]


def test_apprise_message_for_a_notification_is_one_line() -> None:
    event = make_event(
        "notification.received", event_type="WorkflowTask", signature="valid", task_id="2600011633-WorkflowTask-n1"
    )
    title, body = message(event)
    assert title == "MPS notification received"
    assert body == "WorkflowTask for task 2600011633-WorkflowTask-n1 (valid)"


def test_apprise_delivers_the_message_to_its_service(receiver: Receiver) -> None:
    event = failed_event()
    assert deliver_once(f"apprise+json://127.0.0.1:{receiver.port}/apprise", None, event) == Delivered()
    [request] = receiver.requests
    posted = orjson.loads(request.body)
    assert "2600011633-WorkflowTask-f00" in posted["title"]
    assert "no speech found" in posted["message"] and posted["type"] == "failure"


def test_apprise_service_refusing_is_a_retry(receiver: Receiver) -> None:
    receiver.answers.append((500, {}))
    outcome = deliver_once(f"apprise+json://user:s3cr3tpass@127.0.0.1:{receiver.port}/apprise", None, make_event())
    assert isinstance(outcome, Retry) and "s3cr3tpass" not in outcome.reason


def test_apprise_message_for_a_finished_task_with_many_outputs() -> None:
    outputs = [{"subtask": "Transcode", "url": f"https://cdn.example.com/out/{n}.mp4"} for n in range(12)]
    event = make_event("task.finished", outputs=outputs, err_code=0, message="")
    title, body = message(event)
    assert title == "MPS task 2600011633-WorkflowTask-abc123: FINISH"
    assert body.splitlines()[0] == "WorkflowTask 2600011633-WorkflowTask-abc123: FINISH"
    assert "Failed subtasks" not in body and "Error" not in body
    assert "out/9.mp4" in body and "out/10.mp4" not in body and body.endswith("- and 2 more")


def test_apprise_message_for_a_success_names_no_error_and_each_link_once() -> None:
    """MPS reports success as ErrCode 0 with Message SUCCESS, and names one subtitle file in several fields."""
    vtt = "https://cdn.example.com/out/path-0.vtt"
    outputs = [{"subtask": "SmartSubtitlesTask", "url": vtt}, {"subtask": "SmartSubtitlesTask", "url": vtt}]
    _, body = message(make_event("task.finished", outputs=outputs, err_code=0, message="SUCCESS"))
    assert "Error" not in body and body.count(vtt) == 1


def test_apprise_message_for_an_update_that_failed_says_so() -> None:
    event = make_event("task.updated", failed=True, err_code=30010, message="source file not found")
    title, body = message(event)
    assert title.endswith(": failed")
    assert "Error 30010: source file not found" in body


def test_sqs_queue_name_keeps_its_case_and_fifo_is_read_from_it() -> None:
    sink = SqsSink("queue", "sqs://AK:SECRET@MpsEvents.fifo?region=ap-guangzhou", None)
    assert (sink.queue, sink.fifo) == ("MpsEvents.fifo", True)
    assert not SqsSink("queue", "sqs://mps-events", None).fifo
