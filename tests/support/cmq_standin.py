"""A stand-in TDMQ-CMQ queue server, written from CMQ's data-plane API reference.

A stand-in, not CMQ: CMQ is a Tencent Cloud service with no local edition, emulator or container,
and the tests must not reach the cloud. So this server implements, from the same reference as
``intake/cmq.py`` (cloud.tencent.com/document/product/1496/61039 and ``tencentyun/cmq-python-sdk``),
the three calls the door and its tests use, with the behaviour the door relies on:

- ``SendMessage`` (``queueName``, ``msgBody``): how a test puts a message, as MPS does;
- ``BatchReceiveMessage`` (``numOfMsg`` up to 16, ``pollingWaitSeconds``): a long poll that answers
  as soon as a message is visible, or ``code`` 7000 (no message) at the end of the wait; a received
  message is invisible for ``visibility_seconds`` and then visible again, with a new receipt handle
  and ``dequeueCount`` one higher, unless deleted;
- ``BatchDeleteMessage`` (``receiptHandle.1``...): deletes by current receipt handle; a stale or
  unknown handle, or one whose message id is in ``failing_deletes``, is reported in ``errorList``
  (a non-zero ``code``); ``fail_all_deletes`` answers every delete with an error, deleting none.

Every request is checked as CMQ checks it: the ``SecretId`` must be the configured one and the
``Signature`` the HMAC-SHA256 of the request (computed here independently of the client) with the
configured key, else ``code`` 4100 (authentication failed). ``longest_poll_seconds`` shortens the
long polls (a real queue waits up to 30 s), so that a test's empty round costs a second.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from tests.support.servers import serving

AUTH_FAILED, NO_MESSAGE, NO_QUEUE, BAD_HANDLE, DELETE_FAILED = 4100, 7000, 4440, 6000, 6020


@dataclass
class Stored:
    msg_id: str
    body: str
    enqueue_time: int
    visible_at: float = 0.0
    dequeue_count: int = 0
    first_dequeue_time: int = 0
    handle: str = ""


@dataclass
class CmqStandIn:
    """One queue behind a CMQ-like endpoint; its state is read and set directly by the tests."""

    secret_id: str
    secret_key: str = field(repr=False)
    queue: str = "mps-notify"
    visibility_seconds: float = 1.0
    longest_poll_seconds: float = 1.0
    fail_all_deletes: bool = False
    failing_deletes: set[str] = field(default_factory=set)  # message ids whose deletes fail
    messages: dict[str, Stored] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)  # every request's form, as received
    refused: int = 0  # requests refused for their signature or SecretId
    url: str = ""
    _lock: threading.Condition = field(default_factory=threading.Condition)

    # ---------------------------------------------------------------- what a test reads

    def waiting(self) -> int:
        """Messages still in the queue, visible or in flight."""
        with self._lock:
            return len(self.messages)

    def in_flight(self) -> int:
        """Messages received and neither deleted nor visible again yet."""
        with self._lock:
            now = time.monotonic()
            return sum(1 for stored in self.messages.values() if stored.dequeue_count and stored.visible_at > now)

    def actions(self) -> list[str]:
        with self._lock:
            return [request.get("Action", "") for request in self.requests]

    def put(self, body: str, enqueued_at: float | None = None) -> str:
        """A message on the queue (what ``SendMessage`` does), now or, for one that waited, at ``enqueued_at``."""
        with self._lock:
            stored = Stored(uuid.uuid4().hex, body, int(time.time() if enqueued_at is None else enqueued_at))
            self.messages[stored.msg_id] = stored
            self._lock.notify_all()
            return stored.msg_id

    # ---------------------------------------------------------------- CMQ's calls

    def answer(self, host: str, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.requests.append(dict(form))
        if not self.authentic(host, form):
            with self._lock:
                self.refused += 1
            return {"code": AUTH_FAILED, "message": "(100004)authentication failed", "requestId": _id()}
        if form.get("queueName") != self.queue:
            return {"code": NO_QUEUE, "message": "queue is not exist", "requestId": _id()}
        action = ACTIONS.get(form.get("Action", ""))
        if action is None:
            return {"code": 4000, "message": "unknown Action", "requestId": _id()}
        return {"requestId": _id()} | action(self, form)

    def authentic(self, host: str, form: dict[str, str]) -> bool:
        params = {name: value for name, value in form.items() if name != "Signature"}
        text = "POST" + host + "/v2/index.php?" + "&".join(f"{k}={params[k]}" for k in sorted(params))
        expected = base64.b64encode(hmac.new(self.secret_key.encode(), text.encode(), hashlib.sha256).digest()).decode()
        return (
            form.get("SecretId") == self.secret_id
            and form.get("SignatureMethod") == "HmacSHA256"
            and hmac.compare_digest(expected, form.get("Signature", ""))
        )

    def send_message(self, form: dict[str, str]) -> dict[str, Any]:
        return {"code": 0, "message": "", "msgId": self.put(form.get("msgBody", ""))}

    def batch_receive(self, form: dict[str, str]) -> dict[str, Any]:
        count = max(1, min(int(form.get("numOfMsg", "1")), 16))
        wait = min(float(form.get("pollingWaitSeconds", "0")), self.longest_poll_seconds)
        deadline = time.monotonic() + wait
        with self._lock:
            while True:
                now = time.monotonic()
                visible = [stored for stored in self.messages.values() if stored.visible_at <= now][:count]
                if visible or now >= deadline:
                    break
                self._lock.wait(min(deadline - now, 0.05))  # wakes for a put, or to see a timeout pass
            if not visible:
                return {"code": NO_MESSAGE, "message": "(10200)no message"}
            return {"code": 0, "message": "", "msgInfoList": [self._dequeue(stored, now) for stored in visible]}

    def _dequeue(self, stored: Stored, now: float) -> dict[str, Any]:
        stored.dequeue_count += 1
        stored.first_dequeue_time = stored.first_dequeue_time or int(time.time())
        stored.visible_at = now + self.visibility_seconds
        stored.handle = uuid.uuid4().hex
        return {
            "msgBody": stored.body,
            "msgId": stored.msg_id,
            "receiptHandle": stored.handle,
            "enqueueTime": stored.enqueue_time,
            "firstDequeueTime": stored.first_dequeue_time,
            "nextVisibleTime": int(time.time() + self.visibility_seconds),
            "dequeueCount": stored.dequeue_count,
        }

    def batch_delete(self, form: dict[str, str]) -> dict[str, Any]:
        handles = [value for name, value in sorted(form.items()) if name.startswith("receiptHandle.")]
        if self.fail_all_deletes:
            return {"code": DELETE_FAILED, "message": "(6020)internal error"}
        errors = []
        with self._lock:
            by_handle = {stored.handle: stored for stored in self.messages.values() if stored.handle}
            for handle in handles:
                stored = by_handle.get(handle)
                if stored is None or stored.msg_id in self.failing_deletes:
                    errors.append({"code": BAD_HANDLE, "message": "receipt handle is invalid", "receiptHandle": handle})
                else:
                    del self.messages[stored.msg_id]
        if errors:
            return {"code": BAD_HANDLE, "message": "some messages were not deleted", "errorList": errors}
        return {"code": 0, "message": ""}


ACTIONS = {
    "SendMessage": CmqStandIn.send_message,
    "BatchReceiveMessage": CmqStandIn.batch_receive,
    "BatchDeleteMessage": CmqStandIn.batch_delete,
}


def _id() -> str:
    return uuid.uuid4().hex[:16]


def _handler(standin: CmqStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
            if self.path != "/v2/index.php":
                body = b'{"code": 4000, "message": "not found"}'
            else:
                body = json.dumps(standin.answer(self.headers.get("Host", ""), form)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running(standin: CmqStandIn) -> Iterator[CmqStandIn]:
    """``standin`` served on a free local port (its ``url`` set) until the block ends."""
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin)), "cmq stand-in") as url:
        standin.url = url
        yield standin
