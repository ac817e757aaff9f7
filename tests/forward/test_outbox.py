"""The outbox rows: written with the journal row or the projection that caused them, for the sinks that want them."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from mps_callback import runtime
from mps_callback.api.tasks import get_task
from mps_callback.config import Settings
from mps_callback.forward.config import ENVIRONMENT_VARIABLE, parse
from mps_callback.forward.forwarder import outbox_of
from mps_callback.intake.accept import Delivery, Intake
from mps_callback.journal.drain import drain_spool
from mps_callback.journal.group_commit import GroupCommitJournal
from mps_callback.journal.spool import Spool
from mps_callback.project.projector import Projector
from mps_callback.project.reproject import reset_tasks
from mps_callback.store.engine import create_engine
from mps_callback.store.outbox import NO_OUTBOX, Outbox
from mps_callback.store.tables import deliveries, notifications, tasks
from tests.support.bodies import journal_row, load_fixture
from tests.support.cli import cli
from tests.support.db import query, refuse_inserts, run
from tests.support.forward import SECRET
from tests.support.projection import processing_version

SUBTITLES = "vod/WorkflowTask-SmartSubtitles-AsrFullTextTask.json"


def sinks(*tables: dict[str, Any]) -> Outbox:
    """The outbox of these ``[[sink]]`` tables, checked as MPS_FORWARD_CONFIG would be."""
    return outbox_of(parse({"sink": list(tables)}))


def webhook(name: str = "app", **filters: Any) -> dict[str, Any]:
    return {"name": name, "url": "http://127.0.0.1:9/hooks", "secret": SECRET, **filters}


async def journal(url: str, outbox: Outbox, bodies: list[dict[str, Any]]) -> list[bool]:
    """Journal ``bodies`` through the group commit, as the intake does; whether each was a duplicate."""
    engine = create_engine(url)
    journal = GroupCommitJournal(engine, Spool(tempfile.mkdtemp()), outbox=outbox)
    journal.start()
    try:
        intake = Intake(Settings(notify_keys=""), journal)
        return [(await intake.accept(orjson.dumps(body), Delivery("test"))).receipt.duplicate for body in bodies]
    finally:
        await journal.close()
        await engine.dispose()


async def project(url: str, outbox: Outbox) -> None:
    engine = create_engine(url)
    try:
        await Projector(engine, outbox=outbox).drain()
    finally:
        await engine.dispose()


def owed(url: str) -> list[Any]:
    return query(
        url,
        sa.select(
            deliveries.c.sink,
            deliveries.c.event,
            deliveries.c.sequence,
            deliveries.c.task_id,
            deliveries.c.kind,
            deliveries.c.mps_type,
            deliveries.c.status,
        ).order_by(deliveries.c.id),
    )


def test_a_new_notification_owes_each_sink_that_wants_it_one_notification_received(database_url: str):
    body = load_fixture(SUBTITLES)
    task_id = body["WorkflowTaskEvent"]["TaskId"]
    outbox = sinks(webhook("app"), webhook("ops", events=["task.failed"]))

    assert run(journal(database_url, outbox, [body, body])) == [False, True]
    assert run(journal(database_url, outbox, [body])) == [True]  # a retry by MPS later: a duplicate too

    (notification_id,) = query(database_url, "SELECT id FROM notifications")[0]
    assert owed(database_url) == [
        ("app", "notification.received", notification_id, task_id, "vod", "WorkflowTask", "pending")
    ]
    (event_id, data, notification) = query(database_url, "SELECT event_id, data, notification_id FROM deliveries")[0]
    assert event_id.startswith("evt_") and len(event_id) == 36
    assert data is None and notification == notification_id  # rendered from the journal when sent


def test_without_sinks_nothing_is_owed(database_url: str):
    run(journal(database_url, NO_OUTBOX, [load_fixture(SUBTITLES)]))
    run(project(database_url, NO_OUTBOX))
    assert owed(database_url) == []
    assert query(database_url, "SELECT event_sequence FROM tasks") == [(0,)]


def test_a_sink_added_later_gets_only_new_events(database_url: str):
    first, second = journal_body("first-task"), journal_body("second-task")
    run(journal(database_url, sinks(webhook("app")), [first]))
    run(journal(database_url, sinks(webhook("app"), webhook("late")), [first, second]))
    assert [(sink, task) for sink, _, _, task, *_ in owed(database_url)] == [
        ("app", "first-task"),
        ("app", "second-task"),
        ("late", "second-task"),
    ]


def test_a_spooled_notification_owes_its_event_when_the_drain_journals_it(database_url: str, tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    spool.write([journal_row("spooled-task")])

    async def drain() -> int:
        engine = create_engine(database_url)
        try:
            return await drain_spool(spool, engine, outbox=sinks(webhook("app")))
        finally:
            await engine.dispose()

    assert run(drain()) == 1
    assert [(sink, event, task) for sink, event, _, task, *_ in owed(database_url)] == [
        ("app", "notification.received", "spooled-task")
    ]


def test_a_finished_task_owes_updated_then_finished_in_sequence_with_the_task_as_the_api_shows_it(database_url: str):
    body = load_fixture(SUBTITLES)
    task_id = body["WorkflowTaskEvent"]["TaskId"]
    outbox = sinks(webhook("app", events=["task.updated", "task.finished", "task.failed"]))

    run(journal(database_url, outbox, [processing_version(body)]))
    run(project(database_url, outbox))
    run(journal(database_url, outbox, [body]))
    run(project(database_url, outbox))

    assert [(event, sequence) for _, event, sequence, *_ in owed(database_url)] == [
        ("task.updated", 1),
        ("task.updated", 2),
        ("task.finished", 3),
    ]
    assert query(database_url, sa.select(tasks.c.event_sequence)) == [(3,)]
    finished = data(database_url, deliveries.c.event == "task.finished")
    assert finished == api_task(database_url, task_id)
    assert finished["status"] == "FINISH" and not finished["failed"]
    subtitle_urls = [
        output["url"] for output in finished["outputs"] if output["url"] and output["url"].endswith(".vtt")
    ]
    assert subtitle_urls and all(url.startswith("https://mps-out-1250000000.cos.") for url in subtitle_urls)
    first = data(database_url, deliveries.c.sequence == 1)
    assert first["status"] == "PROCESSING"  # each event carries the task as it was then


def test_a_task_that_fails_owes_task_failed_and_not_task_finished(database_url: str):
    body = copy.deepcopy(load_fixture(SUBTITLES))
    body["WorkflowTaskEvent"].update(ErrCode=30010, Message="the input could not be read")
    outbox = sinks(
        webhook("app"), webhook("vod-only-live", kinds=["live"]), webhook("schedules", event_types=["ScheduleTask"])
    )

    run(journal(database_url, outbox, [body]))
    run(project(database_url, outbox))

    assert [(sink, event, sequence) for sink, event, sequence, *_ in owed(database_url)][1:] == [
        ("app", "task.updated", 1),
        ("app", "task.failed", 2),
    ]


def test_a_projection_that_fails_owes_nothing(database_url: str):
    """The events are written in the projection's transaction: rolled back with it, never invented."""
    outbox = sinks(webhook("app", events=["task.updated"]))
    refuse_inserts(database_url, "poison", table="deliveries")
    run(journal(database_url, outbox, [journal_body("healthy"), journal_body("poison")]))
    run(project(database_url, outbox))
    assert [(event, task) for _, event, _, task, *_ in owed(database_url)] == [("task.updated", "healthy")]
    assert query(database_url, sa.select(tasks.c.task_id)) == [("healthy",)]


