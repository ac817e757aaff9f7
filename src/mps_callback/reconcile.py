"""Reconciliation through the MPS API: find the tasks MPS knows but no notification brought.

MPS documents no retry schedule for its callbacks, and its FAQ's answer to "no callback
received" is to poll ``DescribeTaskDetail``. So: ``DescribeTasks`` (FINISH and PROCESSING,
``ScrollToken`` paging) lists the tasks of a window; every one missing from the tasks table,
or not final there (status other than FINISH), gets a ``DescribeTaskDetail``. Its task object
(``WorkflowTask``, ``EditMediaTask``, ``ScheduleTask``, ...) has the structure of the
notification's event, so it is put back into the ParseNotification shape (``EventType`` and
``WorkflowTaskEvent``, ...) and handed to the same ``Intake.accept`` as every door, on channel
``api`` in an ``api-response`` wrapper whose message id is the RequestId: it projects and
forwards like any notification, and fetching the same state twice is a duplicate by its
dedupe key. A TaskType this module does not know is journaled as MPS answered it, never dropped.
A live-stream task is the exception to "the same structure": its notifications are live ones,
so a finished one is journaled as its ``ProcessEof`` and a running one is left alone.

The bodies carry no Sign: they are genuine because we fetched them with our credentials,
hence an Intake built ``fetched_from_api`` (see ``intake/accept.py``). Calls are paced below
MPS's per-action limit and a throttled call (``RequestLimitExceeded``) is retried with
back-off. Credentials come from the environment (``TENCENTCLOUD_SECRET_ID`` /
``TENCENTCLOUD_SECRET_KEY``) and are never logged or stored.

A wiring module (beside ``runtime``): it drives the MPS API client (``verify/confirm.py``),
the intake, the journal and the tasks table together, as the command and a background job.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from mps_callback.mps import EVENT_CONTAINERS

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from tencentcloud.mps.v20190612.mps_client import MpsClient

    from mps_callback.config import Settings
    from mps_callback.intake.accept import Intake

log = logging.getLogger(__name__)

#: DescribeTasks answers for the last seven days (168 hours) only.
WINDOW = timedelta(days=7)
DEFAULT_SINCE = "72h"
#: The task statuses listed: a task still WAITING has nothing to recover yet.
LISTED_STATUSES = ("FINISH", "PROCESSING")
#: DescribeTasks' largest page.
PAGE_LIMIT = 100
#: MPS allows about 20 requests a second per action (DescribeTasks documents 100): stay well below.
REQUESTS_PER_SECOND = 10.0
#: Error codes with which the API says "too many requests now": retried with back-off.
THROTTLED_CODES = ("RequestLimitExceeded",)
RETRY_ATTEMPTS = 6
#: The channel and delivery metadata a recovered notification is journaled with.
CHANNEL = "api"

#: DescribeTaskDetail's TaskType -> the field holding its task (note ExtractBlindWatermark's ``...Task``).
#: The notification's container for it is ``mps.EVENT_CONTAINERS`` (or ``<TaskType>Event``).
DETAIL_FIELDS: dict[str, str] = {
    "WorkflowTask": "WorkflowTask",
    "EditMediaTask": "EditMediaTask",
    "ScheduleTask": "ScheduleTask",
    "ExtractBlindWatermark": "ExtractBlindWatermarkTask",
    "LiveStreamProcessTask": "LiveStreamProcessTask",
    "LiveScheduleTask": "LiveScheduleTask",
}
#: Live-stream tasks: their notifications are live ones (``NotificationType``), not a task event.
#: What DescribeTaskDetail says of one is what its ``ProcessEof`` says (it ended; ErrCode, Message);
#: while it runs, nothing a notification would carry (its results come as notifications of their own).
LIVE_TASK_TYPES = frozenset({"LiveStreamProcessTask", "LiveScheduleTask"})
#: Top-level fields of DescribeTaskDetail that a notification carries too.
SHARED_FIELDS = ("SessionId", "SessionContext")

_DURATION = re.compile(r"(\d{1,6})([mhd])")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


class BadSince(ValueError):
    """A ``--since`` that is not a duration or an instant within DescribeTasks' window."""


