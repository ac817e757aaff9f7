"""``/v1/deliveries`` on real databases: filters, keyset paging newest first, attempts, retry, hostile input."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mps_callback.store.tables import deliveries
from tests.support.db import query
from tests.support.deliveries import START, add
from tests.support.service import InProcessService

TOKEN = "api-token-for-deliveries"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[InProcessService]:
    with InProcessService(database_url, tmp_path, api_token=TOKEN) as running:
        yield running


def listed(service: InProcessService, **params: Any) -> list[int]:
    response = service.get("/v1/deliveries", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_the_list_filters_and_pages_newest_first(database_url: str, service: InProcessService):
    ids = add(
        database_url,
        {"sink": "app", "status": "delivered"},
        {"sink": "chat", "status": "dead", "event": "task.failed"},
        {"sink": "app", "status": "pending", "task_id": "wanted"},
        {"sink": "app", "status": "dead", "event": "notification.received", "data": None},
    )
    assert listed(service) == ids[::-1]
    assert listed(service, sink="app") == [ids[3], ids[2], ids[0]]
    assert listed(service, status="dead") == [ids[3], ids[1]]
    assert listed(service, task="wanted") == [ids[2]]
    assert listed(service, event="task.failed") == [ids[1]]
    assert listed(service, since=(START + timedelta(minutes=1)).isoformat(), until="2026-11-24T10:03:00") == [
        ids[2],
        ids[1],
    ]
    assert listed(service, sink="nobody") == []

    seen, cursor = [], None
    while True:
        page = service.get(
            "/v1/deliveries", params={"limit": 3, **({"cursor": cursor} if cursor else {})}, headers=AUTH
        )
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


def test_one_delivery_shows_its_attempts_and_no_sink_url(database_url: str, service: InProcessService):
    [delivery_id] = add(
        database_url,
        {"status": "dead", "attempts": 2, "last_error": "HTTP 500 Internal Server Error"},
        attempts=[
            {"attempted_at": START, "duration_ms": 12, "outcome": "retry", "status_code": 500, "error": "HTTP 500"},
            {"attempted_at": START, "duration_ms": 30, "outcome": "retry", "status_code": None, "error": "timed out"},
        ],
    )
    response = service.get(f"/v1/deliveries/{delivery_id}", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sink"] == "app" and body["status"] == "dead" and body["attempts"] == 2
    assert [(a["outcome"], a["status_code"], a["error"], a["duration_ms"]) for a in body["attempts_made"]] == [
        ("retry", 500, "HTTP 500", 12),
        ("retry", None, "timed out", 30),
    ]
    assert "url" not in body and "secret" not in body
    assert service.get("/v1/deliveries/999999", headers=AUTH).status_code == 404


def test_retry_makes_a_dead_delivery_due_now_and_refuses_a_delivered_one(database_url: str, service: InProcessService):
    dead, delivered = add(database_url, {"status": "dead", "attempts": 10}, {"status": "delivered", "attempts": 1})
    before = datetime.now(UTC)

    response = service.post(b"", path=f"/v1/deliveries/{dead}/retry", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    [(status, attempts, due)] = query(
        database_url,
        sa.select(deliveries.c.status, deliveries.c.attempts, deliveries.c.next_attempt_at).where(
            deliveries.c.id == dead
        ),
    )
    assert (status, attempts) == ("pending", 10)
    assert before - timedelta(seconds=1) <= due.replace(tzinfo=due.tzinfo or UTC) <= datetime.now(UTC)

    assert service.post(b"", path=f"/v1/deliveries/{delivered}/retry", headers=AUTH).status_code == 409
    assert service.post(b"", path="/v1/deliveries/999999/retry", headers=AUTH).status_code == 404


def test_the_routes_need_the_api_token(service: InProcessService):
    assert service.get("/v1/deliveries").status_code == 401
    assert service.post(b"", path="/v1/deliveries/1/retry").status_code == 401


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("/v1/deliveries", {"status": "lost"}, 422),
        ("/v1/deliveries", {"event": "task.exploded"}, 422),
        ("/v1/deliveries", {"sink": "a\x00b"}, 422),
        ("/v1/deliveries", {"task": "t" * 256}, 422),
        ("/v1/deliveries", {"task": "a\x00b"}, 422),
        ("/v1/deliveries", {"event": "TASK.FINISHED"}, 422),
        ("/v1/deliveries", {"cursor": "not-a-cursor"}, 400),
        (
            "/v1/deliveries",
            {"cursor": base64.urlsafe_b64encode(b'["deliveries", 99999999999999999999999]').decode()},
            400,
        ),
        ("/v1/deliveries", {"cursor": base64.urlsafe_b64encode(b'["tasks", 1]').decode()}, 400),
        ("/v1/deliveries", {"since": "9999-12-31T23:59:59-23:59"}, 422),
        ("/v1/deliveries", {"limit": "100000000000000000000000"}, 422),
        ("/v1/deliveries/99999999999999999999999", {}, 422),
        ("/v1/deliveries/0", {}, 422),
        ("/v1/deliveries/abc", {}, 422),
    ],
)
def test_hostile_parameters_are_refused_with_a_4xx(
    service: InProcessService, path: str, params: dict[str, str], expected: int
):
    response = service.get(path, params=params, headers=AUTH)
    assert response.status_code == expected, response.text


def test_an_unknown_status_names_the_allowed_ones(service: InProcessService):
    response = service.get("/v1/deliveries", params={"status": "lost"}, headers=AUTH)
    assert all(word in response.text for word in ("pending", "delivered", "dead"))


def test_an_unknown_event_type_names_the_allowed_ones(service: InProcessService):
    response = service.get("/v1/deliveries", params={"event": "task.exploded"}, headers=AUTH)
    assert response.status_code == 422
    assert all(
        name in response.text for name in ("notification.received", "task.updated", "task.finished", "task.failed")
    )


def test_retry_hostile_ids_are_4xx(service: InProcessService):
    assert service.post(b"", path="/v1/deliveries/99999999999999999999999/retry", headers=AUTH).status_code == 422
