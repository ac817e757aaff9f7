"""Who may see the dashboard and act from it: the login session and the CSRF token.

With ``MPS_API_TOKEN`` set, the pages need a login: ``/ui/login`` takes the token and sets a
session cookie signed (itsdangerous) with a key derived from the token, so changing the token
logs everyone out; HttpOnly, SameSite=Strict, Secure under HTTPS. Without a token the pages are
open (``app.warn_if_exposed`` says so at start).

Every action is a POST carrying a CSRF token (a form field ``csrf`` or the ``X-CSRF-Token``
header htmx sends): the double-submit pattern, the token being a random value also held in an
HttpOnly SameSite=Strict cookie. A page of another site can neither read the cookie nor make the
browser send it, token or not.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Form, Header, HTTPException, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from mps_callback.api.deps import SettingsDep
from mps_callback.config import Settings

SESSION_COOKIE = "mps_session"
CSRF_COOKIE = "mps_csrf"
#: A login lasts a working week; the token itself does not expire.
SESSION_SECONDS = 7 * 24 * 3600
_SALT = "mps-callback dashboard session"


def login_required(settings: Settings) -> bool:
    return bool(settings.api_token.get_secret_value())


def _signer(settings: Settings) -> URLSafeTimedSerializer:
    key = hmac.new(settings.api_token.get_secret_value().encode(), _SALT.encode(), hashlib.sha256).digest()
    return URLSafeTimedSerializer(key, salt=_SALT)


def token_matches(settings: Settings, given: str) -> bool:
    return hmac.compare_digest(given.strip().encode(), settings.api_token.get_secret_value().encode())


def logged_in(request: Request, settings: Settings) -> bool:
    """No token configured, or a session cookie this token signed less than a week ago."""
    if not login_required(settings):
        return True
    cookie = request.cookies.get(SESSION_COOKIE, "")
    try:
        _signer(settings).loads(cookie, max_age=SESSION_SECONDS)
    except BadSignature:  # also a cookie past its age (SignatureExpired is a BadSignature)
        return False
    return True


def start_session(response: Response, request: Request, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        _signer(settings).dumps(secrets.token_hex(8)),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui",
    )


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")


async def require_login(request: Request, settings: SettingsDep) -> None:
    """A page's guard: to the login page (303) when not logged in; htmx is told to go there too."""
    if logged_in(request, settings):
        return
    target = "/ui/login?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    if request.headers.get("hx-request"):
        raise HTTPException(401, "log in again", headers={"HX-Redirect": target})
    raise HTTPException(303, "log in first", headers={"Location": target})


def safe_next(target: str | None) -> str:
    """Where to go after login: a path of the dashboard only (never another site)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


# ---------------------------------------------------------------- CSRF (double submit)


def csrf_token(request: Request) -> str:
    """This browser's CSRF token: its cookie's, or a new one ``ensure_csrf_cookie`` will set."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) == 32 and token.isalnum():
        return token
    new: str | None = getattr(request.state, "new_csrf", None)
    if new is None:
        new = request.state.new_csrf = secrets.token_hex(16)
    return new


def ensure_csrf_cookie(request: Request, response: Response) -> None:
    """Set the CSRF cookie when the page just made one up."""
    new: str | None = getattr(request.state, "new_csrf", None)
    if new:
        response.set_cookie(
            CSRF_COOKIE, new, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/ui"
        )


async def require_csrf(
    request: Request,
    csrf: Annotated[str | None, Form()] = None,
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> None:
    """An action's guard: the form's or header's token equals the cookie's (403 with the reason otherwise)."""
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = csrf or x_csrf_token or ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")


LoginDep = Annotated[None, Depends(require_login)]
CsrfDep = Annotated[None, Depends(require_csrf)]
