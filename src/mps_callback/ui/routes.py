"""The dashboard's routes: ``/`` to ``/ui/``, the static files, login, and every page behind the login."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from mps_callback.ui.pages import health, login, task, tasks
from mps_callback.ui.session import require_login
from mps_callback.ui.web import STATIC_DIR, STATIC_PATH, render

#: The pages, each a module with a ``router``; all need the login when ``MPS_API_TOKEN`` is set.
PAGES = (tasks, task, health)


def mount(app: FastAPI) -> None:
    """Add the dashboard to ``app``: its pages under ``/ui/``, assets under ``/ui/static``, ``/`` redirecting."""
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="ui-static")
    ui = APIRouter(prefix="/ui", include_in_schema=False)
    ui.include_router(login.router)
    for page in PAGES:
        ui.include_router(page.router, dependencies=[Depends(require_login)])
    app.include_router(ui)
    app.add_exception_handler(HTTPException, problem_page)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/", 307)


async def problem_page(request: Request, error: Exception) -> Response:
    """A dashboard request refused (a CSRF token that does not match, say): a page saying why, not JSON.

    The API's routes, redirects, and htmx requests (told where to go by ``HX-Redirect``) keep
    FastAPI's own answer.
    """
    assert isinstance(error, HTTPException)  # noqa: S101 -- registered for HTTPException only
    if not request.url.path.startswith("/ui/") or error.status_code < 400 or request.headers.get("hx-request"):
        return await http_exception_handler(request, error)
    context = {"status_code": error.status_code, "reason": error.detail, "pending": False, "task_id": None}
    response = render(request, "task_problem.html", context, error.status_code)
    response.headers.update(error.headers or {})
    return response
