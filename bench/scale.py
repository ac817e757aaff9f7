"""``python -m bench.scale``: a year of data (issue 14, target 5), then the read paths a user hits.

The data set is generated straight into the real tables (``store/tables.py``, after the
migrations), not posted over HTTP: a million tasks through intake and the projector would take
hours and measure those instead. Per task: ~3 subtasks, ~2 outputs, ~10 segments (mostly
subtitle lines, as the smart-subtitle and ASR families project them), and one journal row in
``notifications``. The journal row is kept (small body) because three read paths touch the
journal: a live task's type is its latest NotificationType (``api.tasks.TASK_TYPE``), the
dashboard marks recovered tasks and asks for the newest ``projected_at``; without the rows those
lookups would hit an empty index and flatter the figures. It also gives a purge something to do.

Rows go in as multi-row INSERTs through SQLAlchemy Core (``insertmanyvalues`` also without
RETURNING, a few thousand rows per statement), a chunk of tasks at a time, each chunk one
transaction; the tables are then ANALYZEd, as a database a year old would be.

Then the app runs in this process (``create_app`` under its lifespan, driven through httpx's
ASGI transport: no socket, so a figure is the app and the database, not the loopback) and each
scenario is requested ``--requests`` times, one at a time, for p50/p99 against the targets:
API p99 under 50 ms, the dashboard's list under 200 ms.

A list query whose p99 misses its target gets its measured plan printed (EXPLAIN ANALYZE on
PostgreSQL, ANALYZE on MariaDB) under the table. ``--purge`` then runs ``retention.purge`` for the
oldest month while an open-loop ingest posts the typical notification (50/s), and reports the
ingest's p50/p99 before and during the purge.

``--backend`` picks MariaDB, PostgreSQL or both; each gets its own database
(``mps_bench_scale``), dropped and created again unless ``--reuse`` (measure a built set again;
after ``--purge`` it holds eleven months). ``--jobs`` processes build it (default 2).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from mps_callback.api import cursor as cursors
from mps_callback.api.tasks import is_common_type, task_conditions, task_select, text_condition, type_parts
from mps_callback.app import create_app
from mps_callback.config import Settings
from mps_callback.project.merge import subtask_id
from mps_callback.retention import purge
from mps_callback.store.engine import create_engine
from mps_callback.store.migrate import upgrade
from mps_callback.store.tables import notifications, outputs, segments, subtasks, tasks

SERVERS = {
    "mariadb": os.environ.get("MPS_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
    "postgresql": os.environ.get("MPS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432"),
}
#: The database each server gets for this bench (never another one: it is dropped first). The test suite's
#: smoke run names its own (``MPS_BENCH_SCALE_DATABASE``), so running the tests never drops a built set.
DATABASE = os.environ.get("MPS_BENCH_SCALE_DATABASE", "mps_bench_scale")
if not DATABASE.isidentifier() or not DATABASE.isascii():
    raise SystemExit(f"MPS_BENCH_SCALE_DATABASE must be a plain identifier, not {DATABASE!r}")
#: Where the server's maintenance connection goes to create and drop ours.
MAINTENANCE_DATABASE = {"mariadb": None, "postgresql": "postgres"}
API_P99_MS = 50.0
DASHBOARD_P99_MS = 200.0
#: Requests a read path gets even past its time budget (``--budget``): enough for a p99 to say "miss".
MIN_REQUESTS = 20
#: Tasks per transaction while building (x ~16 rows each).
CHUNK_TASKS = 2000
#: Rows per multi-row INSERT statement (SQLAlchemy splits further below PostgreSQL's bind limit).
ROWS_PER_STATEMENT = 2000
YEAR = timedelta(days=365)
APP_ID = 1250000000

# ---------------------------------------------------------------- what the generated year holds

#: (kind, EventType, weight): file tasks by EventType; live tasks have none.
TASK_KINDS: tuple[tuple[str, str | None, int], ...] = (
    ("vod", "WorkflowTask", 55),
    ("vod", "ScheduleTask", 15),
    ("vod", "BatchTask", 15),
    ("vod", "EditMediaTask", 5),
    ("live", None, 10),
)
#: A file task's subtasks: (group, family, segment kind or None, segments it carries, output kind or None).
VOD_SUBTASKS: tuple[tuple[str, str, str | None, int, str | None], ...] = (
    ("MediaProcess", "TranscodeTask", None, 0, "video"),
    ("SmartSubtitles", "AsrFullTextTask", "subtitle", 8, "subtitle"),
    ("AiAnalysis", "TagTask", "tag", 2, None),
)
#: A live stream's subtasks, grouped under the NotificationType that brought them (mode "append").
LIVE_SUBTASKS: tuple[tuple[str, str, str | None, int, str | None], ...] = (
    ("AiSmartSubtitleResult", "AiSmartSubtitleResult", "subtitle", 8, None),
    ("AiRecognitionResult", "AsrFullTextRecognition", "asr_word", 2, None),
    ("LiveRecordResult", "LiveRecordResult", "record_file", 0, "video"),
)
LIVE_NOTIFICATION_TYPES = ("AiSmartSubtitleResult", "AiRecognitionResult", "LiveRecordResult", "ProcessEof")
#: The words subtitle lines and input names are made of (a "contains" search finds them).
WORDS = (
    "lecture",
    "keynote",
    "interview",
    "product",
    "launch",
    "webinar",
    "match",
    "highlights",
    "news",
    "weather",
    "cooking",
    "travel",
    "concert",
    "review",
    "tutorial",
    "unboxing",
    "podcast",
    "trailer",
    "sermon",
    "briefing",
    "quarterly",
    "earnings",
    "demo",
    "course",
    "lesson",
    "episode",
    "season",
    "finale",
    "opening",
    "closing",
    "panel",
    "workshop",
    "summit",
    "gala",
    "festival",
)
_LINE_RNG = random.Random(1)
#: Subtitle lines, drawn once: building a line per segment was a third of the generator's time.
LINES = tuple(" ".join(_LINE_RNG.choices(WORDS, k=_LINE_RNG.randint(4, 10))) for _ in range(4096))
FAILED_SHARE = 0.04
PROCESSING_SHARE = 0.03


@dataclass
class Year:
    """The generated rows of one chunk of tasks, table by table."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    subtasks: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)

    def tables(self) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
        yield from (
            (tasks, self.tasks),
            (subtasks, self.subtasks),
            (outputs, self.outputs),
            (segments, self.segments),
            (notifications, self.notifications),
        )


