"""Journal bodies and project them against a real database; dump projections comparably."""

from __future__ import annotations

import asyncio
import copy
import tempfile
from typing import Any

import orjson
import sqlalchemy as sa

from mps_callback.config import Settings
from mps_callback.intake.accept import Delivery, Intake
from mps_callback.journal.group_commit import GroupCommitJournal
from mps_callback.journal.spool import Spool
from mps_callback.project.projector import Projector
from mps_callback.store.engine import create_engine
from mps_callback.store.outbox import NO_OUTBOX, Outbox
from mps_callback.store.tables import outputs, segments, subtasks, tasks


async def ingest_and_project(
    url: str, bodies: list[dict[str, Any]], project: bool = True, batch_size: int = 200, outbox: Outbox = NO_OUTBOX
) -> None:
    """Journal ``bodies`` one after another (as MPS would send them), then project; ``outbox``: the delivery
    rows the sinks it names are owed, written as the journal and the projector write them."""
    engine = create_engine(url)
    journal = GroupCommitJournal(engine, Spool(tempfile.mkdtemp()), outbox=outbox)
    journal.start()
    try:
        intake = Intake(Settings(notify_keys=""), journal)
        for body in bodies:
            await intake.accept(orjson.dumps(body), Delivery("test"))
        await journal.close()
        if project:
            await Projector(engine, batch_size=batch_size, outbox=outbox).drain()
    finally:
        await engine.dispose()


def run_ingest(url: str, bodies: list[dict[str, Any]], **options: Any) -> None:
    asyncio.run(ingest_and_project(url, bodies, **options))


async def _dump(url: str) -> dict[str, list[tuple[bytes, ...]]]:
    """Everything a projection holds except what depends on arrival (times, row ids, journal ids, and the
    state keys, whose tie-break is the arrival time: see project/rank.py)."""
    skip = {"id", "first_received_at", "last_received_at", "finished_at", "notification_id", "state_key", "session_key"}
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            result = {}
            for table in (tasks, subtasks, outputs, segments):
                columns = [column for column in table.c if column.name not in skip]
                rows = await connection.execute(sa.select(*columns))
                result[table.name] = sorted(
                    tuple(orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in row) for row in rows
                )
            return result
    finally:
        await engine.dispose()


def dump(url: str) -> dict[str, list[tuple[bytes, ...]]]:
    return asyncio.run(_dump(url))


def processing_version(body: dict[str, Any], progress: int = 50) -> dict[str, Any]:
    """The same WorkflowTask notification as MPS sends it while the work is still running."""
    early = copy.deepcopy(body)
    event = early["WorkflowTaskEvent"]
    event["Status"] = "PROCESSING"
    for value in event.values():
        for item in value if isinstance(value, list) else []:
            for key, task in item.items():
                if isinstance(task, dict) and key.endswith("Task"):
                    task.update(Status="PROCESSING", Progress=progress, Output=None, Message="")
    return early


def live_series(task_id: str) -> list[dict[str, Any]]:
    """A live task's notifications: subtitle batches, a review finding, then ProcessEof."""

    def subtitle(i: int) -> dict[str, Any]:
        return {
            "NotificationType": "AiSmartSubtitleResult",
            "TaskId": task_id,
            "SessionContext": "user-7",
            "AiSmartSubtitleResultInfo": {
                "SmartSubtitleResult": [
                    {
                        "Text": f"line {i}",
                        "Trans": f"trans {i}",
                        "StartPTSTime": 2.0 * i,
                        "EndPTSTime": 2.0 * i + 1.5,
                        "SteadyState": True,
                    }
                ]
            },
        }

    review = {
        "NotificationType": "AiReviewResult",
        "TaskId": task_id,
        "AiReviewResultInfo": {
            "ResultSet": [
                {
                    "Type": "ImagePorn",
                    "ImagePornResultSet": [
                        {
                            "StartPtsTime": 3.0,
                            "EndPtsTime": 4.0,
                            "Confidence": 90,
                            "Suggestion": "block",
                            "Label": "porn",
                            "Url": "https://x.test/p.jpg",
                        }
                    ],
                }
            ]
        },
    }
    eof = {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0, "Message": "Success"}}
    return [subtitle(i) for i in range(4)] + [review, eof]
