"""One door-security suite for every door, on every backend (after django-anymail's WebhookBasicAuthTestCase).

A *door* is one way a notification reaches ``accept``: a callback path and what wraps the
notification on it (nothing, a CMQ push, a ParseNotification ``Response``). Every door must
refuse the same things the same way: an unsigned, forged, replayed, expired or far-future
notification (401), and a missing or wrong URL token (401); it takes a genuine one once
(200, journaled once, a retry answered as a duplicate); and no key or token reaches the
journal, the logs or /metrics.

**A new HTTP door is a new row of** :data:`DOORS`: every case below then runs against it too.
The queue doors (CMQ, SQS) run the same signature cases (``tests/support/forgeries.py``) in
``test_door_suite.py`` against their real transports; the SCF handler in ``tests/test_scf.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from mps_callback.intake.http import CALLBACK_PATHS
from mps_callback.send import stamp_fields
from mps_callback.store.tables import notifications
from tests.support.checks import assert_no_secret
from tests.support.db import count, query
from tests.support.forgeries import SIGNATURE_CASES
from tests.support.service import InProcessService

KEY, OLD_KEY = "door-key-4e1c7a", "door-old-key-8b2d5f"
URL_TOKEN = "door-url-token-6f0a3e"
SECRETS = {"notify key": KEY, "old notify key": OLD_KEY, "URL token": URL_TOKEN}

Notification = dict[str, Any]


def bare(notification: Notification) -> bytes:
    return orjson.dumps(notification)


def cmq(notification: Notification) -> bytes:
    """A CMQ/TDMQ topic pushing to HTTP: the notification as a string in ``msgBody``."""
    return orjson.dumps({"msgId": "msg-door-1", "topicName": "mps", "msgBody": orjson.dumps(notification).decode()})


def api_response(notification: Notification) -> bytes:
    """A notification passed through Tencent's ParseNotification API."""
    return orjson.dumps({"Response": {**notification, "RequestId": "req-door-1"}})


#: envelope name -> (how it wraps the notification, what the journal records as ``wrapper``)
ENVELOPES: dict[str, tuple[Callable[[Notification], bytes], str]] = {
    "bare": (bare, "none"),
    "cmq": (cmq, "cmq"),
    "response": (api_response, "api-response"),
}


@dataclass(frozen=True)
class Door:
    name: str
    path: str
    wrap: Callable[[Notification], bytes]
    wrapper: str

    def send(self, service: InProcessService, notification: Notification, token: str | None = URL_TOKEN) -> Any:
        """Deliver ``notification`` through this door, with ``?token=`` unless ``token`` is None."""
        query_string = "" if token is None else f"?token={token}"
        return service.post(self.wrap(notification), path=self.path + query_string)


#: Every door the service has. Add a door here and every case in this file runs against it.
DOORS = [
    Door(f"{envelope}{path.replace('/', '-')}", path, wrap, wrapper)
    for path in CALLBACK_PATHS
    for envelope, (wrap, wrapper) in ENVELOPES.items()
]


#: case -> the ``?token=`` sent (None: no query string at all)
TOKEN_CASES: dict[str, str | None] = {"missing": None, "empty": "", "wrong": "door-url-token-6f0a3X"}


def notification(task_id: str, key: str = KEY) -> Notification:
    return stamp_fields({"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}}, key)


def kept(service: InProcessService, task_id: str) -> int:
    return count(service.database_url, where=f"task_id = '{task_id}'")


@pytest.fixture(scope="module")
def service(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessService]:
    with InProcessService(
        module_database_url, tmp_path_factory.mktemp("doors"), notify_keys=f"{OLD_KEY},{KEY}", url_token=URL_TOKEN
    ) as running:
        yield running


@pytest.fixture(params=DOORS, ids=lambda door: door.name)
def door(request: pytest.FixtureRequest) -> Door:
    door: Door = request.param
    return door


@pytest.mark.parametrize("case", SIGNATURE_CASES)
def test_a_bad_signature_is_refused_401_and_not_kept(service: InProcessService, door: Door, case: str) -> None:
    spoil, reason = SIGNATURE_CASES[case]
    task_id = f"sig-{case}-{door.name}"
    response = door.send(service, spoil(notification(task_id), KEY))
    assert response.status_code == 401, response.text
    assert reason in response.json()["message"]
    assert kept(service, task_id) == 0


@pytest.mark.parametrize("case", TOKEN_CASES)
def test_a_missing_or_wrong_url_token_is_refused_401_and_not_kept(
    service: InProcessService, door: Door, case: str
) -> None:
    task_id = f"token-{case}-{door.name}"
    response = door.send(service, notification(task_id), token=TOKEN_CASES[case])
    assert response.status_code == 401, response.text
    assert "URL token" in response.json()["message"]
    assert kept(service, task_id) == 0


@pytest.mark.parametrize("which", ["current", "rotated"])
def test_a_genuine_notification_is_kept_once(service: InProcessService, door: Door, which: str) -> None:
    """Signed with either key MPS may hold while the key is rotated (MPS_NOTIFY_KEYS lists both)."""
    key = {"current": KEY, "rotated": OLD_KEY}[which]
    task_id = f"genuine-{which}-{door.name}"
    first = door.send(service, notification(task_id, key))
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False
    retry = door.send(service, notification(task_id, key))  # MPS retrying
    assert retry.status_code == 200 and retry.json()["duplicate"] is True
    [row] = query(service.database_url, sa.select(notifications).where(notifications.c.task_id == task_id))
    assert (row.signature, row.wrapper) == ("verified", door.wrapper)


def test_no_key_or_token_reaches_the_journal_the_logs_or_metrics(service: InProcessService) -> None:
    """Every door, every case, sent here (not borrowed from the tests above): then nothing written holds a secret."""
    signs = []
    for door in DOORS:
        genuine = notification(f"secrets-{door.name}")
        signs.append(genuine["Sign"])
        assert door.send(service, genuine).status_code == 200
        for case, (spoil, _) in SIGNATURE_CASES.items():
            assert door.send(service, spoil(notification(f"secrets-{case}-{door.name}"), KEY)).status_code == 401
        for case, token in TOKEN_CASES.items():
            assert door.send(service, notification(f"secrets-{case}-{door.name}"), token=token).status_code == 401
    rows = query(service.database_url, sa.select(notifications).where(notifications.c.task_id.like("secrets-%")))
    assert len(rows) == len(DOORS) and all(row.body["Sign"] == "[redacted]" for row in rows)
    written = {"journal rows": rows, "logs": service.logs(), "metrics": service.get("/metrics").text}
    assert "secrets-" in written["logs"]  # the logs were captured: their silence means something
    assert_no_secret(written, {**SECRETS, **{f"Sign {n}": sign for n, sign in enumerate(signs)}})
