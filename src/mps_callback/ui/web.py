"""What every page shares: the templates, ``render``, the static files and the security headers.

Templates autoescape (Jinja2's ``select_autoescape``): every value from a notification is
hostile text. The Content-Security-Policy allows scripts and styles from this server only (no
inline script, no eval), and media and images from anywhere: outputs play from the user's CDN.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from mps_callback import __version__
from mps_callback.api.deps import settings as settings_of
from mps_callback.ui.session import csrf_token, ensure_csrf_cookie, login_required

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PATH = "/ui/static"

templates = Jinja2Templates(directory=HERE / "templates")

#: Sent with every dashboard response.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: http: https:; "
        "media-src 'self' blob: http: https:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """``template`` with ``context`` and what the layout needs (CSRF token, login state, version)."""
    settings = settings_of(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            **context,
            "csrf_token": csrf_token(request),
            "login_required": login_required(settings),
            "version": __version__,
            "static": STATIC_PATH,
        },
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )
    ensure_csrf_cookie(request, response)
    return response


def utc_time(value: datetime | str | None) -> str:
    """A ``<time>`` element's text: the UTC time (the browser rewrites it in its own zone; see app.js)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_utc(value: datetime | str | None) -> str:
    """The ``datetime`` attribute of a ``<time>`` element: RFC 3339 in UTC."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: What a browser takes for a dot segment even escaped (the URL standard counts ``%2e`` as ``.``).
DOT_SEGMENTS = frozenset({".", ".."})


def path_segment(value: str) -> str:
    """``value`` escaped whole (``/``, ``%``, ``?``, ``#``, ``&`` too): one path segment, or one query value.

    A TaskId is hostile text: Jinja's ``urlencode`` leaves ``/`` alone, so ``x/../victim`` would
    resolve to another task's URL in the browser (its links, its reproject form).
    """
    return quote(value, safe="")


def task_path(task_id: str) -> str:
    """The task page's URL: ``/ui/tasks/{id}``, the id one escaped segment.

    A TaskId of ``.`` or ``..`` cannot be a segment (no escape stops a browser collapsing it):
    its page is ``/ui/tasks/?task=..``. Add queries with ``query_joint``.
    """
    if task_id in DOT_SEGMENTS:
        return "/ui/tasks/?task=" + path_segment(task_id)
    return "/ui/tasks/" + path_segment(task_id)


def query_joint(url: str) -> str:
    """What joins one more query value to ``url``: ``&`` when it has a query already, else ``?``."""
    return "&" if "?" in url else "?"


templates.env.filters["task_path"] = task_path
templates.env.filters["query_joint"] = query_joint
templates.env.filters["path_segment"] = path_segment
templates.env.filters["utc_time"] = utc_time
templates.env.filters["iso_utc"] = iso_utc
