"""Slow uploads and many idle connections do not starve other requests."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.service import start_service

pytestmark = pytest.mark.process  # every test here starts a real process


def test_trickling_bodies_and_idle_connections_do_not_block_others(tmp_path: Path):
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path, body_timeout_seconds="2")
    port = int(service.base_url.rsplit(":", 1)[1])
    held: list[socket.socket] = []
    try:
        for index in range(300):  # half send headers slowly, half start a body and stall
            sock = socket.create_connection(("127.0.0.1", port))
            if index % 2:
                sock.sendall(b'POST /v1/mps/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"Event')
            else:
                sock.sendall(b"POST /v1/mps/callback HTTP/1.1\r\nHost: x\r\nX-Slow:")
            held.append(sock)
        started = time.monotonic()
        for number in range(20):
            body = {"NotificationType": "ProcessEof", "TaskId": f"fast-{number}"}
            response = httpx.post(service.base_url + "/v1/mps/callback", json=body, timeout=5)
            assert response.status_code == 200
        assert time.monotonic() - started < 5, "normal requests were starved"
        stalled = held[1]
        stalled.settimeout(5)
        answer = stalled.recv(4096)  # the stalled body is cut off after MPS_BODY_TIMEOUT_SECONDS
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    finally:
        for sock in held:
            sock.close()
        service.stop()
