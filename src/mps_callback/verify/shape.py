"""Recognise which of MPS's two notification shapes a body has, and pull out its identity.

File tasks ("ParseNotification" shape) carry ``EventType`` and the task under a matching
key; live-stream tasks ("ParseLiveStreamProcessNotification" shape) carry
``NotificationType`` and ``TaskId`` at the top. MPS adds event types and keys without
notice, so unknown values are recognised, never refused. Tencent VOD's own events use the
same ``EventType`` key; they are recognised too, and told apart by name (``is_mps_task``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mps_callback.errors import Refused

#: Where each known EventType keeps its task (note ExtractBlindWatermark: no "Event" suffix).
EVENT_CONTAINERS: dict[str, str] = {
    "WorkflowTask": "WorkflowTaskEvent",
    "EditMediaTask": "EditMediaTaskEvent",
    "ScheduleTask": "ScheduleTaskEvent",
    "BatchTask": "BatchTaskEvent",
    "ExtractBlindWatermark": "ExtractBlindWatermarkTask",
}

#: Tencent Cloud VOD's own event notifications. They share the ``EventType`` key with MPS (a
#: VOD application and MPS may call back the same URL), but they are not MPS tasks: uploads,
#: deletions, VOD task flows, VOD edits. They are journaled like any notification (answered
#: 200, so VOD does not retry them for days) and never projected into tasks.
VOD_PRODUCT_EVENTS = frozenset(
    {
        # media: upload, pull, deletion, storage
        "NewFileUpload",
        "PullComplete",
        "FileDeleted",
        "RestoreMediaComplete",
        "PersistenceComplete",
        "DescribeFileAttributesComplete",
        "MediaCastStatusChanged",
        # VOD task flows and media processing
        "ProcedureStateChanged",
        "EditMediaComplete",
        "SplitMediaComplete",
        "ComposeMediaComplete",
        "FastEditMediaComplete",
        "RebuildMediaComplete",
        "ReduceMediaBitrateComplete",
        "QualityInspectComplete",
        "QualityEnhanceComplete",
        "ComplexAdaptiveDynamicStreamingComplete",
        "ProcessMediaByMPSComplete",
        "ReviewAudioVideoComplete",
        "ExtractTraceWatermarkComplete",
        "ExtractCopyRightWatermarkComplete",
        "ExtractBlindWatermarkComplete",
        "RemoveWatermark",
        "AigcImageTaskComplete",
        "AigcVideoTaskComplete",
        "SceneAigcImageTaskComplete",
        "ProcessImageAsyncComplete",
        # publishing
        "WechatPublishComplete",
        "WechatMiniProgramPublishComplete",
        # VOD 2017 (v2) events, still sent to applications configured for them
        "TranscodeComplete",
        "ConcatComplete",
        "ClipComplete",
        "CreateImageSpriteComplete",
        "SnapshotByTimeOffsetComplete",
    }
)

#: The live-stream NotificationTypes MPS documents; each keeps its result under ``<type>Info``.
LIVE_NOTIFICATION_TYPES = (
    "ProcessEof",
    "AiReviewResult",
    "AiRecognitionResult",
    "AiAnalysisResult",
    "AiQualityControlResult",
    "LiveRecordResult",
    "AiSmartSubtitleResult",
)

#: Column sizes in the journal; longer identifiers are refused rather than truncated,
#: because a truncated TaskId would silently merge two tasks.
MAX_ID_LENGTH = 255
MAX_TYPE_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Shape:
    kind: Literal["vod", "live"]
    event_type: str | None
    notification_type: str | None
    task_id: str | None
    session_id: str | None
    session_context: str | None

    @property
    def type(self) -> str:
        """EventType or NotificationType, whichever this shape has."""
        return self.event_type or self.notification_type or ""

    @property
    def is_mps_task(self) -> bool:
        """False for Tencent VOD's own events (``VOD_PRODUCT_EVENTS``): kept in the journal, never a task."""
        return self.event_type not in VOD_PRODUCT_EVENTS


def recognise(body: dict[str, Any]) -> Shape:
    """Return the shape of ``body`` or refuse it with 400 when it is neither MPS shape."""
    notification_type = body.get("NotificationType")
    event_type = body.get("EventType")
    if _is_name(notification_type):
        kind: Literal["vod", "live"] = "live"
        task_id = _text(body.get("TaskId"), "TaskId")
        event_type = None
    elif _is_name(event_type):
        kind = "vod"
        notification_type = None
        task_id = _text(event_task(body, event_type).get("TaskId"), "TaskId")
    else:
        raise Refused(
            400, "not_mps", "not an MPS notification: no EventType (file task) or NotificationType (live task) string"
        )
    type_name = event_type or notification_type
    if len(type_name) > MAX_TYPE_LENGTH:
        raise Refused(400, "too_long", f"EventType/NotificationType longer than {MAX_TYPE_LENGTH} characters")
    return Shape(
        kind=kind,
        event_type=event_type,
        notification_type=notification_type,
        task_id=task_id,
        session_id=_text(body.get("SessionId"), "SessionId"),
        session_context=body.get("SessionContext") if isinstance(body.get("SessionContext"), str) else None,
    )


def event_task(body: dict[str, Any], event_type: str) -> dict[str, Any]:
    """The task object of a file-task notification, or ``{}`` when it has none.

    Known event types name their container; for one MPS adds later (or a VOD event that
    strays here) the first top-level object carrying a TaskId is taken.
    """
    container = body.get(EVENT_CONTAINERS.get(event_type, f"{event_type}Event"))
    if isinstance(container, dict):
        return container
    for value in body.values():
        if isinstance(value, dict) and isinstance(value.get("TaskId"), str):
            return value
    return {}


def _is_name(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _text(value: object, field: str) -> str | None:
    """An identifier as text: empty means absent; too long is refused (see MAX_ID_LENGTH)."""
    if not isinstance(value, str) or value == "":
        return None
    if len(value) > MAX_ID_LENGTH:
        raise Refused(400, "too_long", f"{field} longer than {MAX_ID_LENGTH} characters")
    return value
