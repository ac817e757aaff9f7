"""One notification -> what it says about its task (``TaskProjection``), touching no database.

Each MPS container has its reader, chosen by a table: EventType -> reader for file tasks,
NotificationType -> reader for live streams (``extractors``: each group module declares its
own). Inside a container the result sets are read generically: a list of items holding
``...Task`` objects, or a single task result object; which group a result set or activity
belongs to comes from the ``extractors`` tables. An unknown EventType is read like a
WorkflowTask event and an unknown NotificationType like any live result, so new MPS results
still project, and each family no table knows is counted and logged once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from mps_callback.mps import EVENT_CONTAINERS, LIVE_NOTIFICATION_TYPES, dedupe_key, event_task
from mps_callback.project.extractors import ROUTES, task_results
from mps_callback.project.extractors.live import read_results
from mps_callback.project.family import UNKNOWN, Family, notice_unknown
from mps_callback.project.model import SegmentItem, SubtaskProjection, TaskProjection
from mps_callback.project.values import text
from mps_callback.project.walk import find_outputs, find_segments, remainder
from mps_callback.storage import OutputUrls, Storage, input_location, input_storage, output_storage
from mps_callback.store.tables import tasks
from mps_callback.store.types import whole_number, width
from mps_callback.verify.shape import recognise

#: The group of a ScheduleTask activity no group declares: a whole-task result.
OTHER_ACTIVITIES = task_results.GROUP.name

#: Task-level fields of an event: everything else in it is a result.
EVENT_FIELDS = frozenset({"TaskId", "Status", "ErrCode", "Message", "InputInfo", "MetaData", "ErrCodeExt"})
ENVELOPE_FIELDS = frozenset(
    {"EventType", "NotificationType", "TaskId", "SessionId", "SessionContext", "Timestamp", "Sign"}
)
LIVE_INFOS = tuple(f"{notification_type}Info" for notification_type in LIVE_NOTIFICATION_TYPES)


class Reader:
    """Reads one notification; holds what every subtask needs (default storage, CDN domains, key counts)."""

    def __init__(self, body: dict[str, Any], cdn_domains: Mapping[str, str]) -> None:
        self.body = body
        self.cdn_domains = cdn_domains
        self.default_storage: Storage | None = None
        self._occurrences: Counter[str] = Counter()
        #: Fields beside the ``...Task`` objects of a result item (a review's SampleRate, Duration),
        #: by the key of each subtask read from that item.
        self.item_fields: dict[str, dict[str, Any]] = {}
        #: (group, family) pairs no table knows, in order: noticed once per notification.
        self.unknown: dict[tuple[str, str], None] = {}

    def family(self, group: str, key: str) -> Family:
        """How to read ``key`` of ``group``; one no module declares is read generically and noted."""
        spec = ROUTES.families.get((group, key), UNKNOWN)
        if spec is UNKNOWN:
            self.unknown[(group, key)] = None
        return spec

    def subtask(
        self,
        node: dict[str, Any],
        *,
        scope: str,
        group: str,
        family: str,
        type: str | None = None,
        mode: str = "snapshot",
        output: Any = ...,
        status: dict[str, Any] | None = None,
        spec: Family | None = None,
    ) -> SubtaskProjection:
        """A subtask from an MPS task result ``node`` (Status, ErrCode, Input, Output, ...)."""
        state = status if status is not None else node
        task_input = node.get("Input") if isinstance(node.get("Input"), dict) else None
        definition = whole_number(task_input.get("Definition")) if task_input else None
        result = node.get("Output") if output is ... else output
        spec = spec or self.family(group, family)
        storage = output_storage((task_input or {}).get("OutputStorage")) or self.default_storage
        base = f"{scope}{group}/{family}/{definition if definition is not None else '-'}"
        self._occurrences[base] += 1
        walk_result = result if not _is_result_list(result) else None
        segments = find_segments(walk_result, spec, family)
        if mode == "append":
            segments.extend(_rest_of(walk_result, spec, family, type))
        return SubtaskProjection(
            key=f"{base}/{self._occurrences[base]}" if mode == "snapshot" else f"{scope}{group}/{family}/{type or '-'}",
            group=group,
            family=family,
            type=type,
            mode=mode,
            status=text(state.get("Status")),
            err_code=whole_number(state.get("ErrCode")),
            err_code_ext=text(state.get("ErrCodeExt")),
            message=text(state.get("Message")),
            progress=whole_number(state.get("Progress")),
            definition=definition,
            begin_process_time=text(state.get("BeginProcessTime")),
            finish_time=text(state.get("FinishTime")),
            input=task_input,
            output=walk_result if mode == "snapshot" else None,
            outputs=find_outputs(walk_result, spec, storage, self.cdn_domains),
            segments=segments,
        )

    def result_items(self, items: list[Any], *, scope: str, group: str) -> list[SubtaskProjection]:
        """Items of a result set: each holds its ``...Task`` objects beside its ``Type``."""
        subtasks = []
        for item in items:
            if not isinstance(item, dict):
                continue
            tasks = {key: value for key, value in item.items() if isinstance(value, dict) and key.endswith("Task")}
            beside = {
                key: value
                for key, value in item.items()
                if key != "Type" and key not in tasks and value not in (None, [], "", {}) and not key.endswith("Task")
            }
            for key, node in tasks.items():
                subtasks.append(self.subtask(node, scope=scope, group=group, family=key, type=text(item.get("Type"))))
                if beside:
                    self.item_fields[subtasks[-1].key] = beside
            if not tasks and any(value not in (None, [], "") for key, value in item.items() if key != "Type"):
                family = text(item.get("Type")) or group
                subtasks.append(self.subtask(item, scope=scope, group=group, family=family, output=item))
        return subtasks

    def event_results(self, event: dict[str, Any], scope: str = "") -> tuple[list[SubtaskProjection], dict[str, Any]]:
        """The subtasks of a WorkflowTask-like event, and its fields nobody knows yet."""
        subtasks: list[SubtaskProjection] = []
        unknown: dict[str, Any] = {}
        for name, value in event.items():
            if name in EVENT_FIELDS:
                continue
            group = ROUTES.result_sets.get(name, name)
            if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
                subtasks.extend(self.result_items(value, scope=scope, group=group))
            elif isinstance(value, dict) and ("Status" in value or "Output" in value):
                subtasks.append(self.subtask(value, scope=scope, group=group, family=name))
            elif value not in (None, [], "", {}):
                unknown[name] = value
        return subtasks, unknown


# ------------------------------------------------------------------ file tasks (EventType)


def _workflow(reader: Reader, event: dict[str, Any], projection: TaskProjection) -> None:
    subtasks, unknown = reader.event_results(event)
    projection.subtasks.extend(subtasks)
    if unknown:
        projection.extra["event"] = unknown


def _schedule(reader: Reader, event: dict[str, Any], projection: TaskProjection) -> None:
    activities = event.get("ActivityResultSet")
    for index, activity in enumerate(activities if isinstance(activities, list) else []):
        items = activity.get("ActivityResItem") if isinstance(activity, dict) else None
        if not isinstance(items, dict):
            continue
        for key, node in items.items():
            if not isinstance(node, dict):
                continue
            scope = f"Activity[{index}]/"
            group = ROUTES.activities.get(key, OTHER_ACTIVITIES)
            projection.subtasks.append(
                reader.subtask(node, scope=scope, group=group, family=key, type=text(activity.get("ActivityType")))
            )
            if _is_result_list(node.get("Output")):
                projection.subtasks.extend(reader.result_items(node["Output"], scope=scope, group=group))
    rest = {k: v for k, v in event.items() if k != "ActivityResultSet"}
    _workflow(reader, rest, projection)


def _edit_media(reader: Reader, event: dict[str, Any], projection: TaskProjection) -> None:
    projection.input = event.get("Input")
    projection.subtasks.append(
        reader.subtask(
            event,
            scope="",
            group=ROUTES.event_types["EditMediaTask"],
            family="EditMediaTask",
            status=_whole_task_state(event),
        )
    )


def _batch(reader: Reader, event: dict[str, Any], projection: TaskProjection) -> None:
    inputs = event.get("InputInfos")
    projection.input = inputs
    if isinstance(inputs, list) and inputs:
        reader.default_storage = input_storage(inputs[0])
        projection.input_location = input_location(inputs[0])
    projection.metadata = event.get("Metadatas")
    found = event.get("SmartSubtitlesTaskResult")
    result: dict[str, Any] = found if isinstance(found, dict) else {}
    outputs = result.get("Outputs")
    for index, item in enumerate(outputs if isinstance(outputs, list) else []):
        if not isinstance(item, dict):
            continue
        for key, node in item.items():
            if isinstance(node, dict) and key.endswith("Task"):
                sub = reader.subtask(
                    result,
                    scope=f"Outputs[{index}]/",
                    group=ROUTES.event_types["BatchTask"],
                    family=key,
                    output=node,
                    status=item,
                )
                projection.subtasks.append(sub)
    statuses = [sub.status for sub in projection.subtasks]
    projection.status = "FINISH" if statuses and all(s in ("SUCCESS", "FAIL") for s in statuses) else "PROCESSING"


def _whole_task_state(event: dict[str, Any]) -> dict[str, Any]:
    """A task that is its own only subtask: FINISH with an ErrCode is a failure, without one a success."""
    err_code = whole_number(event.get("ErrCode"))
    status = ("FAIL" if err_code else "SUCCESS") if event.get("Status") == "FINISH" else "PROCESSING"
    return {"Status": status, "ErrCode": err_code, "Message": event.get("Message")}


def _blind_watermark(reader: Reader, event: dict[str, Any], projection: TaskProjection) -> None:
    state = _whole_task_state(event)
    output = {key: event.get(key) for key in ("Type", "IsDetected", "Result")}
    node: dict[str, Any] = {"Input": event.get("ExtractBlindWatermarkConfig")}
    sub = reader.subtask(
        node,
        scope="",
        group=ROUTES.event_types["ExtractBlindWatermark"],
        family="ExtractBlindWatermark",
        output=output,
        status=state,
    )
    projection.subtasks.append(sub)


EVENT_READERS: dict[str, Callable[[Reader, dict[str, Any], TaskProjection], None]] = {
    "WorkflowTask": _workflow,
    "ScheduleTask": _schedule,
    "EditMediaTask": _edit_media,
    "BatchTask": _batch,
    "ExtractBlindWatermark": _blind_watermark,
}


# ------------------------------------------------------------------ the entry point


def parse(body: dict[str, Any], urls: OutputUrls | None = None) -> TaskProjection | None:
    """What ``body`` (a redacted notification) says about its task; None for a Tencent VOD event (no MPS task)."""
    shape = recognise(body)
    if not shape.is_mps_task:
        return None
    urls = urls or OutputUrls()
    reader = Reader(body, urls.cdn_domains)
    projection = TaskProjection(
        task_id=shape.task_id or _synthetic_task_id(body, shape.type, shape.session_id),
        kind=shape.kind,
        event_type=shape.event_type,
        notification_type=shape.notification_type,
        status="PROCESSING",
        session_id=shape.session_id,
        session_context=shape.session_context,
    )
    if shape.kind == "live":
        reader.default_storage = urls.live_storage  # live results name no storage
        ROUTES.live.get(shape.type, read_results)(reader, shape.type, projection)
        known = ENVELOPE_FIELDS | set(LIVE_INFOS)
    else:
        container = EVENT_CONTAINERS.get(shape.type)
        event = event_task(body, shape.type)
        projection.status = text(event.get("Status")) or projection.status
        projection.err_code = whole_number(event.get("ErrCode"))
        projection.message = text(event.get("Message"))
        projection.input = event.get("InputInfo")
        projection.metadata = event.get("MetaData")
        if projection.input is not None:
            reader.default_storage = input_storage(projection.input)
            projection.input_location = input_location(projection.input)
        EVENT_READERS.get(shape.type, _workflow)(reader, event, projection)
        known = ENVELOPE_FIELDS | set(EVENT_CONTAINERS.values()) | {container or ""} | _containers_of(body, event)
    unknown = {key: value for key, value in body.items() if key not in known and value not in (None, "", [], {})}
    if unknown:
        projection.extra["body"] = unknown
    if reader.item_fields:
        projection.extra["items"] = reader.item_fields
    if body.get("Timestamp") not in (None, ""):  # the signature's expiry: about when MPS sent it, plus 10 minutes
        projection.extra["Timestamp"] = body["Timestamp"]
    projection.video_name = _basename(projection.input_location)
    for group, family in reader.unknown:
        notice_unknown(group, family)
    return projection


def _rest_of(result: Any, spec: Family, family: str, type: str | None) -> list[SegmentItem]:
    """An appended (live) result keeps no raw output: what its segments do not hold becomes one
    segment of kind ``result`` (``RecordOver``, the Type of a quality result without findings)."""
    rest = remainder(result, spec, family)
    if isinstance(rest, dict) and type is not None and rest.get("Type") == type:
        rest.pop("Type")
    if not rest:
        return []
    return [SegmentItem(kind="result", extra=rest if isinstance(rest, dict) else {"value": rest})]


def _containers_of(body: dict[str, Any], event: dict[str, Any]) -> set[str]:
    return {key for key, value in body.items() if value is event}


def _synthetic_task_id(body: dict[str, Any], type_name: str, session_id: str | None) -> str:
    """BatchTask notifications carry no TaskId: group them by SessionId, else keep each on its own."""
    if session_id:
        return f"{type_name}-session-{session_id}"[: width(tasks.c.task_id)]
    return f"{type_name}-{dedupe_key(body)[:32]}"


def _basename(location: str | None) -> str | None:
    if not location:
        return None
    name = location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name or None


def _is_result_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) for item in value)
        and any(isinstance(v, dict) and k.endswith("Task") for item in value for k, v in item.items())
    )
