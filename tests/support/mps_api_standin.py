"""A stand-in for the MPS API endpoint (``mps.tencentcloudapi.com``), for reconciliation tests.

A stand-in, not a mock: a real HTTP server on 127.0.0.1 that the real Tencent Cloud SDK talks
to (``MPS_API_ENDPOINT=http://127.0.0.1:<port>``), because the real endpoint needs an account
with tasks in it and cannot be made to throttle or page on demand. It checks what the real
endpoint checks of a request (the TC3-HMAC-SHA256 signature over ``content-type;host`` and the
payload, with the test's SecretKey; the version and action headers) and answers
``DescribeTasks`` and ``DescribeTaskDetail`` with the documented response shapes (the MPS API
reference, e.g. https://www.tencentcloud.com/document/product/1041/33643 for DescribeTasks):
``{"Response": {"TaskSet": [TaskSimpleInfo...], "ScrollToken", "TotalCount", "RequestId"}}``,
``{"Response": {"TaskType", "Status", "WorkflowTask": {...}, ..., "RequestId"}}``, and errors
as ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`` with HTTP 200.

Tasks are what a test puts in (``put``: the DescribeTaskDetail answer, without RequestId);
``page_size`` makes DescribeTasks page sooner than its ``Limit`` to exercise ``ScrollToken``;
``throttle`` makes the next calls of an action answer ``RequestLimitExceeded``.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from tests.support.servers import serving

VERSION = "2019-06-12"
SERVICE = "mps"


@dataclass
class MpsApiStandIn:
    secret_id: str
    secret_key: str
    page_size: int = 100
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    throttle: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, detail: dict[str, Any], created: str = "2026-11-24T10:00:00Z") -> None:
        """A task MPS knows: its DescribeTaskDetail answer (``TaskType``, ``Status``, the task object)."""
        self.tasks[task_id(detail)] = {"CreateTime": created, **detail}

    def called(self, action: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == action]

    # ---------------------------------------------------------------- the actions

    def answer(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls.append((action, params))
            if self.throttle.get(action, 0) > 0:
                self.throttle[action] -= 1
                return error("RequestLimitExceeded", "request limit exceeded, try again later")
        if action == "DescribeTasks":
            return self.describe_tasks(params)
        if action == "DescribeTaskDetail":
            return self.describe_task_detail(params)
        return error("InvalidAction", f"the action {action} is not supported by this stand-in")

    def describe_tasks(self, params: dict[str, Any]) -> dict[str, Any]:
        status, limit = params.get("Status"), params.get("Limit", 10)
        if status not in ("WAITING", "PROCESSING", "FINISH"):
            return error("InvalidParameterValue.Status", "Status must be WAITING, PROCESSING or FINISH")
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            return error("InvalidParameterValue.Limit", "Limit must be 1 to 100")
        matching = sorted(key for key, detail in self.tasks.items() if detail.get("Status") == status)
        start = int(params.get("ScrollToken") or 0)
        page = matching[start : start + min(limit, self.page_size)]
        following = start + len(page)
        return {
            "TaskSet": [summary(self.tasks[key]) for key in page],
            "ScrollToken": str(following) if following < len(matching) else "",
            "TotalCount": len(matching),
        }

    def describe_task_detail(self, params: dict[str, Any]) -> dict[str, Any]:
        detail = self.tasks.get(str(params.get("TaskId")))
        if detail is None:
            return error("ResourceNotFound.TaskNotExist", "the task does not exist")
        return dict(detail)

    # ---------------------------------------------------------------- the signature

    def signed(self, method: str, headers: dict[str, str], payload: bytes) -> str | None:
        """None when the request is signed with our SecretKey as the SDK signs; else the error code."""
        authorization = headers.get("authorization", "")
        prefix = f"TC3-HMAC-SHA256 Credential={self.secret_id}/"
        if not authorization.startswith(prefix):
            return "AuthFailure.SecretIdNotFound"
        parts = dict(part.strip().split("=", 1) for part in authorization.removeprefix("TC3-HMAC-SHA256 ").split(","))
        date, service, _ = parts["Credential"].split("/", 1)[1].split("/", 2)
        canonical = "\n".join(
            [
                method,
                "/",
                "",
                f"content-type:{headers.get('content-type', '')}\nhost:{headers.get('host', '')}\n",
                parts["SignedHeaders"],
                hashlib.sha256(payload).hexdigest(),
            ]
        )
        scope = f"{date}/{service}/tc3_request"
        text = f"TC3-HMAC-SHA256\n{headers.get('x-tc-timestamp', '')}\n{scope}\n{_sha(canonical)}"
        key = _hmac(_hmac(_hmac(f"TC3{self.secret_key}".encode(), date), service), "tc3_request")
        expected = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        ok = service == SERVICE and hmac.compare_digest(expected, parts.get("Signature", ""))
        return None if ok else "AuthFailure.SignatureFailure"


def task_id(detail: dict[str, Any]) -> str:
    for value in detail.values():
        if isinstance(value, dict) and isinstance(value.get("TaskId"), str):
            return str(value["TaskId"])
    raise ValueError("a DescribeTaskDetail answer holds its task's TaskId in its task object")


def summary(detail: dict[str, Any]) -> dict[str, Any]:
    """The task as DescribeTasks lists it (TaskSimpleInfo)."""
    finished = detail.get("Status") == "FINISH"
    return {
        "TaskId": task_id(detail),
        "TaskType": detail.get("TaskType", ""),
        "CreateTime": detail["CreateTime"],
        "BeginProcessTime": detail["CreateTime"],
        "FinishTime": detail["CreateTime"] if finished else "0000-00-00T00:00:00Z",
        "SubTaskTypes": [],
    }


def error(code: str, message: str) -> dict[str, Any]:
    return {"Error": {"Code": code, "Message": message}}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        standin = self.server.standin
        payload = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {name.lower(): value for name, value in self.headers.items()}
        standin.headers_seen.append(headers)
        action = headers.get("x-tc-action", "")
        if headers.get("x-tc-version") != VERSION:
            response = error("InvalidParameter.Version", f"X-TC-Version must be {VERSION}")
        elif (failure := standin.signed("POST", headers, payload)) is not None:
            response = error(failure, "the request signature is not valid")
        else:
            response = standin.answer(action, orjson.loads(payload or b"{}"))
        body = orjson.dumps({"Response": {**response, "RequestId": str(uuid.uuid4())}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    standin: MpsApiStandIn


@contextmanager
def mps_api_standin(secret_id: str, secret_key: str, page_size: int = 100) -> Iterator[MpsApiStandIn]:
    """The stand-in serving on a free port of 127.0.0.1 until the block ends; ``.url`` is MPS_API_ENDPOINT."""
    standin = MpsApiStandIn(secret_id, secret_key, page_size)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.standin = standin
    with serving(server, "mps-api-standin") as url:
        standin.url = url
        yield standin
