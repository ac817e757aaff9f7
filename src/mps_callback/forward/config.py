"""Sink configuration: the TOML file named by ``MPS_FORWARD_CONFIG``, one ``[[sink]]`` table each.

```toml
[[sink]]
name = "app"                                  # unique; appears in metrics and the API
url = "https://app.example.com/hooks/mps"     # the scheme picks the kind (sinks.SINKS)
secret = "whsec_..."                          # webhooks only: the Standard Webhooks signing secret
events = ["task.finished", "task.failed"]     # default: all of event.EVENT_TYPES
kinds = ["vod", "live"]                       # default: both
event_types = ["WorkflowTask"]                # default: any
retry_schedule = [0, 5, 300]                  # default: DEFAULT_RETRY_SCHEDULE
```

A mistake stops ``serve`` at start with one `ForwardConfigError` line naming the file and the
sink, never quoting a URL or secret: an operator fixes it before any event is owed to a sink
that cannot exist.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator, model_validator

from mps_callback.forward.event import EVENT_TYPES, Event
from mps_callback.forward.sinks import Sink, open_sink
from mps_callback.forward.urls import safe_url

__all__ = ["DEFAULT_RETRY_SCHEDULE", "ForwardConfigError", "SinkConfig", "from_environment", "load", "safe_url"]

#: Seconds to wait before each attempt, each counted from the previous one (the first from the
#: event): the Standard Webhooks example, immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
#: 20 h, 24 h. After the last attempt fails, the delivery is dead.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
KINDS = ("vod", "live")
#: A name is a metrics label and a path segment of the API.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fullmatch: no newline slips past a `$`
#: The longest wait a schedule may ask for between two attempts, and the most attempts: a week,
#: fifty. Beyond them lies a date no database stores, or a delivery nobody will see again.
MAX_RETRY_DELAY_SECONDS = 7 * 24 * 3600
MAX_ATTEMPTS = 50
ENVIRONMENT_VARIABLE = "MPS_FORWARD_CONFIG"


class ForwardConfigError(Exception):
    """The forward configuration cannot be used; the message is one line, safe to log."""


class SinkConfig(BaseModel):
    """One ``[[sink]]`` table, checked: the URL and secret are kept secret, the filters are known names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: SecretStr
    secret: SecretStr | None = None
    events: tuple[str, ...] = EVENT_TYPES
    kinds: tuple[str, ...] = KINDS
    event_types: tuple[str, ...] = ()
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError("`name` must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        return name

    @field_validator("events")
    @classmethod
    def _check_events(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        return _known("events", events, EVENT_TYPES)

    @field_validator("kinds")
    @classmethod
    def _check_kinds(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        return _known("kinds", kinds, KINDS)

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _check_schedule(cls, schedule: Any) -> Any:
        """Whole or fractional seconds, none negative; TOML strings or booleans are mistakes, not numbers."""
        if not isinstance(schedule, list | tuple) or not 0 < len(schedule) <= MAX_ATTEMPTS:
            raise ValueError(f"`retry_schedule` must be a list of 1 to {MAX_ATTEMPTS} waits in seconds")
        for delay in schedule:
            if (
                isinstance(delay, bool)
                or not isinstance(delay, int | float)
                or not math.isfinite(delay)
                or not 0 <= delay <= MAX_RETRY_DELAY_SECONDS
            ):
                raise ValueError(
                    f"`retry_schedule` entries must be seconds from 0 to {MAX_RETRY_DELAY_SECONDS} (a week)"
                )
        return schedule

    @model_validator(mode="after")
    def _check_url(self) -> SinkConfig:
        """Build the sink once, so a bad scheme, port, query or missing secret stops start rather than the first
        delivery."""
        try:
            _ = urlsplit(self.url.get_secret_value()).port  # reading it checks it
        except ValueError:
            raise ValueError("`url` has a port that is not a number from 0 to 65535") from None
        self.open()
        return self

    @property
    def safe_url(self) -> str:
        """The URL as logs, metrics and the API show it."""
        return safe_url(self.url.get_secret_value())

    def wants(self, event: Event) -> bool:
        """Whether this sink takes ``event``: its type, and the task's kind and MPS event type, pass the filters.

        An event without a kind (a notification whose shape was not recognised) passes the kinds
        filter, so that it is not lost to a filter written for the shapes we know; one without an
        MPS event type passes only when ``event_types`` is left open.
        """
        return (
            event.type in self.events
            and (event.kind is None or event.kind in self.kinds)
            and (not self.event_types or event.event_type in self.event_types)
        )

    def open(self) -> Sink:
        """A new sink for this configuration (no connection yet)."""
        secret = self.secret.get_secret_value() if self.secret is not None else None
        return open_sink(self.name, self.url.get_secret_value(), secret)


def _known(field: str, values: tuple[str, ...], known: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [value for value in values if value not in known]
    if unknown:
        raise ValueError(f"`{field}` has unknown names {unknown}; known: {list(known)}")
    if not values:
        raise ValueError(f"`{field}` is empty: the sink would receive nothing (leave it out for all)")
    return values


def from_environment(environ: Mapping[str, str] = os.environ) -> tuple[SinkConfig, ...]:
    """The sinks of the file ``MPS_FORWARD_CONFIG`` names; none when it is unset or empty."""
    path = environ.get(ENVIRONMENT_VARIABLE, "").strip()
    return load(path) if path else ()


def load(path: str | Path) -> tuple[SinkConfig, ...]:
    """Every ``[[sink]]`` of the TOML file at ``path``, checked; `ForwardConfigError` at the first mistake."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ForwardConfigError(f"{ENVIRONMENT_VARIABLE} {path}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ForwardConfigError(f"{ENVIRONMENT_VARIABLE} {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ForwardConfigError(f"{ENVIRONMENT_VARIABLE} {path}: not valid TOML: {error}") from None
    except RecursionError:
        raise ForwardConfigError(f"{ENVIRONMENT_VARIABLE} {path}: nested too deeply to be a sink table") from None
    try:
        return parse(document, source=f"{ENVIRONMENT_VARIABLE} {path}")
    except RecursionError:
        raise ForwardConfigError(f"{ENVIRONMENT_VARIABLE} {path}: nested too deeply to be a sink table") from None


def parse(document: Mapping[str, Any], source: str = ENVIRONMENT_VARIABLE) -> tuple[SinkConfig, ...]:
    """The sinks of a parsed TOML document (``{"sink": [{...}, ...]}``)."""
    unknown = sorted(set(document) - {"sink"})
    if unknown:
        raise ForwardConfigError(f"{source}: unknown top-level keys {unknown}; sinks are [[sink]] tables")
    tables = document.get("sink", [])
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise ForwardConfigError(f"{source}: `sink` must be [[sink]] tables")
    sinks: list[SinkConfig] = []
    for number, table in enumerate(tables, start=1):
        label = f"sink {table['name']!r}" if isinstance(table.get("name"), str) else f"sink #{number} (no name)"
        try:
            sink = SinkConfig.model_validate(table)
        except ValidationError as error:
            raise ForwardConfigError(f"{source}: {label}: {_first_problem(error)}") from None
        if any(other.name == sink.name for other in sinks):
            raise ForwardConfigError(f"{source}: {label}: the name is used by another sink; names must be unique")
        sinks.append(sink)
    return tuple(sinks)


def _first_problem(error: ValidationError) -> str:
    """One line from pydantic's report, without the input (it may be a URL with a password)."""
    problem = error.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in problem["loc"])
    if problem["type"] == "extra_forbidden":
        return f"unknown key `{where}`; known: {', '.join(SinkConfig.model_fields)}"
    if problem["type"] == "missing":
        return f"`{where}` is required"
    message = problem["msg"].removeprefix("Value error, ")
    return f"{message}" if not where or message.startswith("`") else f"`{where}`: {message}"
