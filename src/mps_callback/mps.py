"""MPS's vocabulary: the names and values every layer speaks about a notification.

Which EventTypes MPS sends and where each keeps its task, which NotificationTypes a live
stream sends, which ``EventType`` values are Tencent VOD's own events, a notification's
identity (``Shape``), what wrapped it (``Envelope``), and what makes two deliveries one
notification (``dedupe_key``). These are facts about MPS, not steps of the data flow, so
they sit at the bottom of the package, beside ``errors`` and ``config``: intake, verify,
the journal, the projector and the metrics all import them downward, and no layer has to
reach into another layer for a word. Nothing here refuses a notification; recognising
and refusing are ``verify``'s (``verify/shape.py``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

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


@dataclass(frozen=True, slots=True)
class Shape:
    """A notification's identity: file task (``vod``, EventType) or live stream (``live``, NotificationType)."""

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


@dataclass(slots=True)
class Envelope:
    """What wrapped the notification: ``none``, ``cmq`` or ``api-response``, and its ids."""

    wrapper: str = "none"
    message_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


#: Fields that change on every retry of the same notification, so they are not part of its identity.
VOLATILE_FIELDS = ("Timestamp", "Sign")


def dedupe_key(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical body (sorted keys) without Timestamp and Sign.

    MPS may deliver one notification several times (retries, CMQ redelivery) with a fresh
    Timestamp and Sign each time; everything else is the same, so this key is too. The body
    must be one that verification let through (``verify.shape.check_depth``): orjson
    serialises 255 levels at most.
    """
    canonical = {key: value for key, value in body.items() if key not in VOLATILE_FIELDS}
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