def since_instant(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``72h``, ``7d`` or an ISO 8601 date/time, as a UTC instant within the last 7 days.

    Raises ``BadSince`` with a one-line reason: an instant in the future, or older than
    DescribeTasks can answer for, would only look like a reconciliation that found nothing.
    """
    now = now or datetime.now(UTC)
    if duration := _DURATION.fullmatch(text.strip()):
        instant = now - int(duration[1]) * _UNIT[duration[2]]
    else:
        try:
            instant = datetime.fromisoformat(text.strip())
        except ValueError:
            raise BadSince(
                f"bad --since {text[:64]!r}: a duration (30m, 72h, 7d) or an ISO 8601 date or time"
            ) from None
        try:
            instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
        except OverflowError:
            raise BadSince(f"bad --since {text[:64]!r}: out of range") from None
    if instant > now:
        raise BadSince(f"bad --since {text[:64]!r}: in the future")
    if now - instant > WINDOW:
        raise BadSince(f"bad --since {text[:64]!r}: DescribeTasks answers for the last 7 days (168 h) only")
    return instant


def notification_of(detail: dict[str, Any], listed_type: str | None = None) -> dict[str, Any] | None:
    """DescribeTaskDetail's answer in the ParseNotification shape: ``{"EventType": T, "<T>Event": task, ...}``.

    A live task's becomes its ``ProcessEof`` once it has finished, and None (nothing to journal)
    while it runs. An answer whose task this table does not know (a new TaskType, a task object
    missing) is kept as MPS gave it, with its TaskType as EventType: journaled, never dropped.
    """
    task_type = detail.get("TaskType") if isinstance(detail.get("TaskType"), str) else None
    event_type = task_type or listed_type or "Unknown"
    task = detail.get(DETAIL_FIELDS.get(event_type, event_type))
    if not isinstance(task, dict):
        return {"EventType": event_type, **{key: value for key, value in detail.items() if key != "RequestId"}}
    if event_type in LIVE_TASK_TYPES:
        body = _process_eof(task)
        if body is None:
            return None
    else:
        body = {"EventType": event_type, EVENT_CONTAINERS.get(event_type, f"{event_type}Event"): task}
    body.update({name: detail[name] for name in SHARED_FIELDS if isinstance(detail.get(name), str)})
    return body


def _process_eof(task: dict[str, Any]) -> dict[str, Any] | None:
    """The ProcessEof a finished live task sent (or would have): its TaskId, ErrCode and Message."""
    if task.get("Status") != "FINISH":
        return None
    info = {"ErrCode": task.get("ErrCode", 0), "Message": task.get("Message", "")}
    return {"NotificationType": "ProcessEof", "TaskId": task.get("TaskId"), "ProcessEofInfo": info}


def wrapped(notification: dict[str, Any], request_id: str) -> bytes:
    """The body as an ``api-response`` (``{"Response": {..., "RequestId"}}``): the intake keeps the RequestId
    as the envelope's message id and journals the notification inside."""
    return orjson.dumps({"Response": {**notification, "RequestId": request_id}})


# ---------------------------------------------------------------- the MPS API, paced and retried


class Pace:
    """At most ``rate`` calls a second: each call waits for its slot (a token bucket of one token)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


class MpsApi:
    """DescribeTasks and DescribeTaskDetail through the Tencent Cloud SDK, as raw JSON.

    ``call_json`` rather than the SDK's models: a model drops every field the SDK version does
    not know, and the point is to keep what MPS says. Each action is paced on its own (MPS
    limits per action); throttling is retried with exponential back-off.
    """

    def __init__(self, client: MpsClient, rate: float = REQUESTS_PER_SECOND) -> None:
        self._client = client
        self._rate = rate
        self._paces: dict[str, Pace] = {}
        self.calls: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> MpsApi:
        from mps_callback.verify.confirm import mps_client

        return cls(mps_client(settings.api_endpoint, settings.api_region, "reconciliation", timeout=30))

    async def call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """``Response`` of ``action``; ``TencentCloudSDKException`` when it fails for good."""
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

        pace = self._paces.setdefault(action, Pace(self._rate))
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(throttled),
            wait=wait_exponential(multiplier=0.2, max=10),
            stop=stop_after_attempt(RETRY_ATTEMPTS),
            reraise=True,
        ):
            with attempt:
                await pace.wait()
                self.calls[action] = self.calls.get(action, 0) + 1
                answer = await asyncio.to_thread(self._client.call_json, action, params)
        response = answer.get("Response") if isinstance(answer, dict) else None
        if not isinstance(response, dict):
            raise ValueError(f"{action}: the answer has no Response object")
        return response

    async def tasks(self, status: str, start: datetime, end: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """DescribeTasks' pages of ``TaskSimpleInfo`` for ``status`` between ``start`` and ``end``.

        Paging ends on an empty page, a missing token, or a token seen before: an API that hands back the
        same ScrollToken would otherwise keep a run fetching the same tasks for ever.
        """
        params: dict[str, Any] = {"Status": status, "Limit": PAGE_LIMIT, "StartTime": iso(start), "EndTime": iso(end)}
        seen: set[str] = set()
        while True:
            response = await self.call("DescribeTasks", params)
            page = [task for task in response.get("TaskSet") or [] if isinstance(task, dict)]
            yield page
            token = response.get("ScrollToken")
            if not page or not isinstance(token, str) or not token or token in seen:
                return
            seen.add(token)
            params = {**params, "ScrollToken": token}

    async def detail(self, task_id: str) -> dict[str, Any]:
        return await self.call("DescribeTaskDetail", {"TaskId": task_id})


def throttled(error: BaseException) -> bool:
    code = str(getattr(error, "code", "") or "")
    return code.startswith(THROTTLED_CODES)


def iso(instant: datetime) -> str:
    """MPS's ISO date format: ``2026-01-31T08:00:00Z``."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- one reconciliation


@dataclass
class Summary:
    """What one reconciliation did, for its log line and the command's output."""

    listed: int = 0
    fetched: int = 0
    accepted: int = 0
    duplicate: int = 0
    spooled: int = 0
    skipped: int = 0  # live tasks still running: nothing a notification would carry
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "fetched": self.fetched,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "spooled": self.spooled,
            "skipped": self.skipped,
            "failed": len(self.failed),
        }


