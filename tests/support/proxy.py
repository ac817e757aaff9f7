"""Fault-injection tools: a TCP proxy that can be cut, and a load of distinct notifications."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import orjson

from tests.support.service import free_port


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to a database; ``cut()`` resets every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._cut = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut.is_set():
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    def cut(self) -> None:
        self._cut.set()

        def abort_all() -> None:
            for writer in list(self._writers):
                writer.transport.abort()

        self._loop.call_soon_threadsafe(abort_all)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@dataclass
class LoadResult:
    answers: dict[str, int] = field(default_factory=dict)  # TaskId -> status (0: no answer)
    spooled: set[str] = field(default_factory=set)

    def with_status(self, status: int) -> set[str]:
        return {task_id for task_id, code in self.answers.items() if code == status}


def run_load(
    base_url: str,
    seconds: float,
    prefix: str,
    threads: int = 8,
    events: list[tuple[float, Callable[[], None]]] | None = None,
) -> LoadResult:
    """POST distinct notifications from ``threads`` clients for ``seconds``; fire ``events`` at their offsets."""
    result = LoadResult()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    counter = iter(range(10**9))

    def client(worker: int) -> None:
        with httpx.Client(timeout=10) as session:
            while time.monotonic() < stop_at:
                with lock:
                    number = next(counter)
                task_id = f"{prefix}-{worker}-{number}"
                body = {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}}
                try:
                    response = session.post(base_url + "/v1/mps/callback", content=orjson.dumps(body))
                    status = response.status_code
                    spooled = status == 200 and response.json().get("spooled", False)
                except httpx.HTTPError:
                    status, spooled = 0, False
                    time.sleep(0.05)
                with lock:
                    result.answers[task_id] = status
                    if spooled:
                        result.spooled.add(task_id)

    started = time.monotonic()
    with ThreadPoolExecutor(threads + 1) as pool:
        futures = [pool.submit(client, worker) for worker in range(threads)]
        for offset, action in sorted(events or [], key=lambda event: event[0]):
            time.sleep(max(0.0, started + offset - time.monotonic()))
            action()
        for future in futures:
            future.result()
    return result