def task_id_of(number: int, kind: str, event_type: str | None) -> str:
    """A TaskId shaped as MPS's (``<appid>-<Type>-<hex>``), unique by ``number``; a live one as a stream's."""
    middle = event_type or "LiveProcess"
    return f"{APP_ID + number % 7}-{middle}-{number * 2654435761 % 2**64:016x}{number:08d}t"


def session_of(number: int) -> str | None:
    """Two tasks in three carry a SessionId; a session spans a few tasks."""
    return None if number % 3 == 2 else f"sess-{number // 4:09d}"


def received_at(number: int, total: int, end: datetime) -> datetime:
    """Tasks spread evenly over the year before ``end``, newest last, with some jitter."""
    spread = YEAR.total_seconds() / max(total, 1)
    return end - YEAR + timedelta(seconds=number * spread + (number * 7919 % 1000) / 1000 * spread)


def generate(first: int, count: int, total: int, end: datetime, rng: random.Random) -> Year:
    """Rows for tasks ``first`` to ``first + count``: their subtasks, outputs, segments and journal row."""
    year = Year()
    kinds = [(kind, event) for kind, event, _ in TASK_KINDS]
    weights = [weight for *_, weight in TASK_KINDS]
    for number in range(first, first + count):
        kind, event_type = rng.choices(kinds, weights)[0]
        _task(year, number, kind, event_type, received_at(number, total, end), rng, end)
    return year


def _task(
    year: Year, number: int, kind: str, event_type: str | None, at: datetime, rng: random.Random, end: datetime
) -> None:
    task_id = task_id_of(number, kind, event_type)
    failed = rng.random() < FAILED_SHARE
    recent = end - at < timedelta(days=2)
    status = "PROCESSING" if (recent and rng.random() < 0.5) or rng.random() < PROCESSING_SHARE else "FINISH"
    words = rng.choices(WORDS, k=2)
    name = f"{words[0]}-{words[1]}-{number:08d}.mp4"
    bucket = f"media-{APP_ID + number % 7}"
    location = f"cos://{bucket}/input/{at:%Y/%m}/{name}" if kind == "vod" else f"rtmp://live.example.com/app/{name}"
    session = session_of(number)
    last = at + timedelta(seconds=30 + number % 900)
    dedupe = f"{number:064x}"
    year.tasks.append(
        {
            "task_id": task_id,
            "kind": kind,
            "event_type": event_type,
            "status": status,
            "failed": failed,
            "err_code": 70000 + number % 50 if failed else 0,
            "message": "Internal Error" if failed else "SUCCESS",
            "input": {"Type": "COS", "CosInputInfo": {"Bucket": bucket, "Region": "ap-guangzhou", "Object": name}},
            "input_location": location,
            "video_name": None,
            "media_metadata": {"Duration": 60 + number % 3600, "Width": 1920, "Height": 1080}
            if kind == "vod"
            else None,
            "session_id": session,
            "session_context": f'{{"order":{number}}}' if session else None,
            "extra": None,
            "first_received_at": at,
            "last_received_at": last,
            "finished_at": last if status == "FINISH" else None,
            "notification_count": 1 + number % 4,
            "state_key": f"0003:{dedupe}",
            "session_key": f"0003:{dedupe}",
            "event_sequence": 1 + number % 4,
        }
    )
    plan = LIVE_SUBTASKS if kind == "live" else VOD_SUBTASKS
    for index, spec in enumerate(plan):
        _subtask(year, task_id, kind, spec, failed and index == 0, dedupe, number, rng)
    notification_type = LIVE_NOTIFICATION_TYPES[number % len(LIVE_NOTIFICATION_TYPES)] if kind == "live" else None
    year.notifications.append(_journal_row(number, task_id, kind, event_type, notification_type, session, at, dedupe))