async def final_tasks(engine: AsyncEngine, task_ids: Sequence[str]) -> set[str]:
    """Those of ``task_ids`` the tasks table holds as final (FINISH): nothing left to recover."""
    from mps_callback.store.tables import tasks

    if not task_ids:
        return set()
    query = sa.select(tasks.c.task_id).where(tasks.c.task_id.in_(task_ids), tasks.c.status == "FINISH")
    async with engine.connect() as connection:
        return set((await connection.execute(query)).scalars())


async def reconcile(engine: AsyncEngine, api: MpsApi, intake: Intake, since: datetime) -> Summary:
    """Recover every task of the window that the tasks table misses or holds unfinished."""
    summary = Summary()
    end = datetime.now(UTC)
    for status in LISTED_STATUSES:
        async for page in api.tasks(status, since, end):
            listed = {task["TaskId"]: task.get("TaskType") for task in page if isinstance(task.get("TaskId"), str)}
            summary.listed += len(listed)
            final = await final_tasks(engine, list(listed))
            for task_id, task_type in listed.items():
                if task_id in final:
                    continue
                if status != "FINISH" and task_type in LIVE_TASK_TYPES:  # a live stream still running
                    summary.skipped += 1
                    continue
                await recover(api, intake, task_id, task_type if isinstance(task_type, str) else None, summary)
    log.info("reconciliation done", extra={"since": iso(since), **summary.as_dict()})
    return summary


async def recover(api: MpsApi, intake: Intake, task_id: str, task_type: str | None, summary: Summary) -> None:
    """DescribeTaskDetail of one task, journaled as a notification received on channel ``api``."""
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

    from mps_callback.intake.accept import Delivery
    from mps_callback.intake.doors import take

    try:
        detail = await api.detail(task_id)
    except (TencentCloudSDKException, ValueError) as error:
        log.warning("task not recovered", extra={"task_id": task_id, "error": _error(error)})
        summary.failed.append(task_id)
        return
    summary.fetched += 1
    notification = notification_of(detail, task_type)
    if notification is None:
        summary.skipped += 1
        return
    request_id = str(detail.get("RequestId") or "")
    raw = wrapped(notification, request_id)
    taken = await take(intake, raw, Delivery(CHANNEL, headers={"message_id": request_id}))
    if taken.result in ("accepted", "duplicate", "spooled"):
        setattr(summary, taken.result, getattr(summary, taken.result) + 1)
    else:
        reason = taken.refused.reason if taken.refused else "database and spool unavailable"
        log.warning("task not recovered", extra={"task_id": task_id, "error": reason})
        summary.failed.append(task_id)


def _error(error: BaseException) -> str:
    """A failure as a log line may show it: the API's error code and message, never a request."""
    code = getattr(error, "code", None)
    message = getattr(error, "message", None) or str(error)
    return f"{code}: {str(message)[:200]}" if code else f"{type(error).__name__}: {str(message)[:200]}"


async def run(engine: AsyncEngine, settings: Settings, since: datetime) -> Summary:
    """One reconciliation with its own journal and Intake (``fetched_from_api``), closed afterwards."""
    from mps_callback.intake.accept import Intake
    from mps_callback.journal.group_commit import GroupCommitJournal
    from mps_callback.journal.limits import RowLimit
    from mps_callback.journal.spool import Spool
    from mps_callback.runtime import outbox

    api = MpsApi.from_settings(settings)
    journal = GroupCommitJournal(
        engine,
        Spool(settings.spool_dir),
        settings.journal_budget_seconds,
        limit=RowLimit(settings.max_body_bytes, engine.dialect.name),
        outbox=outbox(),
    )
    journal.start()
    intake = Intake(settings, journal, fetched_from_api=True)
    try:
        return await reconcile(engine, api, intake, since)
    finally:
        await journal.close()
        intake.close()
