"""The CMQ door's harness for the shared door suite, and what the CMQ tests share: a stand-in queue,
credentials, and a message put on it through a signed ``SendMessage`` as MPS puts one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from mps_callback.intake.cmq import SECRET_ID_VARIABLE, SECRET_KEY_VARIABLE, CmqClient, Credentials
from tests.support.cmq_standin import CmqStandIn, running

SECRET_ID, SECRET_KEY = "AKIDcmqdoortest0001", "cmq-door-secret-key-5b9e2d"
QUEUE = "mps-notify"


@dataclass
class CmqHarness:
    """A stand-in CMQ queue as the suite's `DoorHarness`."""

    standin: CmqStandIn
    name: str = "cmq"
    settings: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    visibility_seconds: float = 1.0

    def put(self, body: bytes) -> None:
        send(self.standin, body.decode())

    def waiting(self) -> int:
        return self.standin.waiting()


def send(standin: CmqStandIn, body: str) -> str:
    """``body`` on the stand-in's queue through a signed ``SendMessage``; its message id."""
    client = CmqClient(standin.url, Credentials(standin.secret_id, standin.secret_key))
    form = client.signed("SendMessage", {"queueName": standin.queue, "msgBody": body})
    answer = httpx.post(client.url, data=form, timeout=10).json()
    assert answer["code"] == 0, answer
    return str(answer["msgId"])


def environment(standin: CmqStandIn) -> dict[str, str]:
    return {SECRET_ID_VARIABLE: standin.secret_id, SECRET_KEY_VARIABLE: standin.secret_key}


@contextmanager
def cmq_standin(visibility_seconds: float = 1.0, **options: Any) -> Iterator[CmqStandIn]:
    with running(CmqStandIn(SECRET_ID, SECRET_KEY, QUEUE, visibility_seconds, **options)) as standin:
        yield standin


@contextmanager
def cmq_harness() -> Iterator[CmqHarness]:
    with cmq_standin() as standin:
        yield CmqHarness(
            standin,
            settings={"cmq_endpoint": standin.url, "cmq_queue": standin.queue},
            environment=environment(standin),
            visibility_seconds=standin.visibility_seconds,
        )
