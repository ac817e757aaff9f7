"""The HTTP contract on each backend: what MPS and attackers see.

The app runs in this process (tests/support/service.py); what needs a real process (SIGTERM,
uvicorn's header limits) starts ``serve``. Signature and URL-token refusals are in
test_door_security.py, for every door at once."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from mps_callback.send import stamp
from mps_callback.store.tables import notifications
from tests.support.bodies import FIXTURES, SECRET_ID, SECRET_KEY, fixture_files, load_fixture
from tests.support.checks import assert_no_secret, wait_until
from tests.support.db import allow_inserts, count, query, refuse_inserts
from tests.support.service import InProcessService, Service, start_service

KEYS = "old-key,new-key"
ALL_FIXTURES = [
    p.relative_to(FIXTURES) for p in fixture_files("vod") + fixture_files("live") + fixture_files("examples")
]


@pytest.fixture(scope="module")
def service(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessService]:
    with InProcessService(module_database_url, tmp_path_factory.mktemp("service"), notify_keys=KEYS) as running:
        yield running


def row_count(service: InProcessService) -> int:
    return count(service.database_url)


def stored(service: InProcessService | Service, notification_id: int) -> sa.Row[Any]:
    return query(service.database_url, sa.select(notifications).where(notifications.c.id == notification_id))[0]


@pytest.mark.parametrize("relative", ALL_FIXTURES, ids=str)
def test_each_signed_notification_is_stored_once(service: InProcessService, relative: Path):
    body = load_fixture(relative)
    first = service.post(stamp(body, "new-key"))
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["code"] == 0 and answer["message"] == "ok"
    retry = service.post(stamp(body, "old-key", now=time.time() + 5))  # MPS retrying: fresh Timestamp and Sign
    assert retry.status_code == 200
    assert retry.json() == {**answer, "duplicate": True}
    row = stored(service, answer["notification_id"])
    assert row.signature == "verified" and row.channel == "http" and row.wrapper == "none"
    assert row.kind == ("live" if "NotificationType" in body else "vod")
    assert row.event_type == body.get("EventType") and row.notification_type == body.get("NotificationType")
    assert row.session_context == body.get("SessionContext") or body.get("SessionContext") in (None, "")
    same = query(service.database_url, sa.select(sa.func.count()).where(notifications.c.dedupe_key == row.dedupe_key))
    assert same[0][0] == 1
    assert row.body["Sign"] == "[redacted]" and "Timestamp" in row.body


def test_the_legacy_path_takes_notifications_too(service: InProcessService):
    body = stamp({"NotificationType": "ProcessEof", "TaskId": "legacy-path-1"}, "new-key")
    response = service.post(body, path="/pyapi/mps/callback")
    assert response.status_code == 200 and not response.json()["duplicate"]


def _deeply_nested_signed(depth: int) -> bytes:
    signed = stamp({"EventType": "WorkflowTask"}, "new-key")
    head = orjson.dumps(signed)[:-1]
    return head + b', "X": ' + b"[" * depth + b"]" * depth + b"}"


BAD_BODIES = {
    "not-json": (b"hello", 400, "not valid JSON"),
    "empty": (b"", 400, "empty body"),
    "array": (b"[1, 2]", 400, "JSON object"),
    "scalar": (b"42", 400, "JSON object"),
    "truncated": (b'{"EventType": "WorkflowTask", "WorkflowTaskEvent": {"TaskId": "t', 400, "not valid JSON"),
    "invalid-utf8": (b'{"EventType": "WorkflowTask", "X": "\xc3\x28"}', 400, "not valid JSON"),
    "deep-10000": (b'{"EventType": "WorkflowTask", "X": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400, "JSON"),
    "deep-300-signed": (lambda: _deeply_nested_signed(300), 400, "nested"),  # signed when sent: it expires
    "neither-shape": (b'{"hello": "world"}', 400, "EventType"),
    "timestamp-not-integer": (
        b'{"NotificationType": "ProcessEof", "Timestamp": "soon", "Sign": "' + b"a" * 32 + b'"}',
        400,
        "Timestamp",
    ),
    "sign-not-hex": (b'{"NotificationType": "ProcessEof", "Timestamp": 1800000000, "Sign": "zz"}', 400, "Sign"),
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_bad_input_is_4xx_with_a_reason_and_not_stored(service: InProcessService, name: str):
    body, status, reason = BAD_BODIES[name]
    raw = body() if callable(body) else body
    before = row_count(service)
    response = service.post(raw, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert reason in response.json()["message"]
    assert row_count(service) == before
    assert service.get("/healthz").status_code == 200


def test_a_20_mib_body_is_413(service: InProcessService):
    before = row_count(service)
    raw = b'{"EventType": "WorkflowTask", "Pad": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    response = service.post(raw)
    assert response.status_code == 413 and "larger than" in response.json()["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap must hold while streaming
        for start in range(0, len(raw), 1 << 20):
            yield raw[start : start + (1 << 20)]

    streamed = service.post(chunks())
    assert streamed.status_code == 413
    assert row_count(service) == before


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/octet-stream", None]
)
def test_any_content_type_is_accepted(service: InProcessService, content_type: str | None):
    body = stamp({"NotificationType": "ProcessEof", "TaskId": f"ct-{content_type}"}, "new-key")
    headers = {"Content-Type": content_type} if content_type else {}
    assert service.post(body, headers=headers).status_code == 200


def test_cmq_push_is_unwrapped_and_its_message_id_kept(service: InProcessService):
    inner = stamp(load_fixture("examples/doc-live-AiReviewResult.json") | {"TaskId": "cmq-task-1"}, "new-key")
    envelope = {
        "TopicOwner": 1250000000,
        "topicName": "mps",
        "subscriptionName": "sub",
        "msgId": "msg-42",
        "msgBody": orjson.dumps(inner).decode(),
        "publishTime": 1700000000000,
    }
    response = service.post(
        envelope, headers={"Content-Type": "text/plain", "x-cmq-message-id": "msg-42", "x-cmq-request-id": "req-7"}
    )
    assert response.status_code == 200
    row = stored(service, response.json()["notification_id"])
    assert (row.wrapper, row.message_id, row.task_id) == ("cmq", "msg-42", "cmq-task-1")
    assert row.body["AiReviewResultInfo"] == inner["AiReviewResultInfo"]
    assert row.delivery["envelope"]["topicName"] == "mps"
    assert row.delivery["headers"]["x-cmq-request-id"] == "req-7"


def test_credentials_in_headers_are_not_stored(service: InProcessService):
    body = stamp({"NotificationType": "ProcessEof", "TaskId": "headers-1"}, "new-key")
    response = service.post(
        body,
        headers={
            "Authorization": "Bearer hdr-secret-1",
            "Cookie": "s=hdr-secret-2",
            "X-Api-Key": "hdr-secret-3",
            "User-Agent": "mps-test",
        },
    )
    row = stored(service, response.json()["notification_id"])
    headers = row.delivery["headers"]
    assert headers["user-agent"] == "mps-test"
    assert not {"authorization", "cookie", "x-api-key"} & set(headers)
    assert row.delivery["remote_addr"] == "127.0.0.1"


def test_batch_task_without_task_id_is_kept(service: InProcessService):
    response = service.post(stamp(load_fixture("vod/BatchTask.json") | {"SessionId": "batch-x"}, "new-key"))
    assert response.status_code == 200
    assert stored(service, response.json()["notification_id"]).task_id is None


def test_a_write_the_database_refuses_is_spooled_then_held_not_lost(service: InProcessService):
    """The refused record waits in spool/held for its next attempt (quarantine comes after several:
    tests/journal/test_drain.py); notifications after it are not held up."""
    refuse_inserts(service.database_url, "refuse-me")
    before = row_count(service)
    response = service.post(stamp({"NotificationType": "ProcessEof", "TaskId": "refuse-me"}, "new-key"))
    assert response.status_code == 200
    assert response.json() == {"code": 0, "message": "ok", "notification_id": None, "duplicate": False, "spooled": True}
    assert row_count(service) == before
    held = service.spool_dir / "held"
    wait_until(lambda: held.is_dir() and any(held.iterdir()), 10, "the refused record to be held")
    [kept] = list(held.iterdir())
    assert b"refuse-me" in kept.read_bytes()
    wait_until(lambda: "held for a later attempt" in service.logs(), 5, "the log line")
    other = service.post(stamp({"NotificationType": "ProcessEof", "TaskId": "after-refusal"}, "new-key"))
    assert other.status_code == 200 and other.json()["notification_id"]
    readiness = service.get("/readyz").json()
    assert readiness["status"] == "degraded" and readiness["spool"]["depth"] == 1
    allow_inserts(service.database_url)  # the database takes it now: the next attempt goes in
    wait_until(lambda: service.get("/readyz").json()["spool_depth"] == 0, 15, "the held record to go in")
    assert (
        query(service.database_url, sa.select(notifications.c.task_id).where(notifications.c.task_id == "refuse-me"))
        != []
    )


def test_when_database_and_spool_both_refuse_the_answer_is_503(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'j.db'}"
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the spool directory should be")
    with InProcessService(url, tmp_path, spool_dir=str(blocker / "spool")) as service:
        refuse_inserts(url, "refuse-me")
        response = service.post({"NotificationType": "ProcessEof", "TaskId": "refuse-me"})
        assert response.status_code == 503 and response.json()["code"] == 503
        assert count(url) == 0


def test_readiness_and_liveness(service: InProcessService):
    service.project()  # no projector runs here: what earlier tests sent would count as lag
    assert service.get("/healthz").json() == {"status": "ok"}
    readiness = service.get("/readyz").json()
    assert readiness["status"] == "ready" and readiness["problems"] == [] and readiness["database"] == "ok", readiness
    assert readiness["spool_depth"] == 0
    assert readiness["spool"] == {"depth": 0, "oldest_seconds": 0.0, "quarantined": 0, "writable": True}
    assert readiness["projection"]["failed"] == 0 and readiness["projection"]["lag_seconds"] >= 0


def test_one_json_log_line_per_notification(service: InProcessService):
    response = service.post(stamp({"NotificationType": "ProcessEof", "TaskId": "logged-task-1"}, "new-key"))
    assert response.status_code == 200  # the line is written before the answer
    lines = [orjson.loads(line) for line in service.logs().splitlines() if "logged-task-1" in line]
    assert len(lines) == 1
    line = lines[0]
    assert line["outcome"] == "accepted" and line["type"] == "ProcessEof" and line["status"] == 200
    assert line["duration_ms"] > 0 and line["notification_id"] == response.json()["notification_id"]


def test_no_secret_reaches_the_database_or_the_logs(database_url: str, tmp_path: Path):
    """Every fixture (some carry S3 keys) and credentials in headers, on a service of its own."""
    headers = {"Authorization": "Bearer hdr-secret-1", "Cookie": "s=hdr-secret-2", "X-Api-Key": "hdr-secret-3"}
    with InProcessService(database_url, tmp_path, notify_keys=KEYS) as service:
        for relative in ALL_FIXTURES:
            assert service.post(stamp(load_fixture(relative), "new-key"), headers=headers).status_code == 200
        service.post(stamp(load_fixture(ALL_FIXTURES[0]), "guessed-key"), headers=headers)  # refused, logged
        logs = service.logs()
    rows = query(database_url, sa.select(notifications))
    assert "[redacted]" in str(rows)
    secrets = (
        "old-key",
        "new-key",
        "guessed-key",
        SECRET_ID,
        SECRET_KEY,
        "hdr-secret-1",
        "hdr-secret-2",
        "hdr-secret-3",
    )
    assert_no_secret({"journal rows": rows, "logs": logs}, secrets)


# ------------------------------------------------------------------ other configurations (SQLite)


def test_without_keys_unsigned_notifications_are_taken_with_a_loud_warning(tmp_path: Path):
    with InProcessService(f"sqlite:///{tmp_path / 'j.db'}", tmp_path) as service:
        response = service.post(load_fixture("examples/doc-live-ProcessEof.json"))
        assert response.status_code == 200
        assert stored(service, response.json()["notification_id"]).signature == "unsigned"
        signed = service.post(stamp(load_fixture("examples/doc-live-AiReviewResult.json"), "whatever"))
        assert stored(service, signed.json()["notification_id"]).signature == "unverified"
    assert "WITHOUT signature checks" in service.logs()


@pytest.mark.process
def test_sigterm_finishes_the_request_in_flight(tmp_path: Path):
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path)
    body = orjson.dumps({"NotificationType": "ProcessEof", "TaskId": "in-flight-1"})
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.sendall(b"POST /v1/mps/callback HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.3)  # about time: the request must be in flight (headers read) before the SIGTERM
        service.process.terminate()  # SIGTERM while the body is still arriving
        time.sleep(0.3)  # about time: uvicorn has begun its graceful shutdown when the rest arrives
        sock.sendall(body[10:])
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    # uvicorn re-raises SIGTERM once its graceful shutdown is done, so the exit status says "terminated".
    assert service.process.wait(timeout=20) in (0, -15)
    assert "Application shutdown complete" in service.logs()
    assert query(service.database_url, "SELECT task_id FROM notifications")[0][0] == "in-flight-1"


@pytest.mark.process
def test_a_body_the_database_cannot_store_is_refused_413_before_any_promise(tmp_path: Path):
    """A real process (uvicorn's header limit is part of the answer: 431).

    MariaDB's max_allowed_packet (16 MiB here) against a signed body full of ' (sent twice with
    NO_BACKSLASH_ESCAPES): refused with a reason, nothing spooled, and the limit warned about at start."""
    from tests.support.db import migrated

    for url in migrated("mysql", tmp_path):
        packet = query(url, "SELECT @@max_allowed_packet")[0][0]
        service = start_service(url, tmp_path)
        try:
            assert (
                service.post(stamp({"NotificationType": "ProcessEof", "TaskId": "opens-a-connection"}, "k")).status_code
                == 200
            )
            words = "'" * (packet // 2 + 1024)  # under MPS_MAX_BODY_BYTES, over the packet once escaped
            response = service.post(
                stamp({"NotificationType": "AiRecognitionResult", "TaskId": "quoted", "Words": words}, "k")
            )
            assert response.status_code == 413, response.text
            assert "max_allowed_packet" in response.json()["message"]
            # numbers grow when stored: 1E15 (4 bytes) is written back as 1000000000000000.0 (18)
            numbers = (
                b'{"NotificationType": "AiRecognitionResult", "TaskId": "numbers", "Values": ['
                + b",".join([b"1E15"] * (packet // 12))
                + b"]}"
            )
            assert len(numbers) < packet // 2
            grown = service.post(numbers)
            assert grown.status_code == 413, grown.text
            # what is kept of the delivery shares the row: a CMQ envelope's attributes, the headers
            envelope = {
                "msgId": "m-1",
                "msgBody": orjson.dumps(stamp({"NotificationType": "ProcessEof", "TaskId": "enveloped"}, "k")).decode(),
                "attr": ["'" * 4096] * (packet // 4096 // 2 + 16),
            }
            assert service.post(envelope).status_code == 413
            headered = service.post(
                stamp({"NotificationType": "ProcessEof", "TaskId": "headered"}, "k"),
                headers={f"x-quote-{i}": "'" * 4000 for i in range(packet // 4000 // 2 + 16)},
            )
            assert headered.status_code in (413, 431), headered.text
            assert service.get("/readyz").json()["spool_depth"] == 0
            assert "MPS_MAX_BODY_BYTES is larger than the database can store" in service.logs()
        finally:
            service.stop()
        assert (
            query(
                url,
                "SELECT COUNT(*) FROM notifications WHERE task_id IN ('quoted', 'numbers', 'enveloped', 'headered')",
            )[0][0]
            == 0
        )
