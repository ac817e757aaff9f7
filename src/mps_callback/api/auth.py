"""``MPS_API_TOKEN``: when set, every query route needs ``Authorization: Bearer <token>``.

The callback routes never do: MPS cannot send a header (use ``MPS_URL_TOKEN`` there).
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from mps_callback.api.deps import SettingsDep


async def require_api_token(request: Request, settings: SettingsDep) -> None:
    expected = settings.api_token.get_secret_value()
    if not expected:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
