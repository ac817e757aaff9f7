"""The TDMQ-CMQ queue door: MPS's default channel (``TaskNotifyConfig.NotifyType = "TDMQ-CMQ"``).

MPS puts each notification on a CMQ queue as the message's ``msgBody`` (the notification's JSON as
a string). This door pulls it with the CMQ data-plane API and hands its UTF-8 bytes to the intake;
``intake/doors.py`` acknowledges (``BatchDeleteMessage``) only what is durable. A message not
deleted becomes visible again after the queue's visibility timeout and comes again: a duplicate.

A small client of our own rather than the SDK: the official Python SDK is Python 2 style and
synchronous, and the door needs two calls. Written from Tencent's reference:

- the data-plane API (cloud.tencent.com/document/product/1496/61039) and the official SDK
  ``tencentyun/cmq-python-sdk`` (``cmq/cmq_client.py``, ``cmq/sign.py``, ``cmq/queue.py``):
  every call is a form-encoded ``POST`` to ``<endpoint>/v2/index.php`` with ``Action``,
  ``Nonce``, ``Timestamp``, ``SecretId``, ``SignatureMethod`` and the action's parameters;
- the signature: ``base64(HMAC-SHA256(SecretKey, "POST" + host + "/v2/index.php" + "?" +
  "&".join(f"{k}={v}" for k in sorted(params))))`` over the raw (not URL-encoded) values, the
  host as in the endpoint (with its port, if any);
- the answer: JSON with ``code`` (0 ok; 7000 no message), ``message``, ``requestId`` and, for
  ``BatchReceiveMessage`` (``numOfMsg`` up to 16, ``pollingWaitSeconds`` up to 30 of long poll),
  ``msgInfoList``: ``msgBody``, ``msgId``, ``receiptHandle``, ``enqueueTime`` (Unix seconds),
  ``firstDequeueTime``, ``nextVisibleTime``, ``dequeueCount``. ``BatchDeleteMessage`` takes
  ``receiptHandle.1``, ``receiptHandle.2``...; a partial failure answers a non-zero ``code``
  with ``errorList`` (``code``, ``message``, ``receiptHandle``).

Credentials come from ``TENCENTCLOUD_SECRET_ID`` / ``TENCENTCLOUD_SECRET_KEY``; they go into the
signature and the ``SecretId`` parameter only, never into a log line, an error or the journal.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from mps_callback.config import Settings
from mps_callback.intake.accept import Delivery
from mps_callback.intake.doors import Message

log = logging.getLogger(__name__)

NAME = "cmq"
PATH = "/v2/index.php"
SIGNATURE_METHOD = "HmacSHA256"
#: The most messages one BatchReceiveMessage may return, and the longest long poll CMQ allows.
BATCH = 16
POLLING_WAIT_SECONDS = 30
#: CMQ's answer codes this door reads: success, and an empty queue at the end of the long poll.
OK, NO_MESSAGE = 0, 7000
#: Beyond the long poll, how long a request may take (connect, answer).
TIMEOUT_SECONDS = 10.0
SECRET_ID_VARIABLE, SECRET_KEY_VARIABLE = "TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"


class CmqError(Exception):
    """CMQ answered a call with an error (or not with CMQ's JSON): its code and message, no credential."""

    def __init__(self, action: str, code: int, message: str) -> None:
        super().__init__(f"CMQ {action}: code {code}: {message}"[:300])
        self.code = code


class CmqConfigError(ValueError):
    """The settings cannot open the CMQ door: one line saying which, never a credential's value."""


@dataclass(frozen=True, slots=True)
class Credentials:
    secret_id: str
    secret_key: str

    def __repr__(self) -> str:  # a repr in a traceback or a log must not show the key
        return "Credentials(secret_id=..., secret_key=...)"


# ---------------------------------------------------------------- configuration


def configured(settings: Settings) -> bool:
    """Either CMQ setting asks for the door; `configuration_error` then says what is missing."""
    return bool(settings.cmq_queue or settings.cmq_endpoint)


def configuration_error(settings: Settings, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the settings cannot open the CMQ door (one line, no secret in it), or None."""
    endpoint = urlsplit(settings.cmq_endpoint)
    for wrong, reason in (
        (not settings.cmq_queue, "MPS_CMQ_ENDPOINT is set but MPS_CMQ_QUEUE (the queue's name) is not"),
        (not settings.cmq_endpoint, "MPS_CMQ_QUEUE is set but MPS_CMQ_ENDPOINT (the queue's endpoint) is not"),
        (
            endpoint.scheme not in ("http", "https") or not endpoint.hostname,
            "MPS_CMQ_ENDPOINT must be an http(s) URL, e.g. https://cmq-gz.public.tencenttdmq.com",
        ),
        (not environ.get(SECRET_ID_VARIABLE, "").strip(), f"the CMQ door needs {SECRET_ID_VARIABLE}"),
        (not environ.get(SECRET_KEY_VARIABLE, "").strip(), f"the CMQ door needs {SECRET_KEY_VARIABLE}"),
    ):
        if wrong:
            return reason
    return None


def credentials(environ: Mapping[str, str] = os.environ) -> Credentials:
    return Credentials(environ.get(SECRET_ID_VARIABLE, "").strip(), environ.get(SECRET_KEY_VARIABLE, "").strip())


def open_queue(settings: Settings) -> CmqQueue:
    """The door's queue from the settings; `CmqConfigError` when they cannot open it."""
    reason = configuration_error(settings)
    if reason is not None:
        raise CmqConfigError(reason)
    return CmqQueue(CmqClient(settings.cmq_endpoint, credentials()), settings.cmq_queue)


# ---------------------------------------------------------------- the signature


def string_to_sign(host: str, params: Mapping[str, str]) -> str:
    """``POST`` + host + path + ``?`` + the parameters sorted by name, raw values (as ``cmq/sign.py``)."""
    return f"POST{host}{PATH}?" + "&".join(f"{name}={params[name]}" for name in sorted(params))


def signature(secret_key: str, host: str, params: Mapping[str, str]) -> str:
    digest = hmac.new(secret_key.encode(), string_to_sign(host, params).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# ---------------------------------------------------------------- the client


class CmqClient:
    """Signed CMQ data-plane calls over one pooled HTTP client."""

    def __init__(self, endpoint: str, credentials: Credentials) -> None:
        parts = urlsplit(endpoint.rstrip("/"))
        self.host = parts.netloc  # as the client names it, port included: what CMQ signs
        self.url = f"{parts.scheme}://{parts.netloc}{PATH}"
        self._credentials = credentials
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT_SECONDS + POLLING_WAIT_SECONDS))

    def signed(self, action: str, params: Mapping[str, str]) -> dict[str, str]:
        """The form of one call: the action's parameters, the common ones, and their signature."""
        form = {
            **params,
            "Action": action,
            "Nonce": str(secrets.randbelow(2**31 - 1) + 1),
            "Timestamp": str(int(time.time())),
            "SecretId": self._credentials.secret_id,
            "SignatureMethod": SIGNATURE_METHOD,
        }
        return form | {"Signature": signature(self._credentials.secret_key, self.host, form)}

    async def call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        """CMQ's answer to ``action``; `CmqError` unless it is JSON (a code 7000 is returned: no message)."""
        response = await self._http.post(self.url, data=self.signed(action, params))
        try:
            answer: dict[str, Any] = response.json()
            code = int(answer["code"])
        except (ValueError, KeyError, TypeError):
            raise CmqError(action, -1, f"HTTP {response.status_code}, not CMQ's JSON") from None
        if code not in (OK, NO_MESSAGE) and not answer.get("errorList"):
            raise CmqError(action, code, self.scrubbed(str(answer.get("message", ""))))
        return answer

    def scrubbed(self, text: str) -> str:
        """CMQ's message with our credentials cut out, should it ever repeat one (an unknown SecretId)."""
        for secret in (self._credentials.secret_id, self._credentials.secret_key):
            text = text.replace(secret, "[redacted]") if secret else text
        return text

    async def close(self) -> None:
        await self._http.aclose()


@dataclass(slots=True)
class CmqQueue:
    """A CMQ queue as a door (`intake/doors.Queue`): BatchReceiveMessage, BatchDeleteMessage."""

    client: CmqClient
    queue: str
    name: str = NAME

    async def receive(self) -> Sequence[Message]:
        answer = await self.client.call(
            "BatchReceiveMessage",
            {"queueName": self.queue, "numOfMsg": str(BATCH), "pollingWaitSeconds": str(POLLING_WAIT_SECONDS)},
        )
        if int(answer["code"]) == NO_MESSAGE:
            return []
        return messages(answer.get("msgInfoList"))

    async def acknowledge(self, handles: Sequence[Any]) -> None:
        """Delete the messages; any not deleted (the call failed, or some handles did) raise: they come again."""
        params = {"queueName": self.queue} | {f"receiptHandle.{n}": str(h) for n, h in enumerate(handles, 1)}
        try:
            answer = await self.client.call("BatchDeleteMessage", params)
        except (CmqError, httpx.HTTPError) as error:
            raise not_deleted(len(handles), len(handles), reason(error)) from None
        errors = answer.get("errorList") or []
        if int(answer["code"]) != OK or errors:
            codes = ", ".join(sorted({str(error.get("code")) for error in errors})) or str(answer["code"])
            raise not_deleted(len(errors) or len(handles), len(handles), f"codes {codes}")

    async def close(self) -> None:
        await self.client.close()


def not_deleted(failed: int, handles: int, why: str) -> CmqError:
    """The error of a delete that failed, logged here: every failed delete, not only a door's first failure."""
    error = CmqError("BatchDeleteMessage", -1, f"{failed} of {handles} not deleted ({why}); they come again")
    log.warning(
        "CMQ messages not deleted; they come again and are duplicates", extra={"door": NAME, "error": str(error)}
    )
    return error


def reason(error: BaseException) -> str:
    """An error's type and first line (CMQ's own messages are already scrubbed of our credentials)."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:200]


#: CMQ's message fields kept as the delivery's metadata, by the name the journal keeps them under.
METADATA = {"message_id": "msgId", "receive_count": "dequeueCount", "enqueue_time": "enqueueTime"}


def messages(infos: Any) -> list[Message]:
    """The entries of ``msgInfoList`` that can be acknowledged (have a receipt handle), as `Message` s.

    Built one by one, so that one strange entry (no handle, not an object) costs only itself, never
    the batch it came in: anyone who may send to the queue can put such a message there.
    """
    if not isinstance(infos, list):
        return []
    built = [message(info) for info in infos if isinstance(info, Mapping) and info.get("receiptHandle")]
    if len(built) < len(infos):
        log.warning(
            "CMQ entries without a receipt handle skipped", extra={"door": NAME, "skipped": len(infos) - len(built)}
        )
    return built


def message(info: Mapping[str, Any]) -> Message:
    """One ``msgInfoList`` entry as the door's `Message`: the ``msgBody`` text's bytes and CMQ's ids.

    A lone surrogate (``"\\ud800"`` in the JSON CMQ answered) survives as bytes that are not UTF-8: the
    notification's decoding refuses it (400), and the message is deleted like any other hopeless one.
    """
    headers = {name: str(info[field]) for name, field in METADATA.items() if info.get(field) is not None}
    return Message(
        str(info.get("msgBody", "")).encode(errors="surrogatepass"),
        Delivery(NAME, headers=headers, sent_at=enqueued_at(info.get("enqueueTime"))),
        info["receiptHandle"],
    )


def enqueued_at(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
