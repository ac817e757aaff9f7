"""The local spool: where notifications go when the database cannot take them.

Each spooled batch is one file, written to a temporary name, fsynced, renamed into place
and its directory fsynced, so a file either exists whole or not at all, even after a
``kill -9`` or a power cut. Every line carries a CRC32 of its JSON, so damage is found
line by line: a bad line is moved to ``quarantine/`` (and logged), never retried forever.
File names sort in arrival order and carry their record count, so the depth is known
from a directory listing.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

SUFFIX = ".spool"
_counter = itertools.count()


class Spool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.quarantine_directory = self.directory / "quarantine"

    def write(self, rows: list[dict[str, Any]]) -> Path:
        """Make ``rows`` durable on local disk; raises OSError (disk full, read-only) if it cannot."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_counter):06d}-{len(rows)}{SUFFIX}"
        temporary = self.directory / f".{name}.tmp"
        try:
            with open(temporary, "wb") as handle:
                handle.write(b"".join(encode_line(row) for row in rows))
                handle.flush()
                os.fsync(handle.fileno())
            final = self.directory / name
            os.rename(temporary, final)
            _fsync_directory(self.directory)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        return final

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(path for path in self.directory.iterdir() if path.name.endswith(SUFFIX))

    def depth(self) -> int:
        """How many notifications wait in the spool."""
        return sum(_count(path) for path in self.files())

    def read(self, path: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
        """The rows of one spool file, and the lines that failed their checksum or JSON."""
        rows, bad = [], []
        for line in path.read_bytes().splitlines():
            row = decode_line(line)
            if row is None:
                bad.append(line)
            else:
                rows.append(row)
        return rows, bad

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        _fsync_directory(self.directory)

    def quarantine(self, path: Path, lines: list[bytes], reason: str) -> Path:
        """Keep ``lines`` aside for an operator, with a log line saying why."""
        self.quarantine_directory.mkdir(parents=True, exist_ok=True)
        target = self.quarantine_directory / f"{path.name}.{time.time_ns()}"
        with open(target, "wb") as handle:
            handle.write(b"\n".join(lines) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_directory(self.quarantine_directory)
        log.error("spool records quarantined", extra={"file": target.name, "records": len(lines), "reason": reason})
        return target

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Whether this process may drain now: one drainer at a time across processes."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".drain.lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def encode_line(row: dict[str, Any]) -> bytes:
    payload = orjson.dumps(row)
    return b"%08x " % zlib.crc32(payload) + payload + b"\n"


def decode_line(line: bytes) -> dict[str, Any] | None:
    checksum, _, payload = line.partition(b" ")
    try:
        if int(checksum, 16) != zlib.crc32(payload):
            return None
        row = orjson.loads(payload)
        row["received_at"] = datetime.fromisoformat(row["received_at"])
        return row
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None


def _count(path: Path) -> int:
    try:
        return int(path.name.removesuffix(SUFFIX).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 1


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
