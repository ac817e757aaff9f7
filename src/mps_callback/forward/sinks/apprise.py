"""People: a short message through Apprise to WeCom, DingTalk, Feishu/Lark, Slack, Telegram, email...

The working replacement for Tencent's "MPS Webhook" template. The sink URL is ``apprise+``
followed by any Apprise URL (``apprise+wecombot://KEY``); Apprise speaks each service's API, so
none is written here. The message says what a person acts on: which task, its status, which
subtasks failed and why, and where the outputs are.
"""

from __future__ import annotations

from typing import Any

import apprise

from mps_callback.forward.event import Event
from mps_callback.forward.sinks.base import DEFAULT_TIMEOUT_SECONDS, ConnectedSink, Delivered, Outcome, Retry

PREFIX = "apprise+"
#: Output links listed in one message; the rest are counted.
MAX_LINKS = 10
#: MPS's subtask statuses that mean it failed (with a non-zero ErrCode as the other sign).
FAILED_STATUSES = frozenset({"FAIL", "FAILED", "ERROR"})
NOTIFY_TYPES = {"task.failed": apprise.NotifyType.FAILURE, "task.finished": apprise.NotifyType.SUCCESS}


class AppriseSink(ConnectedSink[apprise.Apprise]):
    kind = "apprise"

    def __init__(self, name: str, url: str, secret: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        super().__init__(name, url, secret=secret, timeout=timeout)
        self._target = url.removeprefix(PREFIX)
        if not apprise.Apprise().add(self._target):
            raise ValueError("Apprise does not recognise the URL after `apprise+`")

    async def _connect(self) -> apprise.Apprise:
        notifier = apprise.Apprise()
        notifier.add(self._target)
        return notifier

    async def _disconnect(self, connection: apprise.Apprise) -> None:
        connection.clear()

    async def _send(self, connection: apprise.Apprise, event: Event) -> Outcome:
        title, body = message(event)
        result = await connection.async_notify(
            body=body,
            title=title,
            notify_type=NOTIFY_TYPES.get(event.type, apprise.NotifyType.INFO),
            timeout=self.timeout,
        )
        if not result:
            return Retry(self.reason(f"Apprise could not notify ({result.status.name})"))
        return Delivered()


def message(event: Event) -> tuple[str, str]:
    """The title and body a person reads: a one-liner for a notification, a short report for a task."""
    if event.type == "notification.received":
        return "MPS notification received", notification_line(event)
    task: dict[str, Any] = event.data
    task_id = event.task_id or task.get("task_id") or "?"
    status = str(task.get("status") or "?")
    failed = event.type == "task.failed" or bool(task.get("failed"))
    title = f"MPS task {task_id}: {'failed' if failed else status}"
    first = f"{task.get('event_type') or event.event_type or 'Task'} {task_id}: {status}{' (failed)' if failed else ''}"
    return title, "\n".join([first, *error_lines(task), *failed_subtask_lines(task), *output_lines(task)])


def error_lines(task: dict[str, Any]) -> list[str]:
    """The task's own error, when MPS gave one (ErrCode 0 with Message SUCCESS is none)."""
    if not task.get("err_code"):
        return []
    return [f"Error {task.get('err_code')}: {task.get('message') or ''}".rstrip(": ")]


def failed_subtask_lines(task: dict[str, Any]) -> list[str]:
    """Each failed subtask with its error code and message: what a person acts on first."""
    failed = [subtask for subtask in task.get("subtasks") or [] if subtask_failed(subtask)]
    return ["Failed subtasks:", *(f"- {subtask_line(subtask)}" for subtask in failed)] if failed else []


def output_lines(task: dict[str, Any]) -> list[str]:
    """Links to the outputs (subtitles, transcodes, covers), the first `MAX_LINKS` of them."""
    by_url = {output["url"]: output for output in reversed(task.get("outputs") or []) if output.get("url")}
    links = list(reversed(by_url.values()))  # each URL once (MPS names one file in several fields), first kept
    if not links:
        return []
    lines = [
        "Outputs:",
        *(f"- {link.get('subtask') or link.get('field')}: {link['url']}" for link in links[:MAX_LINKS]),
    ]
    return lines + ([f"- and {len(links) - MAX_LINKS} more"] if len(links) > MAX_LINKS else [])


def notification_line(event: Event) -> str:
    data = event.data
    what = data.get("event_type") or data.get("notification_type") or event.event_type or "notification"
    return f"{what} for task {event.task_id or data.get('task_id') or '?'} ({data.get('signature', 'unchecked')})"


def subtask_failed(subtask: dict[str, Any]) -> bool:
    return str(subtask.get("status") or "").upper() in FAILED_STATUSES or bool(subtask.get("err_code"))


def subtask_line(subtask: dict[str, Any]) -> str:
    code = subtask.get("err_code_ext") or subtask.get("err_code")
    name = subtask.get("type") or subtask.get("key") or subtask.get("id")
    return f"{name}: {code} {subtask.get('message') or ''}".rstrip()