def _subtask(
    year: Year,
    task_id: str,
    kind: str,
    spec: tuple[str, str, str | None, int, str | None],
    failed: bool,
    dedupe: str,
    number: int,
    rng: random.Random,
) -> None:
    group, family, segment_kind, segment_count, output_kind = spec
    live = kind == "live"
    key = f"{group}/{family}/-" if live else f"{group}/{family}/{100010 if output_kind else '-'}/1"
    sid = subtask_id(task_id, key)
    year.subtasks.append(
        {
            "id": sid,
            "task_id": task_id,
            "key": key,
            "group_name": group,
            "family": family,
            "type": group if live else None,
            "mode": "append" if live else "snapshot",
            "status": "FAIL" if failed else "SUCCESS",
            "err_code": 70000 if failed else 0,
            "err_code_ext": "InternalError" if failed else "",
            "message": "Internal Error" if failed else "SUCCESS",
            "progress": 100,
            "definition": 100010 if output_kind else None,
            "begin_process_time": None,
            "finish_time": None,
            "input": {"Definition": 100010} if output_kind else None,
            "output": None,
            "state_key": f"0003:{dedupe}",
            "notification_id": number + 1,
        }
    )
    if output_kind:
        _output(year, task_id, sid, output_kind, dedupe, number)
    if output_kind == "subtitle":
        _output(year, task_id, sid, "subtitle", dedupe, number, seq=1)
    for seq in range(max(0, segment_count + rng.randint(-2, 2)) if segment_count else 0):
        year.segments.append(_segment(task_id, sid, segment_kind or "other", seq, dedupe, live, rng))


def _output(year: Year, task_id: str, sid: str, kind: str, dedupe: str, number: int, seq: int = 0) -> None:
    suffix = {"video": "mp4", "subtitle": "vtt"}[kind]
    bucket = f"output-{APP_ID + number % 7}"
    path = f"/output/{number:08d}/out-{seq}.{suffix}"
    year.outputs.append(
        {
            "task_id": task_id,
            "subtask_id": sid,
            "source": dedupe,
            "seq": seq,
            "field": f"Output.Path[{seq}]",
            "kind": kind,
            "storage": "cos",
            "bucket": bucket,
            "region": "ap-guangzhou",
            "path": path,
            "url": f"https://{bucket}.cos.ap-guangzhou.myqcloud.com{path}",
            "file_id": None,
            "role": "main" if kind == "video" else "subtitle",
            "priority": 1,
        }
    )


def _segment(
    task_id: str, sid: str, kind: str, seq: int, dedupe: str, live: bool, rng: random.Random
) -> dict[str, Any]:
    start = seq * 4.0 + rng.random()
    line = LINES[rng.randrange(len(LINES))]
    subtitle = kind == "subtitle"
    return {
        "task_id": task_id,
        "subtask_id": sid,
        "source": dedupe,
        "seq": seq,
        "kind": kind,
        "start_s": start,
        "end_s": start + 3.5,
        "text": line if subtitle or kind == "asr_word" else None,
        "translation": line.upper() if subtitle else None,
        "title": None,
        "summary": None,
        "label": line.split(" ", 1)[0] if kind == "tag" else None,
        "confidence": round(0.5 + rng.random() / 2, 3),
        "keywords": None,
        "url": None,
        "extra": {"SteadyState": True} if live and subtitle else None,
    }


