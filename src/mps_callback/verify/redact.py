"""Take secrets out of a notification before anything is logged or stored.

MPS echoes the customer's AWS credentials (``S3SecretId``, ``S3SecretKey``) and DRM keys
inside results. A field is secret when its name says so: a word secret, password,
passwd, token or credential, or the word key (``NotifyKey``, ``S3SecretKey``, DRM
``Key``) except in the few MPS names where "Key" is not one. ``Sign`` is redacted too:
with its Timestamp it is an MD5 oracle for guessing the NotifyKey offline.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from mps_callback.errors import Refused

MARKER = "[redacted]"

#: JSON nesting allowed in a notification. MPS's deepest field is 15 levels down;
#: MariaDB's JSON functions refuse 32 and more, and a refusal there would make MPS retry forever.
MAX_NESTING = 30

_SECRET_WORDS = frozenset({"secret", "password", "passwd", "token", "credential", "credentials", "sign"})
_NOT_SECRET = frozenset({"KeyPTSList", "KeyServerUrl"})
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a field or header called ``name`` holds a secret (camelCase, snake or kebab)."""
    if name in _NOT_SECRET:
        return False
    words = {word.lower() for word in _WORDS.findall(name)}
    return bool(words & _SECRET_WORDS) or "key" in words


def redact(body: Any) -> int:
    """Replace every secret value in ``body`` in place by MARKER; return how many.

    The same walk refuses bodies nested deeper than MAX_NESTING, so no later stage (or
    database) meets one. It is iterative: a hostile body cannot exhaust Python's stack.
    Empty values are left alone, since there is nothing in them to hide.
    """
    count = 0
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise Refused(400, "too_deep", f"JSON nested deeper than {MAX_NESTING} levels")
        if isinstance(node, dict):
            for name, value in node.items():
                if value is not None and value != "" and is_secret_name(name):
                    node[name] = MARKER
                    count += 1
                elif isinstance(value, (dict, list)):
                    stack.append((value, depth + 1))
        else:
            stack.extend((value, depth + 1) for value in node if isinstance(value, (dict, list)))
    return count
