"""Local HTTP servers for tests: one way to run a stand-in in a thread on a free port of 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import HTTPServer


@contextmanager
def serving(server: HTTPServer, name: str) -> Iterator[str]:
    """``server`` (bound to ``("127.0.0.1", 0)``) answering in a thread of its own until the block ends;
    yields its base URL, ``http://127.0.0.1:<port>``."""
    server.daemon_threads = True  # type: ignore[attr-defined]  # ThreadingHTTPServer's; harmless on others
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