def _journal_row(
    number: int,
    task_id: str,
    kind: str,
    event_type: str | None,
    notification_type: str | None,
    session: str | None,
    at: datetime,
    dedupe: str,
) -> dict[str, Any]:
    """The task's notification as the journal keeps it; a small body (the bench reads no body)."""
    body: dict[str, Any] = (
        {"EventType": event_type, "TaskId": task_id} if kind == "vod" else {"NotificationType": notification_type}
    )
    return {
        "received_at": at,
        "kind": kind,
        "event_type": event_type,
        "notification_type": notification_type,
        "task_id": task_id,
        "session_id": session,
        "session_context": None,
        "body": body,
        "signature": "verified",
        "confirmation": None,
        "channel": "http",
        "wrapper": "none",
        "message_id": None,
        "delivery": {"remote": "10.0.0.1"},
        "dedupe_key": dedupe,
        "batch_id": f"{number // CHUNK_TASKS:032x}",
        "projected_at": at + timedelta(milliseconds=200),
        "projection_error": None,
        "projection_attempts": 1,
        "next_attempt_at": None,
        "body_bytes": 1200,
        "projection_failed_at": None,
        "replayed": False,
    }


# ---------------------------------------------------------------- building it


def database_url(backend: str) -> str:
    return str(make_url(SERVERS[backend]).set(database=DATABASE).render_as_string(hide_password=False))


async def recreate_database(backend: str) -> None:
    """Drop ``mps_bench_scale`` and create it empty (no other database is touched)."""
    url = make_url(SERVERS[backend]).set(database=MAINTENANCE_DATABASE[backend])
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    charset = " CHARACTER SET utf8mb4" if backend == "mariadb" else ""
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {DATABASE}")
            await connection.exec_driver_sql(f"CREATE DATABASE {DATABASE}{charset}")
    finally:
        await engine.dispose()


@dataclass
class Build:
    """How the build went: rows per table and the seconds it took."""

    rows: dict[str, int]
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.rows.values())


async def build(url: str, total: int, end: datetime, seed: int, jobs: int) -> Build:
    """Generate ``total`` tasks with everything they hold in ``jobs`` processes; then ANALYZE.

    Generating rows and binding them (SQLAlchemy's parameter processing) costs as much CPU as
    the database's inserts: processes, each writing every ``jobs``-th chunk of tasks, keep both
    busy. A chunk's rows come from a generator seeded by the chunk, so the set is the same
    whatever ``jobs``.
    """
    started = time.perf_counter()
    starts = list(range(0, total, CHUNK_TASKS))
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(jobs) as pool:
        parts = [
            loop.run_in_executor(pool, write_chunks, url, starts[job::jobs], total, end, seed) for job in range(jobs)
        ]
        rows: Counter[str] = Counter()
        for part in await asyncio.gather(*parts):
            rows.update(part)
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            await analyze(connection)
    finally:
        await engine.dispose()
    return Build(dict(rows), time.perf_counter() - started)


def write_chunks(url: str, starts: list[int], total: int, end: datetime, seed: int) -> dict[str, int]:
    """One process's share of the build: the chunks of tasks beginning at ``starts``."""
    return asyncio.run(_write_chunks(url, starts, total, end, seed))


async def _write_chunks(url: str, starts: list[int], total: int, end: datetime, seed: int) -> dict[str, int]:
    engine = create_engine(url, pool_size=1)
    engine.sync_engine.dialect.use_insertmanyvalues_wo_returning = True  # one multi-row INSERT per page of rows
    engine.sync_engine.dialect.insertmanyvalues_page_size = ROWS_PER_STATEMENT
    rows: Counter[str] = Counter()
    started = time.perf_counter()
    try:
        for done, first in enumerate(starts, 1):
            year = generate(first, min(CHUNK_TASKS, total - first), total, end, random.Random(seed * 1_000_003 + first))
            async with engine.begin() as connection:
                for table, chunk in year.tables():
                    await connection.execute(table.insert(), chunk)
                    rows[table.name] += len(chunk)
            if first == starts[0] or done % 25 == 0:
                _progress(done * CHUNK_TASKS, len(starts) * CHUNK_TASKS, started)
    finally:
        await engine.dispose()
    return dict(rows)


def _progress(done: int, total: int, started: float) -> None:
    """A line on stderr now and then: a million tasks take minutes."""
    elapsed = time.perf_counter() - started
    print(f"  [{os.getpid()}] {done:,}/{total:,} tasks, {elapsed:.0f} s", file=sys.stderr, flush=True)


async def analyze(connection: AsyncConnection) -> None:
    """Fresh statistics, as autovacuum / InnoDB's persistent stats would have after a year."""
    names = ", ".join(table.name for table in (tasks, subtasks, outputs, segments, notifications))
    if connection.dialect.name == "postgresql":
        await connection.exec_driver_sql(f"ANALYZE {names}")
    else:
        await connection.exec_driver_sql(f"ANALYZE TABLE {names}")
    await connection.commit()


