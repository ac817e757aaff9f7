"""Take secrets out of a notification before anything is logged or stored.

MPS echoes the customer's AWS credentials (``S3SecretId``, ``S3SecretKey``) and DRM keys
inside results. A field is secret when its name says so: a word secret, password,
passwd, token or credential, or the word key (``NotifyKey``, ``S3SecretKey``, DRM
``Key``) except in the few MPS names where "Key" is not one. ``Sign`` is redacted too:
with its Timestamp it is an MD5 oracle for guessing the NotifyKey offline.

Walking a 300 KB result (tens of thousands of word objects) costs milliseconds, so a
byte scan of the raw body decides first whether any name could be secret; the walk runs
only when one might be (S3 storage in a result, say).
"""

from __future__ import annotations

import re
from typing import Any

MARKER = "[redacted]"

_SECRET_WORDS = frozenset({"secret", "password", "passwd", "token", "credential", "credentials", "sign"})
_NOT_SECRET = frozenset({"KeyPTSList", "KeyServerUrl"})
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
#: Lower-cased fragments of every secret name; "key" and "sign" are counted separately.
_FRAGMENTS = (b"secret", b"passw", b"token", b"credential", b"\\u")


def is_secret_name(name: str) -> bool:
    """Whether a field or header called ``name`` holds a secret (camelCase, snake or kebab)."""
    verdict = _VERDICTS.get(name)
    if verdict is None:
        words = {word.lower() for word in _WORDS.findall(name)}
        verdict = name not in _NOT_SECRET and (bool(words & _SECRET_WORDS) or "key" in words)
        if len(_VERDICTS) < 10_000:  # MPS has a few thousand field names; a hostile body cannot grow this forever
            _VERDICTS[name] = verdict
    return verdict


_VERDICTS: dict[str, bool] = {}


def redact(body: dict[str, Any], raw: bytes | None = None) -> int:
    """Replace every secret value in ``body`` in place by MARKER; return how many.

    ``raw`` (the bytes ``body`` was decoded from) lets a notification without any
    possibly-secret name skip the walk: only its top-level ``Sign`` is then replaced.
    Empty values are left alone, since there is nothing in them to hide.
    """
    if raw is not None and not _may_hold_secrets(raw, body):
        if body.get("Sign") not in (None, ""):
            body["Sign"] = MARKER
            return 1
        return 0
    return _walk(body)


def _may_hold_secrets(raw: bytes, body: dict[str, Any]) -> bool:
    """False only when no key of ``raw`` can be a secret name (escaped keys always walk)."""
    lowered = raw.lower()
    if any(fragment in lowered for fragment in _FRAGMENTS):
        return True
    if lowered.count(b"key") != lowered.count(b"keyword"):
        return True
    return lowered.count(b"sign") != ("Sign" in body)


def _walk(root: Any) -> int:
    """Iterative, so no nesting depth can exhaust Python's stack."""
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            for name, value in node.items():
                kind = type(value)
                if value is not None and value != "" and is_secret_name(name):
                    node[name] = MARKER
                    count += 1
                elif kind is dict or kind is list:
                    stack.append(value)
        else:
            for value in node:
                kind = type(value)
                if kind is dict or kind is list:
                    stack.append(value)
    return count
