"""A queue door as an operator sees it: ``/readyz`` and the health page say whether it polls or fails."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.checks import wait_until
from tests.support.cmq import cmq_standin, environment
from tests.support.service import Service, start_service

pytestmark = [pytest.mark.process, pytest.mark.brokers]


def door(service: Service) -> dict[str, object]:
    body = httpx.get(service.base_url + "/readyz", timeout=10).json()
    return dict(body.get("doors", {}).get("cmq", {})) | {"problems": body["problems"], "status": body["status"]}


def test_readyz_and_the_health_page_show_a_door_polling_then_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with cmq_standin() as standin:
        credentials = environment(standin)
        for name, value in credentials.items():
            monkeypatch.setenv(name, value)
        service = start_service(
            f"sqlite+aiosqlite:///{tmp_path}/door.db", tmp_path, cmq_endpoint=standin.url, cmq_queue=standin.queue
        )
        try:
            wait_until(lambda: door(service).get("state") == "ok", 30, "the door's first round")
            assert not any("queue door" in problem for problem in door(service)["problems"])  # type: ignore[attr-defined]

            standin.secret_key = "a-key-the-door-does-not-have"  # CMQ now refuses every request of the door
            wait_until(lambda: door(service).get("state") == "failing", 30, "the door failing")
            state = door(service)
            assert state["status"] == "degraded"
            assert any(problem.startswith("queue door cmq fails:") for problem in state["problems"])  # type: ignore[attr-defined]
            page = httpx.get(service.base_url + "/ui/health", timeout=10).text
            assert "Queue doors" in page and "failing" in page
            assert not any(secret in page or secret in service.logs() for secret in credentials.values())
        finally:
            service.stop()