# ---------------------------------------------------------------- measuring the read paths


@dataclass(frozen=True)
class Scenario:
    """One read path: its name, whether it is the dashboard's, and the URL of its ``n``-th request."""

    name: str
    path: Callable[[int], str]
    dashboard: bool = False

    @property
    def target_ms(self) -> float:
        return DASHBOARD_P99_MS if self.dashboard else API_P99_MS


@dataclass(frozen=True)
class Sample:
    """What the scenarios pick from: task ids of each shape, a deep cursor, a week's window."""

    any_tasks: list[str]
    subtitled: list[str]
    sessions: list[str]
    deep_cursor: str
    since: str
    until: str


async def sample(url: str, total: int, end: datetime, seed: int) -> Sample:
    """Ids spread over the year (not just the newest), and the cursor of the task half-way down the list."""
    rng = random.Random(seed + 1)
    numbers = [rng.randrange(total) for _ in range(200)]
    ids = [task_id for number in numbers for task_id in task_id_shapes(number)]
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            found = (await connection.execute(sa.select(tasks.c.task_id).where(tasks.c.task_id.in_(ids)))).scalars()
            any_tasks = sorted(found)
            subtitled = list(
                (
                    await connection.execute(
                        sa.select(segments.c.task_id)
                        .where(segments.c.task_id.in_(any_tasks), segments.c.kind == "subtitle")
                        .distinct()
                    )
                ).scalars()
            )
            middle = (
                await connection.execute(
                    sa.select(tasks.c.first_received_at, tasks.c.task_id)
                    .order_by(tasks.c.first_received_at.desc(), tasks.c.task_id.desc())
                    .offset(total // 2)
                    .limit(1)
                )
            ).one()
    finally:
        await engine.dispose()
    sessions = [session for number in numbers if (session := session_of(number))]
    if not any_tasks or not subtitled:
        raise SystemExit(f"{DATABASE} holds none of the sampled tasks: --reuse needs the --tasks it was built with")
    week_start = end - YEAR / 2
    return Sample(
        any_tasks=any_tasks,
        subtitled=subtitled,
        sessions=sessions,
        deep_cursor=cursors.encode("tasks", middle.first_received_at, middle.task_id),
        since=f"{week_start:%Y-%m-%dT%H:%M:%S}",
        until=f"{week_start + timedelta(days=7):%Y-%m-%dT%H:%M:%S}",
    )


def task_id_shapes(number: int) -> list[str]:
    """The TaskIds ``number`` may have got: its kind was a random draw (the query keeps the one stored)."""
    return [task_id_of(number, kind, event) for kind, event, _ in TASK_KINDS]


def scenarios(s: Sample) -> list[Scenario]:
    """The read paths, each a list of URLs cycled through (different tasks, so no single cached row)."""

    def each(values: Sequence[str], template: str) -> Callable[[int], str]:
        return lambda n: template.format(values[n % len(values)])

    def fixed(path: str) -> Callable[[int], str]:
        return lambda n: path

    return [
        Scenario("list, first page", fixed("/v1/tasks")),
        Scenario("list, page half-way (cursor)", fixed(f"/v1/tasks?cursor={s.deep_cursor}")),
        Scenario("status=PROCESSING", fixed("/v1/tasks?status=PROCESSING")),
        Scenario("status=FINISH", fixed("/v1/tasks?status=FINISH")),
        Scenario("status=failed", fixed("/v1/tasks?status=failed")),
        Scenario("kind=live", fixed("/v1/tasks?kind=live")),
        Scenario("type=WorkflowTask", fixed("/v1/tasks?type=WorkflowTask")),
        Scenario("type=AiSmartSubtitleResult (live)", fixed("/v1/tasks?type=AiSmartSubtitleResult")),
        Scenario("event_type=ScheduleTask", fixed("/v1/tasks?event_type=ScheduleTask")),
        Scenario("since/until (a week)", fixed(f"/v1/tasks?since={s.since}&until={s.until}")),
        Scenario("status=failed + kind=vod + week", fixed(f"/v1/tasks?status=failed&kind=vod&since={s.since}")),
        Scenario("q=<TaskId>&match=exact", each(s.any_tasks, "/v1/tasks?q={}&match=exact")),
        Scenario("q=<SessionId>&match=exact", each(s.sessions, "/v1/tasks?q={}&match=exact")),
        Scenario("q=<TaskId> (contains, the default)", each(s.any_tasks, "/v1/tasks?q={}")),
        Scenario("q=keynote (contains)", fixed("/v1/tasks?q=keynote")),
        Scenario("detail /v1/tasks/{id}", each(s.any_tasks, "/v1/tasks/{}")),
        Scenario("segments /v1/tasks/{id}/segments", each(s.any_tasks, "/v1/tasks/{}/segments")),
        Scenario("subtitles ?format=vtt", each(s.subtitled, "/v1/tasks/{}/subtitles?format=vtt")),
        Scenario("/ui/", fixed("/ui/"), dashboard=True),
        Scenario("/ui/?status=failed", fixed("/ui/?status=failed"), dashboard=True),
        Scenario("/ui/?type=WorkflowTask&kind=vod", fixed("/ui/?type=WorkflowTask&kind=vod"), dashboard=True),
        Scenario("/ui/?q=<TaskId> (exact)", each(s.any_tasks, "/ui/?q={}"), dashboard=True),
        Scenario("/ui/?q=keynote&match=contains", fixed("/ui/?q=keynote&match=contains"), dashboard=True),
    ]


@dataclass(frozen=True)
class Timing:
    scenario: Scenario
    requests: int
    p50_ms: float
    p99_ms: float
    errors: int
    first_error: str


async def measure(url: str, chosen: list[Scenario], requests: int, budget: float) -> list[Timing]:
    """Each scenario ``requests`` times in turn, after a few unmeasured ones (pool, caches, compiled SQL)."""
    with tempfile.TemporaryDirectory(prefix="mps-scale-") as spool:
        settings = Settings(_env_file=None, database_url=url, spool_dir=spool, host="127.0.0.1")
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=60) as manager:  # type: ignore[arg-type]
            transport = httpx.ASGITransport(manager.app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://scale.test", timeout=60) as client:
                return [await _time(client, scenario, requests, budget) for scenario in chosen]


async def _time(client: httpx.AsyncClient, scenario: Scenario, requests: int, budget: float) -> Timing:
    """``requests`` timed GETs, or fewer (at least :data:`MIN_REQUESTS`) once ``budget`` seconds are spent.

    A full-scan query at a million tasks takes seconds: 200 of them would hold the run for many
    minutes to confirm a miss that 20 already show.
    """
    for n in range(3):
        await client.get(scenario.path(n))
    took: list[float] = []
    errors, first_error = 0, ""
    deadline = time.perf_counter() + budget
    for n in range(requests):
        if n >= MIN_REQUESTS and time.perf_counter() > deadline:
            break
        started = time.perf_counter()
        response = await client.get(scenario.path(n))
        took.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            errors += 1
            first_error = first_error or f"{response.status_code} {scenario.path(n)}: {response.text[:200]}"
    return Timing(scenario, len(took), statistics.median(took), percentile(took, 0.99), errors, first_error)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# ---------------------------------------------------------------- the report


def build_table(backend: str, result: Build) -> str:
    lines = [f"### {backend}: build", "", "| table | rows |", "|---|---:|"]
    lines += [f"| {name} | {count:,} |" for name, count in result.rows.items()]
    rate = result.total / result.seconds if result.seconds else 0.0
    lines += [f"| **all** | **{result.total:,}** in {result.seconds:.1f} s = **{rate:,.0f} rows/s** |", ""]
    return "\n".join(lines)


def timing_table(backend: str, tasks_count: int, requests: int, timings: list[Timing]) -> str:
    lines = [
        f"### {backend}: {tasks_count:,} tasks, up to {requests} requests each (in-process, sequential)",
        "",
        "| read path | requests | p50 ms | p99 ms | target p99 | errors | |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for t in timings:
        miss = t.p99_ms >= t.scenario.target_ms or t.errors
        flag = f"**MISS** ({t.p99_ms / t.scenario.target_ms:.1f}x)" if miss else "ok"
        target = f"< {t.scenario.target_ms:.0f}"
        figures = f"{t.requests} | {t.p50_ms:.1f} | {t.p99_ms:.1f} | {target} | {t.errors}"
        lines.append(f"| {t.scenario.name} | {figures} | {flag} |")
    lines += [f"\n{t.scenario.name}: {t.first_error}" for t in timings if t.first_error]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- retention purge under ingest

#: The typical notification the ingest posts (bench/material), unsigned: the bench sets no NotifyKey.
TYPICAL_BODY = Path(__file__).parent / "material" / "workflow_finish.json.tpl"
#: How long ingest runs alone before the purge starts: its p99 without a purge, for comparison.
BASELINE_SECONDS = 5.0


@dataclass(frozen=True)
class Purge:
    removed: dict[str, int]
    seconds: float
    before: list[float]
    during: list[float]
    errors: int


async def purge_under_ingest(url: str, days: int, rate: float) -> Purge:
    """Post notifications at ``rate``/s (open loop) while ``retention.purge`` forgets what is older than ``days``."""
    with tempfile.TemporaryDirectory(prefix="mps-scale-") as spool:
        app = create_app(Settings(_env_file=None, database_url=url, spool_dir=spool, host="127.0.0.1"))
        async with LifespanManager(app, startup_timeout=60) as manager:  # type: ignore[arg-type]
            transport = httpx.ASGITransport(manager.app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://scale.test", timeout=60) as client:
                return await _purge_while_posting(client, url, days, rate)


async def _purge_while_posting(client: httpx.AsyncClient, url: str, days: int, rate: float) -> Purge:
    template = TYPICAL_BODY.read_text()
    timings: list[tuple[float, float, int]] = []  # (sent at, ms, status)
    stop = asyncio.Event()

    async def post(number: int) -> None:
        body = template.replace("__TASKID__", f"scale-ingest-{os.getpid()}-{number}")
        body = body.replace("__TS__", str(int(time.time()))).replace("__SIGN__", "")
        started = time.perf_counter()
        response = await client.post("/v1/mps/callback", content=body.encode())
        timings.append((started, (time.perf_counter() - started) * 1000, response.status_code))

    async def ingest() -> None:
        sent: set[asyncio.Task[None]] = set()
        number, begun = 0, time.perf_counter()
        while not stop.is_set():
            task = asyncio.create_task(post(number))
            sent.add(task)
            task.add_done_callback(sent.discard)
            number += 1
            await asyncio.sleep(max(0.0, begun + number / rate - time.perf_counter()))
        await asyncio.gather(*sent)

    posting = asyncio.create_task(ingest())
    await asyncio.sleep(BASELINE_SECONDS)
    engine = create_engine(url, pool_size=2)
    purge_started = time.perf_counter()
    try:
        removed = await purge(engine, days)
    finally:
        purge_ended = time.perf_counter()
        stop.set()
        await posting
        await engine.dispose()
    before = [ms for at, ms, _ in timings if at < purge_started]
    during = [ms for at, ms, _ in timings if purge_started <= at < purge_ended]
    errors = sum(1 for *_, status in timings if status != 200)
    return Purge(removed, purge_ended - purge_started, before, during, errors)


def purge_table(backend: str, days: int, rate: float, result: Purge) -> str:
    def figures(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} | {percentile(values, 0.99):.1f}" if values else "- | -"

    removed = ", ".join(f"{count:,} {name}" for name, count in result.removed.items())
    return "\n".join(
        [
            f"### {backend}: retention purge of the oldest month (MPS_RETENTION_DAYS={days}) under {rate:g}/s ingest",
            "",
            f"Purge: {result.seconds:.1f} s, removed {removed}; ingest errors (non-200): {result.errors}",
            "",
            "| ingest | posts | p50 ms | p99 ms |",
            "|---|---:|---:|---:|",
            f"| before the purge ({BASELINE_SECONDS:g} s) | {len(result.before)} | {figures(result.before)} |",
            f"| during the purge | {len(result.during)} | {figures(result.during)} |",
            "",
        ]
    )


# ---------------------------------------------------------------- why a list missed


class Explain(Executable, ClauseElement):
    """The measured plan of a query: PostgreSQL's ``EXPLAIN (ANALYZE, BUFFERS)``, MariaDB's ``ANALYZE`` (r_rows)."""

    inherit_cache = False

    def __init__(self, statement: sa.Select[Any]) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _explain_postgresql(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (ANALYZE, BUFFERS) " + compiler.process(element.statement, **kw)


@compiles(Explain)
def _explain_mariadb(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "ANALYZE " + compiler.process(element.statement, **kw)


async def explain_list(url: str, scenario: Scenario) -> str:
    """The plan of the task list's query for the scenario's first URL (the API's own SQL, ``api.tasks``)."""
    params = dict(parse_qsl(urlsplit(scenario.path(0)).query))
    instants = {
        name: datetime.fromisoformat(params[name]).replace(tzinfo=UTC) for name in ("since", "until") if name in params
    }
    conditions = task_conditions(
        status=params.get("status"),
        kind=params.get("kind"),
        event_type=params.get("event_type"),
        **instants,
    )
    text = text_condition(params.get("q"), "exact" if params.get("match") == "exact" else "contains")
    conditions += [text] if text is not None else []
    engine = create_engine(url, pool_size=1)
    try:
        common = await is_common_type(engine, params.get("type"))  # as the API chooses
        query = task_select(conditions, 50, params.get("cursor"), type_parts(params.get("type"), common))
        async with engine.connect() as connection:
            result = await connection.execute(Explain(query))
            header, plan = list(result.keys()), result.all()
    finally:
        await engine.dispose()
    lines = [" | ".join(map(str, row)) for row in plan]
    if len(header) > 1:  # MariaDB's table of steps; PostgreSQL's is one column of text
        lines.insert(0, " | ".join(header))
    return f"#### plan of {scenario.name} ({scenario.path(0)})\n\n```\n" + "\n".join(lines) + "\n```\n"


# ---------------------------------------------------------------- what the figures depend on

#: The server's version, its cache for table pages, and the size of the set on disk (data and indexes).
SERVER_NOTES = {
    "postgresql": (
        "SELECT version() AS version, current_setting('shared_buffers') AS shared_buffers,"
        " pg_size_pretty(pg_database_size(current_database())) AS on_disk"
    ),
    "mysql": (
        "SELECT version() AS version, CONCAT(@@innodb_buffer_pool_size DIV 1048576, ' MB') AS innodb_buffer_pool_size,"
        " CONCAT(SUM(data_length + index_length) DIV 1048576, ' MB') AS on_disk"
        " FROM information_schema.tables WHERE table_schema = DATABASE()"
    ),
}


async def server_notes(url: str) -> str:
    """One line: a set larger than the server's page cache reads from disk, which the figures then include."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            row = (await connection.exec_driver_sql(SERVER_NOTES[connection.dialect.name])).mappings().one()
    finally:
        await engine.dispose()
    return "Server: " + "; ".join(f"{name} {value}" for name, value in row.items()) + "\n"


# ---------------------------------------------------------------- the command


async def run_backend(backend: str, args: argparse.Namespace) -> None:
    url = database_url(backend)
    end = datetime.now(UTC).replace(microsecond=0)
    if not args.reuse:
        await recreate_database(backend)
        await asyncio.to_thread(upgrade, url)
        result = await build(url, args.tasks, end, args.seed, args.jobs)
        print(build_table(backend, result), flush=True)
    else:
        end = await newest_task(url)
    print(await server_notes(url), flush=True)
    chosen = [s for s in scenarios(await sample(url, args.tasks, end, args.seed)) if _picked(s, args.only)]
    timings = await measure(url, chosen, args.requests, args.budget)
    print(timing_table(backend, args.tasks, args.requests, timings), flush=True)
    for timing in timings:
        if timing.p99_ms >= timing.scenario.target_ms and timing.scenario.path(0).startswith("/v1/tasks?"):
            print(await explain_list(url, timing.scenario), flush=True)
    if args.purge:
        days = (datetime.now(UTC) - await oldest_task(url)).days - 30  # the oldest month left is past retention
        print(purge_table(backend, days, args.ingest_rate, await purge_under_ingest(url, days, args.ingest_rate)))


async def oldest_task(url: str) -> datetime:
    """When the oldest task left arrived (a month of an earlier run's set may have been purged already)."""
    oldest = await _arrival(url, sa.func.min)
    return (oldest or datetime.now(UTC)).replace(tzinfo=UTC)  # the columns hold UTC without an offset


async def newest_task(url: str) -> datetime:
    """The year's end of a set built earlier (``--reuse``): when its newest task arrived."""
    newest = await _arrival(url, sa.func.max)
    if newest is None:
        raise SystemExit(f"--reuse: {DATABASE} holds no tasks; build it first")
    return datetime(newest.year, newest.month, newest.day, tzinfo=UTC) + timedelta(days=1)


async def _arrival(url: str, pick: Any) -> datetime | None:
    """``pick`` (``sa.func.min`` or ``max``) of the tasks' first arrivals."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            value: datetime | None = (await connection.execute(sa.select(pick(tasks.c.first_received_at)))).scalar_one()
            return value
    finally:
        await engine.dispose()


def _picked(scenario: Scenario, only: str | None) -> bool:
    return only is None or only.lower() in scenario.name.lower()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks to generate (default 1,000,000)")
    parser.add_argument("--backend", choices=("mariadb", "postgresql", "both"), default="both")
    parser.add_argument("--requests", type=int, default=200, help="requests per read path (default 200)")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per read path before it stops early (30)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--jobs", type=int, default=2, help="processes generating and inserting rows (default 2)")
    parser.add_argument("--reuse", action="store_true", help=f"measure the {DATABASE} built by an earlier run")
    parser.add_argument("--only", help="measure only the read paths whose name contains this")
    parser.add_argument("--purge", action="store_true", help="then purge the oldest month under light ingest")
    parser.add_argument("--ingest-rate", type=float, default=50.0, help="notifications/s during the purge (50)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.getLogger("asyncmy").setLevel(logging.ERROR)
    backends = ("mariadb", "postgresql") if args.backend == "both" else (args.backend,)
    for backend in backends:
        asyncio.run(run_backend(backend, args))


if __name__ == "__main__":
    main()