def test_the_runtime_reads_the_same_variable_as_the_forward_configuration():
    assert runtime.FORWARD_CONFIG_ENV == ENVIRONMENT_VARIABLE


def data(url: str, where: Any) -> Any:
    """One delivery's stored data, decoded (raw SQL would give SQLite's and MariaDB's JSON as text)."""
    return query(url, sa.select(deliveries.c.data).where(where))[0][0]


def journal_body(task_id: str) -> dict[str, Any]:
    return {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}}


def api_task(url: str, task_id: str) -> dict[str, Any]:
    """``GET /v1/tasks/{task_id}`` as its JSON body."""

    async def get() -> dict[str, Any]:
        engine = create_engine(url)
        try:
            detail = await get_task(engine, task_id)
            return orjson.loads(detail.model_dump_json())
        finally:
            await engine.dispose()

    return run(get())


def rebuild(url: str, task_id: str, outbox: Outbox, arriving: tuple[dict[str, Any], ...] = ()) -> None:
    """``reproject --task``: reset the task, journal ``arriving`` meanwhile, then project with ``outbox``."""

    async def go() -> None:
        engine = create_engine(url)
        try:
            await reset_tasks(engine, [task_id])
        finally:
            await engine.dispose()
        await journal(url, outbox, list(arriving))
        await project(url, outbox)

    run(go())


