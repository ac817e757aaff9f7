"""The dashboard's task list at scale: every list query and filter is planned on an index, on every backend.

20,000 generated tasks (SQL inserts, with the skew of real use: most tasks finished file tasks
of two EventTypes, a few live ones, a few failures) and fresh statistics make the planners
choose as they would at a million rows: a sequential scan of ``tasks`` would be chosen here
if an index were missing. Each case EXPLAINs the very query the page runs (the page's own
builders, not a copy of their SQL) and fails, showing the plan, when ``tasks`` is read without
an index. Run with ``-s`` to see every plan.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from mps_callback.api import cursor as cursors
from mps_callback.api.tasks import task_select, within_window
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import subtasks, tasks
from mps_callback.ui.pages import tasks as tasks_page
from mps_callback.ui.pages.tasks import (
    STATUSES,
    TaskFilters,
    newest_change_select,
    parse_filters,
    status_count_select,
    subtask_count_select,
    window_end_select,
)
from tests.support.db import run

ROWS = 20_000
START = datetime(2026, 1, 1, tzinfo=UTC)
#: Every EventType with its share of the file tasks (the rare one is what an index must find fast).
EVENT_TYPES = (("WorkflowTask", 14), ("ScheduleTask", 4), ("EditMediaTask", 1), ("LiveStreamProcessTask", 1))


def task_row(number: int) -> dict[str, Any]:
    """Task ``number``: a minute after the previous one; one in 20 live, one in 10 still running, one in 20 failed."""
    live = number % 20 == 7
    weights = [event_type for event_type, weight in EVENT_TYPES for _ in range(weight)]
    event_type = None if live else weights[number % len(weights)]
    received = START + timedelta(minutes=number)
    running = number % 10 == 3
    return {
        "task_id": f"2400002-{'live' if live else event_type}-{number:08d}",
        "kind": "live" if live else "vod",
        "event_type": event_type,
        "status": "PROCESSING" if running else "FINISH",
        "failed": number % 20 == 11,
        "input_location": f"cos://bucket-125/in/video-{number}.mp4",
        "video_name": f"video-{number}.mp4",
        "session_id": f"session-{number}",
        "session_context": json.dumps({"user": number % 500}),
        "first_received_at": received,
        "last_received_at": received + timedelta(seconds=30),
        "finished_at": None if running else received + timedelta(seconds=30),
        "notification_count": 2,
        "state_key": f"1:{number}",
        "session_key": f"1:{number}",
    }


def subtask_rows(number: int) -> list[dict[str, Any]]:
    """Live tasks get their NotificationType as a subtask group (what the type filter looks for); others two steps."""
    task = task_row(number)
    groups = ("AiSmartSubtitleResult", "ProcessEof") if task["kind"] == "live" else ("MediaProcess", "AiAnalysis")
    return [
        {
            "id": f"{number:08d}{index}",
            "task_id": task["task_id"],
            "key": f"{group}/{index}",
            "group_name": group,
            "family": group,
            "mode": "list",
            "status": "FAIL" if task["failed"] and index == 0 else "SUCCESS",
            "state_key": f"1:{number}",
            "notification_id": number,
        }
        for index, group in enumerate(groups)
    ]


async def fill(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for first in range(0, ROWS, 2_000):
                numbers = range(first, first + 2_000)
                await connection.execute(tasks.insert(), [task_row(number) for number in numbers])
                await connection.execute(subtasks.insert(), [row for n in numbers for row in subtask_rows(n)])
        async with engine.begin() as connection:
            for statement in ANALYZE[make_url(url).get_backend_name()]:
                await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


ANALYZE = {
    "sqlite": ["ANALYZE"],
    "mysql": ["ANALYZE TABLE tasks", "ANALYZE TABLE subtasks"],
    "postgresql": ["ANALYZE tasks", "ANALYZE subtasks"],
}


@pytest.fixture(scope="module")
def filled(module_database_url: str) -> str:
    run(fill(module_database_url))
    return module_database_url


# ---------------------------------------------------------------- EXPLAIN, as each backend says it


class Explain(Executable, ClauseElement):
    """``EXPLAIN <query>`` with the query's own bound parameters (SQLAlchemy's compiler recipe)."""

    inherit_cache = False

    def __init__(self, prefix: str, query: sa.Select[Any]) -> None:
        self.prefix = prefix
        self.query = query


@compiles(Explain)
def _explain(element: Explain, compiler: Any, **options: Any) -> str:
    return f"{element.prefix} {compiler.process(element.query, **options)}"


PREFIX = {"sqlite": "EXPLAIN QUERY PLAN", "mysql": "EXPLAIN FORMAT=JSON", "postgresql": "EXPLAIN (FORMAT JSON)"}


#: The tables a plan must not read whole: the tasks, and the subtasks the type filter looks into.
SCANNED = ("tasks", "subtasks")


@dataclass
class Plan:
    text: str
    full_scans: list[str]  # how ``tasks`` or ``subtasks`` is read without an index, if it is
    indexes: set[str]  # the indexes the query reads
    stopped_by_limit: bool = False  # a scan of ``tasks`` the LIMIT stops (PostgreSQL's choice for a common status)


def explain(url: str, query: sa.Select[Any]) -> Plan:
    backend = make_url(url).get_backend_name()

    async def go() -> list[Any]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return list(await connection.execute(Explain(PREFIX[backend], query)))
        finally:
            await engine.dispose()

    rows = run(go())
    return READERS[backend](rows)


def _sqlite_plan(rows: list[Any]) -> Plan:
    details = [str(row[-1]) for row in rows]
    on_tasks = [detail for detail in details if detail.split(" ")[1:2] in (["tasks"], ["subtasks"])]
    full = [detail for detail in on_tasks if detail.startswith("SCAN") and "INDEX" not in detail]
    indexes = {detail.split(" INDEX ")[1].split(" ")[0] for detail in details if " INDEX " in detail}
    return Plan("\n".join(details), full, indexes)


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every object of a JSON plan, however nested."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from _nodes(child)


def _plan_nodes(node: dict[str, Any], parent: dict[str, Any] | None = None) -> Iterator[tuple[dict[str, Any], Any]]:
    """Each node of a PostgreSQL plan with its parent node."""
    yield node, parent
    for child in node.get("Plans", []):
        yield from _plan_nodes(child, node)


def _postgres_plan(rows: list[Any]) -> Plan:
    """A Seq Scan right under a Limit, expected to match more rows than the limit, stops early (a count of a
    status most tasks have): no full scan. Under a Sort, or matching fewer rows than the limit, it reads all."""
    document = rows[0][0] if not isinstance(rows[0][0], str) else json.loads(rows[0][0])
    scans = [
        (node, parent)
        for node, parent in _plan_nodes(document[0]["Plan"])
        if node.get("Relation Name") in SCANNED and node["Node Type"] == "Seq Scan"
    ]
    stopped = [
        node
        for node, parent in scans
        if parent and parent["Node Type"] == "Limit" and node["Plan Rows"] > parent["Plan Rows"]
    ]
    full = [f"Seq Scan ({node['Plan Rows']} rows)" for node, _ in scans if node not in stopped]
    indexes = {str(node["Index Name"]) for node in _nodes(document) if "Index Name" in node}
    return Plan(json.dumps(document, indent=1), full, indexes, bool(stopped))


def _mariadb_plan(rows: list[Any]) -> Plan:
    document = json.loads(rows[0][0])
    on_tasks = [node for node in _nodes(document) if node.get("table_name") in SCANNED]
    full = [str(node.get("access_type")) for node in on_tasks if node.get("access_type") == "ALL"]
    indexes = {str(node["key"]) for node in _nodes(document) if isinstance(node.get("key"), str)}
    return Plan(json.dumps(document, indent=1), full, indexes)


READERS = {"sqlite": _sqlite_plan, "mysql": _mariadb_plan, "postgresql": _postgres_plan}


# ---------------------------------------------------------------- the cases: the page's queries


def filters(query: str) -> TaskFilters:
    return parse_filters([tuple(pair.split("=", 1)) for pair in query.split("&") if pair])  # type: ignore[misc]


MIDDLE = START + timedelta(minutes=ROWS // 2)
MIDDLE_CURSOR = cursors.encode("tasks", MIDDLE, f"2400002-WorkflowTask-{ROWS // 2:08d}")
LIST_CASES = {
    "plain list": "",
    "status PROCESSING": "status=PROCESSING",
    "status FINISH": "status=FINISH",
    "status failed": "status=failed",
    "kind live": "kind=live",
    "type WorkflowTask (common)": "type=WorkflowTask",
    "type EditMediaTask (rare)": "type=EditMediaTask",
    "type ProcessEof (live)": "type=ProcessEof",
    "time range (a day)": "since=2026-01-05T00:00:00&until=2026-01-06T00:00:00",
    "cursor page": f"cursor={MIDDLE_CURSOR}",
    "cursor page, status failed": f"status=failed&cursor={MIDDLE_CURSOR}",
    "exact TaskId": f"q=2400002-WorkflowTask-{ROWS // 3:08d}",
    "exact SessionId": f"q=session-{ROWS // 3}",
    "contains, in a time range": "q=user&match=contains&since=2026-01-05T00:00:00&until=2026-01-06T00:00:00",
    "contains, newest first": "q=video-1&match=contains",
}


@pytest.mark.parametrize("case", LIST_CASES)
def test_the_list_and_each_filter_read_tasks_through_an_index(filled: str, case: str):
    chosen = filters(LIST_CASES[case])
    plan = explain(filled, task_select(chosen.conditions(), chosen.limit, chosen.cursor, chosen.parts))
    print(f"\n--- {case} ({make_url(filled).get_backend_name()}): indexes {sorted(plan.indexes)}\n{plan.text}")
    assert not plan.full_scans, f"{case}: tasks read without an index\n{plan.text}"
    assert plan.indexes, f"{case}: no index in the plan\n{plan.text}"


def test_a_contains_page_reads_its_window_through_the_list_index(filled: str):
    """The page's query for ``contains``: the text, within the window, after the cursor."""
    chosen = filters(f"q=video-1&match=contains&cursor={MIDDLE_CURSOR}")
    window = within_window(MIDDLE - timedelta(minutes=1_000), f"2400002-WorkflowTask-{ROWS // 2 - 1_000:08d}")
    plan = explain(filled, task_select([*chosen.conditions(), window], chosen.limit, chosen.cursor, chosen.parts))
    print(f"\n--- contains in a window: indexes {sorted(plan.indexes)}\n{plan.text}")
    assert not plan.full_scans, f"contains in a window: tasks read without an index\n{plan.text}"
    assert plan.indexes & {"ix_tasks_first_received_at_task_id"}, plan.text


