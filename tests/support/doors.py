"""Queue doors in tests: the journal they write to, and a list standing in for a queue.

`ListQueue` is a stand-in transport for testing ``intake/doors.py``'s rules (acknowledge only
what is durable, leave the rest to come again) apart from any one transport; every real door
(CMQ through its stand-in server, SQS through moto) is tested against its own server.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
import sqlalchemy as sa

from mps_callback.config import Settings
from mps_callback.intake.accept import Delivery, Intake, Journal
from mps_callback.intake.doors import DOORS, Message, Queue, pump
from mps_callback.journal.group_commit import GroupCommitJournal
from mps_callback.journal.spool import Spool
from mps_callback.send import stamp
from mps_callback.store.engine import create_engine
from mps_callback.store.migrate import upgrade
from mps_callback.store.tables import notifications
from tests.support.bodies import load_fixture
from tests.support.db import query, run


@dataclass
class ListQueue:
    """A queue of bodies: ``receive`` hands over up to ``batch`` not in flight; unacknowledged ones come back
    on the next receive (as after a visibility timeout of zero)."""

    name: str = "list"
    batch: int = 10
    bodies: list[bytes] = field(default_factory=list)
    queued_at: list[datetime] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)
    receives: int = 0
    fail_receives: int = 0  # the next this many receives raise, as a transport that is away

    def put(self, body: dict[str, Any] | bytes, queued_at: datetime | None = None) -> None:
        """Queue ``body``, now or (to stand for a message that waited) at ``queued_at``."""
        self.bodies.append(body if isinstance(body, bytes) else orjson.dumps(body))
        self.queued_at.append(queued_at or datetime.now(UTC))

    async def receive(self) -> Sequence[Message]:
        self.receives += 1
        if self.fail_receives:
            self.fail_receives -= 1
            raise ConnectionError("the queue is away")
        waiting = [number for number in range(len(self.bodies)) if number not in self.acknowledged][: self.batch]
        return [
            Message(
                self.bodies[number],
                Delivery(
                    self.name,
                    headers={"message_id": f"msg-{number}", "receive_count": str(self.receives)},
                    sent_at=self.queued_at[number],
                ),
                number,
            )
            for number in waiting
        ]

    async def acknowledge(self, handles: Sequence[Any]) -> None:
        self.acknowledged += list(handles)

    async def close(self) -> None:
        pass

    @property
    def waiting(self) -> int:
        return len(self.bodies) - len(self.acknowledged)


@asynccontextmanager
async def door_intake(
    url: str,
    spool_dir: Path | None = None,
    wrap: Callable[[GroupCommitJournal], Journal] = lambda journal: journal,
    **settings: Any,
) -> AsyncIterator[Intake]:
    """An ``Intake`` over a group-commit journal on ``url`` (a spool in a new temporary directory by default);
    ``wrap`` puts something between them (a journal that is slow, say)."""
    engine = create_engine(url)
    journal = GroupCommitJournal(engine, Spool(spool_dir or Path(tempfile.mkdtemp())), journal_budget_seconds(settings))
    journal.start()
    intake = Intake(Settings(_env_file=None, **settings), wrap(journal))
    try:
        yield intake
    finally:
        await journal.close()
        intake.close()
        await engine.dispose()


def journal_budget_seconds(settings: dict[str, Any]) -> float:
    return float(settings.pop("journal_budget_seconds", 2.0))


# ---------------------------------------------------------------- the shared suite's view of a door


class DoorHarness(Protocol):
    """A real transport behind a door, as ``tests/intake/test_door_suite.py`` drives it (one per door).

    ``settings`` are the ``Settings`` keyword arguments that configure the door (``cmq_queue=...``),
    ``environment`` the variables its credentials come from; ``visibility_seconds`` how soon a
    message received and not acknowledged comes back.
    """

    name: str
    settings: dict[str, Any]
    environment: dict[str, str]
    visibility_seconds: float

    def put(self, body: bytes) -> None:
        """Put one message on the queue, as MPS would."""
        ...

    def waiting(self) -> int:
        """Messages still in the queue, visible or in flight."""
        ...


# ---------------------------------------------------------------- a real door, round by round

TRANSCODE = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")
EOF_BODY = load_fixture("examples/doc-live-ProcessEof.json")


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def rounds(door: DoorHarness, url: str, count: int = 1, spool_dir: Path | None = None, **settings: Any) -> list[Any]:
    """``count`` pump rounds of the door's real queue into ``url``; what each did."""

    async def go() -> list[Any]:
        with environment(door.environment):
            configured = Settings(_env_file=None, **door.settings)
            [entry] = [each for each in DOORS if each.name == door.name]
            queue: Queue = entry.open(configured)
            try:
                async with door_intake(url, spool_dir, **settings) as intake:
                    return [await pump(queue, intake) for _ in range(count)]
            finally:
                await queue.close()

    return run(go())


def signed(body: dict[str, Any], key: str) -> bytes:
    """The notification as MPS puts it on a queue: signed with a fresh Timestamp, JSON text."""
    return orjson.dumps(stamp(body, key))


def journaled(url: str) -> int:
    return int(query(url, sa.select(sa.func.count()).select_from(notifications))[0][0])


def sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/door.db"
    upgrade(url)
    return url