def test_a_rebuilt_task_announces_nothing_again_and_keeps_its_sequence(database_url: str):
    """reproject deletes a task's rows and projects its journal again: what it announced before is not news."""
    body = load_fixture(SUBTITLES)
    task_id = body["WorkflowTaskEvent"]["TaskId"]
    outbox = sinks(webhook("app", events=["task.updated", "task.finished"]))
    run(journal(database_url, outbox, [processing_version(body), body]))
    run(project(database_url, outbox))
    before = owed(database_url)
    assert [(event, sequence) for _, event, sequence, *_ in before] == [("task.updated", 1), ("task.finished", 2)]

    rebuild(database_url, task_id, outbox)
    assert owed(database_url) == before
    assert query(database_url, sa.select(tasks.c.event_sequence, tasks.c.status)) == [(2, "FINISH")]
    assert query(database_url, sa.select(sa.func.count()).where(notifications.c.replayed)) == [(0,)]


def test_news_arriving_during_a_rebuild_counts_on_and_is_not_finished_twice(database_url: str):
    """A notification journaled while its task is rebuilt is news: task.updated after the last sequence sent,
    and no second task.finished for a task that was announced finished."""
    body = load_fixture(SUBTITLES)
    task_id = body["WorkflowTaskEvent"]["TaskId"]
    outbox = sinks(webhook("app", events=["task.updated", "task.finished"]))
    run(journal(database_url, outbox, [processing_version(body), body]))
    run(project(database_url, outbox))
    later = copy.deepcopy(body)
    later["WorkflowTaskEvent"]["Message"] = "sent again by MPS"

    rebuild(database_url, task_id, outbox, arriving=(later,))
    tasks_events = [(event, sequence) for _, event, sequence, *_ in owed(database_url) if event.startswith("task.")]
    assert tasks_events == [("task.updated", 1), ("task.finished", 2), ("task.updated", 3)]
    assert query(database_url, sa.select(tasks.c.event_sequence)) == [(3,)]


def test_a_rebuild_replays_only_what_was_projected(database_url: str):
    """A notification never projected (still pending, or parked) is news when the rebuild projects it."""
    body = load_fixture(SUBTITLES)
    task_id = body["WorkflowTaskEvent"]["TaskId"]
    run(journal(database_url, NO_OUTBOX, [processing_version(body)]))
    run(project(database_url, NO_OUTBOX))
    run(journal(database_url, NO_OUTBOX, [body]))

    async def reset() -> None:
        engine = create_engine(database_url)
        try:
            await reset_tasks(engine, [task_id])
        finally:
            await engine.dispose()

    run(reset())
    assert query(database_url, sa.select(notifications.c.replayed).order_by(notifications.c.id)) == [(True,), (False,)]
    outbox = sinks(webhook("app", events=["task.updated", "task.finished"]))
    run(project(database_url, outbox))
    assert [(event, sequence) for _, event, sequence, *_ in owed(database_url)] == [
        ("task.updated", 1),
        ("task.finished", 2),
    ]


def test_the_reproject_command_owes_the_events_of_news_it_projects(database_url: str, tmp_path: Path):
    """``mps-callback reproject`` projects with the sinks' outbox: a notification it projects for the first time
    (here one journaled after the last projection) owes its events like any other; the replayed one owes none."""
    body = load_fixture(SUBTITLES)
    task_id = body["WorkflowTaskEvent"]["TaskId"]
    config = tmp_path / "forward.toml"
    config.write_text(f'[[sink]]\nname = "app"\nurl = "http://127.0.0.1:9/hooks"\nsecret = "{SECRET}"\n')
    outbox = sinks(webhook("app"))
    run(journal(database_url, outbox, [processing_version(body)]))
    run(project(database_url, outbox))
    run(journal(database_url, outbox, [body]))

    done = cli(
        "reproject", "--task", task_id, env={"MPS_DATABASE_URL": database_url, ENVIRONMENT_VARIABLE: str(config)}
    )
    assert done.returncode == 0, done.stderr
    task_events = [(event, sequence) for _, event, sequence, *_ in owed(database_url) if event.startswith("task.")]
    assert task_events == [("task.updated", 1), ("task.updated", 2), ("task.finished", 3)]


def test_the_reproject_command_stops_on_a_bad_forward_configuration(tmp_path: Path):
    config = tmp_path / "forward.toml"
    config.write_text('[[sink]]\nname = "app"\nurl = "gopher://nowhere"\n')
    done = cli(
        "reproject", env={"MPS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db", ENVIRONMENT_VARIABLE: str(config)}
    )
    assert done.returncode != 0 and done.stderr.count("\n") == 1 and "app" in done.stderr