WINDOW_CASES = {
    "contains": "q=video-1&match=contains",
    "contains, kind live": "q=video-1&match=contains&kind=live",
    "contains, next window": f"q=video-1&match=contains&cursor={MIDDLE_CURSOR}",
}


@pytest.mark.parametrize("case", WINDOW_CASES)
def test_the_end_of_a_contains_search_window_is_found_on_an_index(
    filled: str, case: str, monkeypatch: pytest.MonkeyPatch
):
    """The window in the same proportion to these 20,000 tasks as SCAN_CAP to a million."""
    monkeypatch.setattr(tasks_page, "SCAN_CAP", ROWS * tasks_page.SCAN_CAP // 1_000_000)
    plan = explain(filled, window_end_select(filters(WINDOW_CASES[case])))
    print(f"\n--- window end, {case}: indexes {sorted(plan.indexes)}\n{plan.text}")
    assert not plan.full_scans, f"window end, {case}: tasks read without an index\n{plan.text}"
    assert plan.indexes, plan.text


COUNT_CASES = {
    "no filter": "",
    "kind live": "kind=live",
    "a day": "since=2026-01-05T00:00:00&until=2026-01-06T00:00:00",
}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("case", COUNT_CASES)
def test_each_status_count_reads_an_index_or_stops_at_the_cap(filled: str, case: str, status: str):
    """Bounded either way: through an index, or (a status most tasks have) a scan the LIMIT stops at the cap."""
    plan = explain(filled, status_count_select(filters(COUNT_CASES[case]), status))
    print(f"\n--- count {status}, {case}: indexes {sorted(plan.indexes)}\n{plan.text}")
    assert not plan.full_scans, f"count {status}, {case}: tasks read without an index\n{plan.text}"
    assert plan.indexes or plan.stopped_by_limit, plan.text
    # MariaDB's "index" access reads an index whole, from its first entry: no count may (``failed IS TRUE`` did)
    assert '"access_type": "index"' not in plan.text, f"count {status}, {case}: an index read whole\n{plan.text}"


def test_the_subtask_counts_of_a_page_read_the_subtasks_index(filled: str):
    page = [task_row(number)["task_id"] for number in range(ROWS - 50, ROWS)]
    plan = explain(filled, subtask_count_select(page))
    print(f"\n--- subtask counts: indexes {sorted(plan.indexes)}\n{plan.text}")
    assert plan.indexes & {"ix_subtasks_task_id"}, plan.text


def test_the_poll_asks_two_indexes_for_their_last_entry(filled: str):
    plan = explain(filled, newest_change_select())
    print(f"\n--- poll: indexes {sorted(plan.indexes)}\n{plan.text}")
    assert not plan.full_scans, plan.text
    backend = make_url(filled).get_backend_name()
    if backend == "mysql":  # MIN/MAX read from the index's end at planning time (no row: the journal is empty here)
        answered = ("Select tables optimized away", "No matching min/max row")
        assert sum(plan.text.count(message) for message in answered) == 2, plan.text
    else:
        assert {"ix_tasks_last_received_at", "ix_notifications_projected_at_id"} <= plan.indexes, plan.text


def test_a_common_live_type_walks_the_live_tasks_in_list_order(filled: str):
    """A type many live tasks hold (``api.tasks.is_common_type``) is asked task by task along the live tasks'
    index, newest first, so a page stops after a few probes; MariaDB would otherwise read every holder."""
    chosen = filters("type=ProcessEof").model_copy(update={"common_type": True})
    plan = explain(filled, task_select(chosen.conditions(), chosen.limit, chosen.cursor, chosen.parts))
    print(f"\n--- common live type: indexes {sorted(plan.indexes)}\n{plan.text}")
    assert not plan.full_scans, plan.text
    assert "ix_tasks_kind_first_received_at_task_id" in plan.indexes, plan.text


def test_whether_a_type_is_common_is_never_read_from_the_url():
    assert filters("type=ProcessEof&common_type=true").common_type is False
