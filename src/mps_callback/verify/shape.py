"""Recognise which of MPS's two notification shapes a body has, and pull out its identity.

File tasks ("ParseNotification" shape) carry ``EventType`` and the task under a matching
key; live-stream tasks ("ParseLiveStreamProcessNotification" shape) carry
``NotificationType`` and ``TaskId`` at the top. MPS adds event types and keys without
notice, so unknown values are recognised, never refused. Tencent VOD's own events use the
same ``EventType`` key; they are recognised too, and told apart by name (``is_mps_task``).
The words themselves (``Shape``, the containers, the types) are MPS's vocabulary
(``mps.py``); this module decides what a body is, and refuses what it cannot be.
"""

from __future__ import annotations

from typing import Any, Literal, TypeGuard

import orjson

from mps_callback.errors import Refused
from mps_callback.mps import Shape, event_task
from mps_callback.store.tables import notifications
from mps_callback.store.types import width

#: Column sizes in the journal; longer identifiers are refused rather than truncated,
#: because a truncated TaskId would silently merge two tasks.
MAX_ID_LENGTH = width(notifications.c.task_id)
MAX_TYPE_LENGTH = width(notifications.c.event_type)


def recognise(body: dict[str, Any]) -> Shape:
    """Return the shape of ``body`` or refuse it with 400 when it is neither MPS shape."""
    notification_type = body.get("NotificationType")
    event_type = body.get("EventType")
    if _is_name(notification_type):
        kind: Literal["vod", "live"] = "live"
        type_name = notification_type
        task_id = _text(body.get("TaskId"), "TaskId")
        event_type = None
    elif _is_name(event_type):
        kind = "vod"
        type_name = event_type
        notification_type = None
        task_id = _text(event_task(body, event_type).get("TaskId"), "TaskId")
    else:
        raise Refused(
            400, "not_mps", "not an MPS notification: no EventType (file task) or NotificationType (live task) string"
        )
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


def check_depth(body: dict[str, Any]) -> None:
    """Refuse a body nested deeper than the journal can write (orjson serialises 255 levels at most).

    orjson decodes 1024 levels, so such a body gets this far; every later step (the dedupe
    key, the spool line, the database's JSON) would fail on it with a 500. Serialising is
    the test, because it is the journal's own limit, checked in C: a decoded body can fail
    to serialise only by its depth.
    """
    try:
        orjson.dumps(body)
    except orjson.JSONEncodeError:
        raise Refused(400, "too_deep", "JSON nested deeper than 255 levels") from None


def _is_name(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.strip() != ""


def _text(value: object, field: str) -> str | None:
    """An identifier as text: empty means absent; too long is refused (see MAX_ID_LENGTH)."""
    if not isinstance(value, str) or value == "":
        return None
    if len(value) > MAX_ID_LENGTH:
        raise Refused(400, "too_long", f"{field} longer than {MAX_ID_LENGTH} characters")
    return value
