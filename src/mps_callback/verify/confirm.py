"""``MPS_VERIFY_WITH_API``: ask MPS itself whether a notification's task exists.

MPS's Sign covers only the Timestamp, so a captured signature can be replayed on another
body until it expires. DescribeTaskDetail (Tencent Cloud SDK; credentials from the
standard ``TENCENTCLOUD_SECRET_ID`` / ``TENCENTCLOUD_SECRET_KEY`` environment) closes that:
a task MPS does not know is refused; one it knows is marked ``confirmed``. When the API
cannot be reached the notification is kept, marked ``unconfirmed``: losing a genuine
notification is worse than keeping one unconfirmed, and the mark says which is which.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mps_callback.config import Settings
from mps_callback.errors import Refused

if TYPE_CHECKING:
    from tencentcloud.mps.v20190612.mps_client import MpsClient

log = logging.getLogger(__name__)

#: Error codes with which DescribeTaskDetail says the task does not exist.
NOT_FOUND_CODES = ("ResourceNotFound", "InvalidParameterValue.TaskId", "InvalidParameter.TaskId")


def mps_client(endpoint: str, region: str, needed_by: str, timeout: int = 5) -> MpsClient:
    """An MPS API client for ``MPS_API_ENDPOINT`` (a host, or a URL whose scheme is kept) and ``MPS_API_REGION``.

    Credentials come from the standard environment only, never from our settings, so they
    are never part of anything we log or store. ``needed_by`` names the setting or command
    in the error when they are missing.
    """
    from tencentcloud.common.credential import EnvironmentVariableCredential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.mps.v20190612.mps_client import MpsClient

    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    profile = ClientProfile(httpProfile=HttpProfile(protocol=parts.scheme, endpoint=parts.netloc, reqTimeout=timeout))
    credential = EnvironmentVariableCredential().get_credential()
    if credential is None:
        raise RuntimeError(f"{needed_by} needs TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY")
    return MpsClient(credential, region, profile)


class TaskConfirmer:
    def __init__(self, endpoint: str, region: str, cache_size: int = 10_000) -> None:
        self._client = mps_client(endpoint, region, "MPS_VERIFY_WITH_API")
        self._known: OrderedDict[str, None] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def from_settings(cls, settings: Settings) -> TaskConfirmer | None:
        return cls(settings.api_endpoint, settings.api_region) if settings.verify_with_api else None

    async def confirm(self, task_id: str | None) -> str:
        """``confirmed`` or ``unconfirmed``; refuses (401) a task MPS says it does not have."""
        if task_id is None:
            return "unconfirmed"
        if task_id in self._known:
            self._known.move_to_end(task_id)
            return "confirmed"
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

        try:
            await asyncio.to_thread(self._describe, task_id)
        except TencentCloudSDKException as error:
            if str(error.code or "").startswith(NOT_FOUND_CODES):
                raise Refused(401, "unknown_task", f"MPS does not know task {task_id}") from None
            log.warning(
                "MPS API unavailable; notification kept unconfirmed",
                extra={"task_id": task_id, "error": str(error.code)},
            )
            return "unconfirmed"
        self._known[task_id] = None
        if len(self._known) > self._cache_size:
            self._known.popitem(last=False)
        return "confirmed"

    def _describe(self, task_id: str) -> None:
        from tencentcloud.mps.v20190612 import models

        request = models.DescribeTaskDetailRequest()
        request.TaskId = task_id
        self._client.DescribeTaskDetail(request)
