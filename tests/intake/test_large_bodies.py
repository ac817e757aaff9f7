"""Large bodies are bounded per web worker: beyond the cap on concurrent large bodies or on
their buffered bytes the answer is 503 with Retry-After, before the body is read, and
nothing is stored; junk is refused by the screen without decoding it in the worker.

A real ``serve``: the uploads are raw sockets left half-sent, as a slow or hostile client leaves them."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from mps_callback.app import warn_if_exposed
from mps_callback.config import Settings
from mps_callback.verify.signature import sign
from tests.support.db import query
from tests.support.service import InProcessService, Service, start_service

KEY = "large-key"


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Service]:
    service = start_service(
        f"sqlite:///{tmp_path / 'j.db'}",
        tmp_path,
        notify_keys=KEY,
        large_body_bytes="1024",
        large_bodies="2",
        large_body_budget_bytes="12000",
        body_timeout_seconds="20",
    )
    yield service
    service.stop()


def signed(task_id: str, padding: int = 0) -> bytes:
    expires = int(time.time()) + 600
    return orjson.dumps(
        {
            "NotificationType": "ProcessEof",
            "TaskId": task_id,
            "Pad": "x" * padding,
            "Timestamp": expires,
            "Sign": sign(expires, KEY),
        }
    )


def stalled_upload(service: Service, headers: bytes, first_bytes: bytes = b"{") -> socket.socket:
    """A request whose headers are sent and whose body stops after ``first_bytes``."""
    sock = socket.create_connection(("127.0.0.1", int(service.base_url.rsplit(":", 1)[1])))
    sock.sendall(b"POST /v1/mps/callback HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + first_bytes)
    return sock


def answer(sock: socket.socket) -> bytes:
    """The whole response (headers and JSON body), however the server split it into packets."""
    sock.settimeout(10)
    reply = b""
    while not reply.endswith(b"}") and (chunk := sock.recv(65536)):
        reply += chunk
    return reply


def rows(service: Service) -> int:
    return query(service.database_url, "SELECT COUNT(*) FROM notifications")[0][0]


@pytest.mark.process
def test_large_bodies_beyond_the_cap_get_503_with_retry_after_and_nothing_is_stored(capped: Service):
    held = [stalled_upload(capped, b"Content-Length: 5000\r\n") for _ in range(2)]  # both slots taken
    try:
        time.sleep(0.5)  # nothing to watch from outside: time for the server to read both sets of headers
        third = stalled_upload(capped, b"Content-Length: 5000\r\n", b"")
        reply = answer(third)
        assert reply.startswith(b"HTTP/1.1 503"), reply[:200]
        assert b"retry-after: 5" in reply.lower() and b'"busy"' not in reply  # the reason, not the code
        assert b"large bodies" in reply
        small = capped.post(signed("small-while-busy"))  # small bodies are not held up
        assert small.status_code == 200, small.text
    finally:
        for sock in held:
            sock.close()
    assert rows(capped) == 1  # only the small one


@pytest.mark.process
def test_buffered_bytes_beyond_the_budget_get_503_even_for_a_streamed_body(capped: Service):
    held = stalled_upload(capped, b"Content-Length: 9000\r\n")  # 9000 of the 12000 bytes
    try:
        time.sleep(0.5)  # nothing to watch from outside: time for the server to read the headers
        chunked = stalled_upload(capped, b"Transfer-Encoding: chunked\r\n", b"1000\r\n" + b" " * 4096 + b"\r\n")
        reply = answer(chunked)  # 4096 more crosses the threshold and the budget: refused while streaming
        assert reply.startswith(b"HTTP/1.1 503") and b"retry-after" in reply.lower(), reply[:200]
    finally:
        held.close()
    time.sleep(0.5)  # the closed upload gives its share back
    body = signed("large-after", padding=6000)
    response = capped.post(body)
    assert response.status_code == 200, response.text
    assert rows(capped) == 1


@pytest.mark.process
def test_large_junk_is_refused_by_the_screen_and_signed_large_bodies_are_kept(capped: Service):
    junk = b'{"EventType": "WorkflowTask", "Junk": [' + b",".join([b'[[{"a": [1]}]]'] * 400) + b"]}"
    response = capped.post(junk)
    assert response.status_code == 401 and "Sign" in response.json()["message"]
    assert capped.post(b"[" * 2000 + b"]" * 2000).status_code == 400
    assert capped.post(signed("large-signed", padding=5000)).status_code == 200
    assert rows(capped) == 1
    refusal = [line for line in capped.logs().splitlines() if '"unsigned"' in line or "Sign and Timestamp" in line]
    assert refusal, capped.logs()


def test_listening_beyond_loopback_without_tokens_is_warned_at_start(tmp_path: Path):
    everywhere = "0.0.0.0"  # noqa: S104 -- listening beyond loopback is what is tested
    with InProcessService(f"sqlite:///{tmp_path / 'j.db'}", tmp_path, host=everywhere) as service:
        logs = service.logs()
    assert "MPS_URL_TOKEN is empty while listening on 0.0.0.0" in logs
    assert "MPS_API_TOKEN is empty while listening on 0.0.0.0" in logs


@pytest.mark.parametrize(
    ("host", "tokens", "warned"),
    [
        ("127.0.0.1", {}, set()),
        ("::1", {}, set()),
        ("localhost", {}, set()),
        ("0.0.0.0", {}, {"MPS_URL_TOKEN", "MPS_API_TOKEN"}),  # noqa: S104 -- the exposed host under test
        ("10.0.0.5", {"url_token": "t"}, {"MPS_API_TOKEN"}),
        ("callbacks.example.com", {"url_token": "t", "api_token": "a"}, set()),
    ],
)
def test_exposure_warnings(caplog: pytest.LogCaptureFixture, host: str, tokens: dict[str, str], warned: set[str]):
    with caplog.at_level(logging.WARNING, logger="mps_callback"):
        warn_if_exposed(Settings(host=host, **tokens))
    assert {name for name in ("MPS_URL_TOKEN", "MPS_API_TOKEN") if name in caplog.text} == warned
