"""``/ui/login`` and ``/ui/logout``: the only dashboard routes open without a session."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mps_callback.api.deps import SettingsDep
from mps_callback.ui.session import CsrfDep, end_session, login_required, safe_next, start_session, token_matches
from mps_callback.ui.web import SECURITY_HEADERS, render

router = APIRouter()

#: Seconds a wrong token waits for its 401: guessing the token costs a second a try.
WRONG_TOKEN_DELAY = 1.0


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, settings: SettingsDep, next: Annotated[str | None, Query()] = None) -> Response:
    if not login_required(settings):
        return RedirectResponse(safe_next(next), 303)
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    settings: SettingsDep,
    _csrf: CsrfDep,
    token: Annotated[str, Form(max_length=4096)] = "",
    next: Annotated[str | None, Form(max_length=4096)] = None,
) -> Response:
    """The API token, as the form's ``token``: right, a session and back where the user was going."""
    if not login_required(settings):
        return RedirectResponse(safe_next(next), 303)
    if not token_matches(settings, token):
        await asyncio.sleep(WRONG_TOKEN_DELAY)
        return render(request, "login.html", {"next": safe_next(next), "error": "That is not the API token."}, 401)
    response = RedirectResponse(safe_next(next), 303, headers=SECURITY_HEADERS)
    start_session(response, request, settings)
    return response


@router.post("/logout")
async def logout(_csrf: CsrfDep) -> Response:
    response = RedirectResponse("/ui/login", 303, headers=SECURITY_HEADERS)
    end_session(response)
    return response
