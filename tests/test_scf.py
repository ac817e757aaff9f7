"""The SCF handler called as SCF calls it, with both event shapes, on every backend.

MPS's trigger passes the notification as the event; an API gateway trigger passes an HTTP request and
takes an integration response back. A repeat is one row; a database away is an exception (SCF retries),
with nothing written; a bad body is a 400 response (gateway) or a logged refusal (MPS trigger).
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from mps_callback import scf
from mps_callback.send import stamp
from mps_callback.store.tables import notifications
from tests.support.bodies import load_fixture
from tests.support.db import query
from tests.support.mps_api_standin import mps_api_standin
from tests.support.service import InProcessService

NOTIFICATION = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")
API_SECRET_ID, API_SECRET_KEY = "AKIDscfconfirm0001", "scf-confirm-secret-key-9c2e"
CONTEXT = {"request_id": "scf-request-1", "function_name": "mps-callback"}


@pytest.fixture
def on(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Point the function at a database (as its environment variables would), with a fresh warm state."""

    def point(url: str, **settings: str) -> None:
        scf.reset()
        for name in [name for name in os.environ if name.startswith("MPS_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("MPS_DATABASE_URL", url)
        monkeypatch.setenv("MPS_NOTIFY_KEYS", "k")
        for name, value in settings.items():
            monkeypatch.setenv(f"MPS_{name.upper()}", value)

    yield point
    scf.reset()


def signed() -> dict[str, Any]:
    return stamp(NOTIFICATION, "k")


def gateway(body: bytes, encode: bool = False, token: str = "") -> dict[str, Any]:
    """An API gateway trigger's event: the POST MPS made to the gateway."""
    return {
        "httpMethod": "POST",
        "path": "/mps",
        "headers": {"content-type": "application/json"},
        "queryString": {"token": token} if token else {},
        "body": base64.b64encode(body).decode() if encode else body.decode(),
        "isBase64Encoded": encode,
        "requestContext": {"sourceIp": "10.0.0.9", "stage": "release"},
    }


def rows(url: str) -> list[Any]:
    return query(url, sa.select(notifications.c.channel, notifications.c.delivery))


def test_the_mps_trigger_journals_the_notification_once(database_url: str, on: Any, tmp_path: Path):
    on(database_url)
    event = signed()
    first = scf.main_handler(event, CONTEXT)
    again = scf.main_handler(event, CONTEXT)  # SCF invokes again: the same notification
    assert first["code"] == 0 and not first["duplicate"] and again["duplicate"]
    [(channel, delivery)] = rows(database_url)
    assert channel == "scf" and delivery["headers"] == {"trigger": "mps", "request_id": "scf-request-1"}
    assert task_as_the_api_shows_it(database_url, tmp_path)["notification_count"] == 1


def task_as_the_api_shows_it(url: str, directory: Path) -> dict[str, Any]:
    """``GET /v1/tasks/{task_id}`` of the notification's task, once the journal is projected."""
    with InProcessService(url, directory) as service:
        service.project()
        answer = service.get(f"/v1/tasks/{NOTIFICATION['WorkflowTaskEvent']['TaskId']}")
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] = answer.json()
    return task


@pytest.mark.parametrize("encode", [False, True])
def test_the_api_gateway_journals_the_body_once(database_url: str, on: Any, encode: bool):
    on(database_url)
    event = gateway(orjson.dumps(signed()), encode)
    first, again = scf.main_handler(event, CONTEXT), scf.main_handler(event, CONTEXT)
    assert first["statusCode"] == 200 and orjson.loads(again["body"])["duplicate"] is True
    assert first["isBase64Encoded"] is False and first["headers"]["Content-Type"] == "application/json"
    [(channel, delivery)] = rows(database_url)
    assert channel == "scf" and delivery["remote_addr"] == "10.0.0.9"


def test_a_bad_body_through_the_gateway_is_a_400_with_a_reason(database_url: str, on: Any):
    on(database_url)
    answer = scf.main_handler(gateway(b"not json"), CONTEXT)
    assert answer["statusCode"] == 400 and orjson.loads(answer["body"])["message"]
    assert rows(database_url) == []


def test_the_url_token_is_checked_when_set(database_url: str, on: Any):
    on(database_url, url_token="t0ken-for-the-gateway")
    assert scf.main_handler(gateway(orjson.dumps(signed())), CONTEXT)["statusCode"] == 401
    answer = scf.main_handler(gateway(orjson.dumps(signed()), token="t0ken-for-the-gateway"), CONTEXT)
    assert answer["statusCode"] == 200 and len(rows(database_url)) == 1


def test_a_hopeless_notification_from_the_mps_trigger_is_logged_not_raised(
    database_url: str, on: Any, caplog: pytest.LogCaptureFixture
):
    on(database_url)
    with caplog.at_level(logging.INFO, logger="mps_callback"):
        answer = scf.main_handler(stamp({"Hello": "not a notification"}, "k"), CONTEXT)
    assert answer["code"] == 400 and rows(database_url) == []
    assert any(record.message == "notification refused" for record in caplog.records)


def deep(levels: int) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for _ in range(levels):
        event = {"a": event}
    return event


@pytest.mark.parametrize(
    "event",
    [deep(300), {**NOTIFICATION, "Timestamp": 10**30}, ["a", "list"], "a string"],
    ids=["nested-300", "integer-past-64-bits", "list", "string"],
)
def test_an_event_that_can_never_be_a_notification_is_answered_400_not_raised(database_url: str, on: Any, event: Any):
    """Raising would make SCF retry it until its dead-letter queue; nothing can ever make it a notification."""
    on(database_url)
    answer = scf.main_handler(event, CONTEXT)
    assert answer["code"] == 400 and rows(database_url) == []


def test_a_gateway_body_that_is_not_utf8_is_a_400(database_url: str, on: Any):
    on(database_url)
    answer = scf.main_handler(gateway(b"x") | {"body": '{"TaskId": "\ud800"}'}, CONTEXT)
    assert answer["statusCode"] == 400 and rows(database_url) == []


def test_a_task_mps_does_not_know_is_refused_when_verify_with_api_is_set(
    database_url: str, on: Any, monkeypatch: pytest.MonkeyPatch
):
    """MPS_VERIFY_WITH_API holds at this door as at the HTTP one: a forged body for a task MPS does not have is
    refused (401) behind the gateway, and a known task is kept marked confirmed."""
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", API_SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", API_SECRET_KEY)
    with mps_api_standin(API_SECRET_ID, API_SECRET_KEY) as standin:
        on(database_url, verify_with_api="true", api_endpoint=standin.url)
        forged = scf.main_handler(gateway(orjson.dumps(signed())), CONTEXT)
        assert forged["statusCode"] == 401 and rows(database_url) == []
        standin.put({"TaskType": "WorkflowTask", "Status": "FINISH", "WorkflowTask": NOTIFICATION["WorkflowTaskEvent"]})
        assert scf.main_handler(gateway(orjson.dumps(signed())), CONTEXT)["statusCode"] == 200
    [confirmation] = query(database_url, sa.select(notifications.c.confirmation))
    assert confirmation == ("confirmed",)


def test_a_forged_notification_from_the_mps_trigger_raises_so_scf_retries(database_url: str, on: Any):
    on(database_url)
    with pytest.raises(scf.NotKept, match="401"):
        scf.main_handler(stamp(NOTIFICATION, "not-our-key"), CONTEXT)
    assert rows(database_url) == []


def test_a_database_away_is_an_exception_and_the_retry_keeps_it(database_url: str, on: Any):
    on("postgresql://nobody@127.0.0.1:1/none")
    event = signed()
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the driver raises: SCF retries on any
        scf.main_handler(event, CONTEXT)
    with pytest.raises(Exception):  # noqa: B017, PT011
        scf.main_handler(gateway(orjson.dumps(event)), CONTEXT)
    on(database_url)
    assert scf.main_handler(event, CONTEXT)["duplicate"] is False
    assert len(rows(database_url)) == 1


def test_a_database_without_the_schema_says_to_upgrade(tmp_path: Path, on: Any):
    on(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(scf.SchemaMissing, match="mps-callback db upgrade"):
        scf.main_handler(signed(), CONTEXT)
