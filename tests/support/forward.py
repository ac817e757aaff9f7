"""The sinks' test servers and values: the local brokers, a webhook receiver that verifies
Standard Webhooks signatures, a TCP proxy that cuts connections, and events to send."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook

from mps_callback.forward.event import Event, EventName
from tests.support.db import ON_CI
from tests.support.service import free_port

BROKERS = {"amqp": 5672, "nats": 4222, "redis": 6379, "mqtt": 1883}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_aGVsbG8gd29ybGQgdGhpcyBpcyBhbm90aGVy"
#: The password every "server down" URL carries: it must never show in a reason, a repr or a log line.
PASSWORD = "pa55-Sekr1t-word"


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need(kind: str) -> None:
    """Skip when the ``kind`` broker is not running here; fail on CI, where it must be."""
    port = BROKERS.get(kind)
    if port is None or reachable(port):
        return
    if ON_CI:
        pytest.fail(f"{kind} broker unreachable on CI (127.0.0.1:{port})")
    pytest.skip(f"{kind} broker unreachable on 127.0.0.1:{port}")


def closed_port() -> int:
    """A port nothing listens on (just freed)."""
    return free_port()


def make_event(
    type: EventName = "task.finished", task_id: str | None = "2600011633-WorkflowTask-abc123", **data: Any
) -> Event:
    return Event(
        id=f"evt_{uuid.uuid4().hex}",
        type=type,
        timestamp=datetime(2026, 11, 24, 11, 22, 19, 123456, tzinfo=UTC),
        task_id=task_id,
        sequence=3,
        kind="vod",
        event_type="WorkflowTask",
        data={"task_id": task_id, "status": "FINISH", "failed": False, **data},
    )


# ---------------------------------------------------------------- a TCP proxy that can cut connections


class Proxy:
    """Forwards 127.0.0.1:``port`` to ``target``; `cut` closes every connection it carries, as a network fault
    would; `down` also stops listening (the server is away: connections are refused) until `up`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self.accepted = 0  # connections taken: a reconnect after a cut shows here
        self.port = 0
        self.up()

    def up(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def down(self) -> None:
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept(), which close() alone would not
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
                self.accepted += 1
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, destination: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                destination.sendall(data)
        except OSError:
            pass
        for sock in (source, destination):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self.down()


# ---------------------------------------------------------------- a webhook receiver that verifies


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """A local HTTP server: records each POST, checks its Standard Webhooks signature, answers from `answers`."""

    secret: str = SECRET
    requests: list[Request] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # consumed one per request; 204 after
    port: int = 0

    def url(self, path: str = "/hooks/mps", *, port: int | None = None, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{port or self.port}{path}"

    @property
    def verified(self) -> list[dict[str, Any]]:
        return [orjson.loads(request.body) for request in self.requests if request.verified]


class _Listening(ThreadingHTTPServer):
    """A listen backlog for forwarders sending a batch at once (the standard library's 5 resets the rest)."""

    request_queue_size = 256


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A `Receiver` listening on a free port until the block ends."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                Webhook(state.secret).verify(body, headers)
                verified = True
            except Exception:
                verified = False
            state.requests.append(Request(self.path, headers, body, verified))
            status, extra = state.answers.pop(0) if state.answers else (204, {})
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Listening(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
