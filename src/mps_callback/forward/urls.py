"""Sink URLs: what is safe to show of them, and the query parameters the sinks read.

A sink URL may carry credentials in every part: user info (``amqp://user:pass@``,
``redis://:pass@``, ``nats://token@``), the path (a chat robot's key, a Slack or Discord
webhook token), the query (``?token=``), or the whole of it (``apprise+wecombot://KEY``).
`safe_url` is the only form that reaches logs, metrics, the API and the database.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

HIDDEN = "***"

#: Query parameters each scheme reads that are settings, not secrets; every other value is hidden.
PUBLIC_PARAMETERS: dict[str, frozenset[str]] = {
    "amqp": frozenset({"exchange", "heartbeat", "connection_timeout"}),
    "amqps": frozenset({"exchange", "heartbeat", "connection_timeout"}),
    "nats": frozenset({"subject"}),
    "redis": frozenset({"stream", "maxlen"}),
    "rediss": frozenset({"stream", "maxlen"}),
    "mqtt": frozenset({"topic"}),
    "mqtts": frozenset({"topic"}),
    "sqs": frozenset({"region", "endpoint_url"}),
    "s3": frozenset({"region", "endpoint_url", "key", "addressing"}),
}

#: Schemes whose whole path is hidden: a webhook's path is often its secret (``/services/T0/B0/XyZ``),
#: in letters only as often as not; the host, port and sink name say which receiver it is.
WHOLE_PATH_SECRET = frozenset({"http", "https"})

#: A path segment that looks like a token (12 or more letters and digits, both): robot keys, webhook tokens.
_TOKEN_LIKE = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-.~=+%]{12,}$")


def safe_url(url: str) -> str:
    """``url`` without anything that could be a credential, for logs, metrics and the API.

    Apprise URLs are their service's credentials from end to end (``wecombot://KEY``,
    ``tgram://bot_token/chat``, ``mailto://user:pass@host``), so only their scheme is shown.
    Webhook URLs keep scheme, host and port, their path shown as ``/***``. Other URLs keep
    scheme, host, port, the path (a vhost, database, bucket or queue) minus token-like segments,
    and the query parameters the sink reads as settings; user info becomes ``***`` and other query
    values too.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or ""
    except ValueError:
        return f"{url.partition(':')[0][:32]}://{HIDDEN}"
    scheme = parts.scheme.lower()
    if scheme.startswith("apprise+") or "+" in scheme:
        return f"{scheme}://{HIDDEN}"
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    if "@" in parts.netloc:
        netloc = f"{HIDDEN}@{netloc}"
    if scheme in WHOLE_PATH_SECRET:
        path = f"/{HIDDEN}" if parts.path.strip("/") else parts.path
    else:
        path = "/".join(HIDDEN if _TOKEN_LIKE.match(segment) else segment for segment in parts.path.split("/"))
    public = PUBLIC_PARAMETERS.get(scheme, frozenset())
    query = urlencode(
        [(name, _public_value(name, value) if name in public else HIDDEN) for name, value in parse_qsl(parts.query)],
        safe="*/{}:@",
    )
    return urlunsplit((scheme, netloc, path, query, ""))


def _public_value(name: str, value: str) -> str:
    """A public parameter's value; an endpoint URL is itself made safe (it may carry user info)."""
    return safe_url(value) if name == "endpoint_url" else value


def query_parameters(url: str) -> dict[str, str]:
    """The URL's query as a dict (the last value of a repeated name wins)."""
    return dict(parse_qsl(urlsplit(url).query))


def without_query(url: str, *names: str) -> str:
    """``url`` minus the named query parameters: the sinks' own settings, before a library sees the URL."""
    parts = urlsplit(url)
    kept = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name not in names]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def secrets_of(url: str, *others: str | None) -> tuple[str, ...]:
    """The strings a reason or log line must never contain: the URL, its user info, and ``others``."""
    parts = urlsplit(url)
    candidates = [url, parts.netloc.rpartition("@")[0] if "@" in parts.netloc else "", parts.password, parts.username]
    public = PUBLIC_PARAMETERS.get(parts.scheme.lower(), frozenset())
    candidates += [value for name, value in parse_qsl(parts.query) if name not in public]
    candidates += list(others)
    if parts.scheme.startswith("apprise+"):
        candidates += [url.partition("://")[2], url.partition("+")[2]]
    candidates += [unquote(candidate) for candidate in candidates if candidate]  # libraries quote them decoded
    return tuple(
        sorted({candidate for candidate in candidates if candidate and len(candidate) >= 4}, key=len, reverse=True)
    )


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret replaced by ``***``: library errors sometimes quote the URL they got."""
    for secret in secrets:
        text = text.replace(secret, HIDDEN)
    return text
