"""MPS_VERIFY_WITH_API: the service asks (a local fake of) MPS's DescribeTaskDetail about each task."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import sqlalchemy as sa

from mps_callback.send import stamp
from mps_callback.store.tables import notifications
from tests.support.bodies import load_fixture
from tests.support.checks import assert_no_secret
from tests.support.db import query
from tests.support.service import InProcessService, free_port

KNOWN_TASK = "2400002-WorkflowTask-known-by-mps"


class FakeMps(BaseHTTPRequestHandler):
    """Answers DescribeTaskDetail like the MPS API: the task, or ResourceNotFound; 'down' tasks get a 500."""

    calls: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeMps.calls.append(
            {
                "action": self.headers.get("X-TC-Action"),
                "authorized": "TC3-HMAC-SHA256" in self.headers.get("Authorization", ""),
                **request,
            }
        )
        if request["TaskId"].endswith("api-down"):
            self.send_response(500)
            self.end_headers()
            return
        if request["TaskId"] == KNOWN_TASK:
            answer = {"Response": {"TaskType": "WorkflowTask", "Status": "FINISH", "RequestId": "r1"}}
        else:
            answer = {
                "Response": {
                    "Error": {"Code": "ResourceNotFound.TaskNotExist", "Message": "no such task"},
                    "RequestId": "r2",
                }
            }
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_tasks_are_confirmed_with_the_mps_api(tmp_path: Path, monkeypatch):
    port = free_port()
    server = HTTPServer(("127.0.0.1", port), FakeMps)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDfake")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "fake-secret-key-for-test")
    url = f"sqlite:///{tmp_path / 'j.db'}"
    service = InProcessService(
        url, tmp_path, notify_keys="k", verify_with_api="true", api_endpoint=f"http://127.0.0.1:{port}"
    )
    try:
        body = load_fixture("vod/WorkflowTask-MediaProcess-TranscodeTask.json")
        body["WorkflowTaskEvent"]["TaskId"] = KNOWN_TASK
        known = service.post(stamp(body, "k"))
        assert known.status_code == 200
        again = dict(body, SessionId="second")  # another notification of the same task: answered from the cache
        assert service.post(stamp(again, "k")).status_code == 200
        body["WorkflowTaskEvent"]["TaskId"] = "2400002-WorkflowTask-forged-replay"
        forged = service.post(stamp(body, "k"))
        assert forged.status_code == 401 and "MPS does not know task" in forged.json()["message"]
        body["WorkflowTaskEvent"]["TaskId"] = "2400002-WorkflowTask-api-down"
        unreachable = service.post(stamp(body, "k"))
        assert unreachable.status_code == 200
    finally:
        service.stop()
        server.shutdown()
    columns = (notifications.c.task_id, notifications.c.signature, notifications.c.confirmation)
    marks = {r.task_id: (r.signature, r.confirmation) for r in query(url, sa.select(*columns))}
    assert marks == {
        KNOWN_TASK: ("verified", "confirmed"),
        "2400002-WorkflowTask-api-down": ("verified", "unconfirmed"),
    }
    assert [c["TaskId"] for c in FakeMps.calls].count(KNOWN_TASK) == 1
    assert all(c["action"] == "DescribeTaskDetail" and c["authorized"] for c in FakeMps.calls)
    assert_no_secret({"logs": service.logs()}, ["fake-secret-key-for-test"])
