"""The local spool: where notifications go when the database cannot take them.

Each spooled batch is one file, written to a temporary name, fsynced, renamed into place
and its directory fsynced, so a file either exists whole or not at all, even after a
``kill -9`` or a power cut. Every line carries a CRC32 of its JSON, so damage is found
line by line. File names sort in arrival order and carry their write time and record
count, so depth and age are known from a directory listing.

Three places, so that one record never holds up the others:
- ``*.spool``: records waiting for the database, oldest first;
- ``held/``: a record that failed on its own while others went in, one per file, named
  by when it is due again and how many attempts it has had (back-off per record);
- ``quarantine/``: records set aside for an operator (damaged, refused for good, too
  large for the database), counted in metrics and ``/readyz``, put back by
  ``mps-callback spool requeue``.
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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

#: Spooled notifications are readable by this user only: they hold everything MPS sent.
FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
SUFFIX = ".spool"
QUARANTINE_SUFFIX = ".quarantined"
_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class Held:
    """A record waiting for its next attempt: ``attempts`` failures so far, due at ``due_ns``."""

    path: Path
    due_ns: int
    attempts: int
    spooled_ns: int


class Spool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.held_directory = self.directory / "held"
        self.quarantine_directory = self.directory / "quarantine"

    # ---------------------------------------------------------------- writing

    def write(self, rows: list[dict[str, Any]]) -> Path:
        """Make ``rows`` durable on local disk; raises OSError (disk full, read-only) or TypeError (a row
        that cannot be encoded) if it cannot, leaving nothing behind."""
        name = f"{time.time_ns():020d}-{_unique()}-{len(rows)}{SUFFIX}"
        return _write_durably(self.directory, name, [encode_line(row) for row in rows])

    def problem(self) -> str | None:
        """Why this spool cannot take a file now (not creatable, not a directory, not writable), or None.

        Creates the directory (0700) and a probe file, then removes it: the only sure test.
        """
        try:
            _make_directory(self.directory)
            probe = self.directory / f".probe-{_unique()}.tmp"
            os.close(_create(probe))
            probe.unlink()
        except OSError as error:
            return f"{type(error).__name__}: {error.strerror or error}"
        return None

    def hold(self, row: dict[str, Any], attempts: int, delay_seconds: float, spooled_ns: int) -> Path:
        """Keep one record aside until ``delay_seconds`` from now, with its attempt count."""
        due = time.time_ns() + int(delay_seconds * 1e9)
        name = f"{due:020d}-{attempts:03d}-{spooled_ns:020d}-{_unique()}-1{SUFFIX}"
        return _write_durably(self.held_directory, name, [encode_line(row)])

    def quarantine(self, lines: list[bytes], reason: str) -> Path:
        """Keep ``lines`` (encoded records, or damaged lines as found) aside for an operator."""
        name = f"{time.time_ns():020d}-{_unique()}-{len(lines)}{QUARANTINE_SUFFIX}"
        target = _write_durably(self.quarantine_directory, name, [line.rstrip(b"\n") + b"\n" for line in lines])
        log.error("spool records quarantined", extra={"file": name, "records": len(lines), "reason": reason})
        return target

    # ---------------------------------------------------------------- reading

    def files(self) -> list[Path]:
        """Spool files waiting for the database, oldest first."""
        return _listing(self.directory, SUFFIX)

    def held(self) -> list[Held]:
        """Held records, the soonest due first."""
        found = []
        for path in _listing(self.held_directory, SUFFIX):
            due, attempts, spooled = (int(part) for part in path.name.split("-")[:3])
            found.append(Held(path, due, attempts, spooled))
        return found

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

    def replace(self, path: Path, rows: list[dict[str, Any]]) -> Path | None:
        """Rewrite a spool file with only ``rows`` (same place in the order); None when none are left."""
        if not rows:
            self.remove(path)
            return None
        prefix = path.name.removesuffix(SUFFIX).rsplit("-", 1)[0]
        new = _write_durably(path.parent, f"{prefix}-{len(rows)}{SUFFIX}", [encode_line(row) for row in rows])
        if new != path:
            self.remove(path)
        return new

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        _fsync_directory(path.parent)

    # ---------------------------------------------------------------- what an operator sees

    def depth(self) -> int:
        """How many notifications wait to be journaled (held ones included)."""
        return sum(_count(path) for path in self.files()) + len(_listing(self.held_directory, SUFFIX))

    def quarantined(self) -> int:
        """How many records sit in quarantine."""
        return sum(_count(path) for path in _listing(self.quarantine_directory, QUARANTINE_SUFFIX))

    def oldest_seconds(self) -> float:
        """Age of the oldest record waiting (held ones included); 0 when none."""
        stamps = [written_ns(path) for path in self.files()[:1]] + [held.spooled_ns for held in self.held()]
        if not stamps:
            return 0.0
        return max((time.time_ns() - min(stamps)) / 1e9, 0.0)

    def requeue(self) -> tuple[int, int]:
        """Put quarantined records back in the spool; return (requeued, left because damaged)."""
        requeued = left = 0
        for path in _listing(self.quarantine_directory, QUARANTINE_SUFFIX):
            rows, damaged = self.read(path)
            if rows:
                self.write(rows)
                requeued += len(rows)
            if damaged:
                self.quarantine(damaged, "still damaged after requeue")
                left += len(damaged)
            self.remove(path)
        return requeued, left

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Whether this process may drain now: one drainer at a time across processes."""
        _make_directory(self.directory)
        # never through a symlink: a planted .drain.lock -> /etc/something must not be opened (or created)
        descriptor = os.open(self.directory / ".drain.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
        with os.fdopen(descriptor, "r+b") as handle:
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
    """One record as a spool line: CRC32 of the JSON, the JSON (times as ISO 8601), a newline."""
    received_at = row.get("received_at")
    if isinstance(received_at, datetime):
        row = {**row, "received_at": received_at.isoformat()}
    payload = orjson.dumps(row)
    return b"%08x " % zlib.crc32(payload) + payload + b"\n"


def decode_line(line: bytes) -> dict[str, Any] | None:
    checksum, _, payload = line.partition(b" ")
    try:
        if int(checksum, 16) != zlib.crc32(payload):
            return None
        row = orjson.loads(payload)
        row["received_at"] = datetime.fromisoformat(row["received_at"])
        return row  # type: ignore[no-any-return]
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None


def _write_durably(directory: Path, name: str, lines: list[bytes]) -> Path:
    """Temporary name (0600), fsync, rename, fsync the directory: the file exists whole or not at all.

    Whatever fails (disk full, a cancelled thread, a bug), the temporary file goes: an
    empty ``.tmp`` left per failed request would fill the directory under a flood.
    """
    _make_directory(directory)
    temporary = directory / f".{name}.tmp"
    try:
        with os.fdopen(_create(temporary), "wb") as handle:
            handle.write(b"".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        final = directory / name
        os.rename(temporary, final)
        _fsync_directory(directory)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return final


def _create(path: Path) -> int:
    """A new file only this user can read, whatever the umask; never through a symlink."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)  # the umask may have taken bits away, never added: make it exact
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _make_directory(directory: Path) -> None:
    """Create ``directory`` (and missing parents) 0700 whatever the umask; an existing one keeps its mode."""
    if directory.is_dir():
        return
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    os.chmod(directory, DIRECTORY_MODE)


def _listing(directory: Path, suffix: str) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.iterdir() if path.name.endswith(suffix) and not path.name.startswith("."))


def _unique() -> str:
    return f"{os.getpid()}-{next(_counter):06d}"


def _count(path: Path) -> int:
    try:
        return int(path.name.split(".")[0].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 1


def written_ns(path: Path) -> int:
    """When a spool file was written, from its name (its records arrived then)."""
    try:
        return int(path.name.split("-", 1)[0])
    except ValueError:
        return time.time_ns()


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
