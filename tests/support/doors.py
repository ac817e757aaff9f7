"""Queue doors in tests: the journal they write to, and a list standing in for a queue.

`ListQueue` is a stand-in transport for testing ``intake/doors.py``'s rules (acknowledge only
what is durable, leave the rest to come again) apart from any one transport; every real door
(CMQ through its stand-in server, SQS through moto) is tested against its own server.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from mps_callback.config import Settings
from mps_callback.intake.accept import Delivery, Intake
from mps_callback.intake.doors import Message
from mps_callback.journal.group_commit import GroupCommitJournal
from mps_callback.journal.spool import Spool
from mps_callback.store.engine import create_engine


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
async def door_intake(url: str, spool_dir: Path | None = None, **settings: Any) -> AsyncIterator[Intake]:
    """An ``Intake`` over a group-commit journal on ``url`` (a spool in a new temporary directory by default)."""
    engine = create_engine(url)
    journal = GroupCommitJournal(engine, Spool(spool_dir or Path(tempfile.mkdtemp())), journal_budget_seconds(settings))
    journal.start()
    intake = Intake(Settings(_env_file=None, **settings), journal)
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
