"""A real video for the browser tests, and a static server that lets chromium seek in it.

The task page plays an output from the URL the projection built (``MPS_CDN_DOMAINS`` maps the
output's bucket to this server), so the subtitle viewer's "click a cue, the player seeks" is
tried on a real file. ``http.server``'s ``SimpleHTTPRequestHandler`` answers every request with
the whole file and no ``Accept-Ranges``: chromium then treats an mp4 as not seekable (setting
``currentTime`` snaps back to 0). This server answers ``Range: bytes=a-b`` with 206 and the
slice, as a CDN does, and serves requests in threads (the browser opens several at once).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import serving

FFMPEG = shutil.which("ffmpeg")
RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def generated_video(path: Path, seconds: int = 4) -> Path:
    """An H.264 mp4 of ffmpeg's test pattern (320x240, 25 fps); skipped without ffmpeg, except on CI."""
    if FFMPEG is None:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg is not installed: `apt-get install ffmpeg`")
        pytest.skip("ffmpeg is not installed: `apt-get install ffmpeg`")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *(FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=320x240:rate=25"),
            *("-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)),
        ],
        check=True,
        timeout=60,
    )
    return path


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single byte ranges (206) and CORS-free, cache-free answers; quiet."""

    def send_head(self) -> Any:
        header = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        match = RANGE.match(header or "")
        if not match or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, last = match.groups()
        start = int(first) if first else max(size - int(last or 0), 0)
        end = min(int(last), size - 1) if first and last else size - 1
        if start >= size or start > end:
            self.send_error(416, "range not satisfiable")
            return None
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._remaining = end - start + 1
        return handle

    def copyfile(self, source: Any, outputfile: Any) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            super().copyfile(source, outputfile)
            return
        while remaining > 0:
            chunk = source.read(min(64 * 1024, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)

    def end_headers(self) -> None:
        if self.headers.get("Range") is None:
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) for the block; yields ``http://127.0.0.1:port``."""
    with serving(
        ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(directory))), "media"
    ) as url:
        yield url
