"""Settings, read from the environment (prefix ``MPS_``) and an optional ``.env`` file.

Secrets are ``SecretStr`` so that printing or logging the settings never shows them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mps_callback.storage import OutputUrls, cdn_domains_setting, cdn_entry, storage_setting

MIB = 1024 * 1024
ENV_FILE = ".env"
MIN_RECONCILE_INTERVAL_SECONDS = 60

#: Settings renamed (old name -> new name): the old name is still read for one release, with a
#: warning at start, and then goes. Each new field lists both in its ``validation_alias``.
RENAMED = {"MPS_WORKERS": "MPS_WEB_WORKERS", "MPS_SERVE_PROJECTOR": "MPS_SERVE_BACKGROUND"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MPS_", env_file=ENV_FILE, extra="ignore", populate_by_name=True)

    database_url: SecretStr = SecretStr("sqlite:///./mps-callback.db")
    notify_keys: Annotated[list[SecretStr], NoDecode] = []
    cdn_domains: Annotated[dict[str, str], NoDecode] = {}
    live_output_storage: str = ""
    max_skew_seconds: int = 60
    url_token: SecretStr = SecretStr("")
    api_token: SecretStr = SecretStr("")
    host: str = "0.0.0.0"  # noqa: S104 -- MPS calls in from outside; app.py warns when tokens are unset
    port: int = 8787
    #: uvicorn processes taking notifications (intake, group commit, spool drain).
    web_workers: int = Field(1, validation_alias=AliasChoices("MPS_WEB_WORKERS", "MPS_WORKERS"))
    #: serve starts and supervises the background process (projection, projection lag, retention).
    serve_background: bool = Field(True, validation_alias=AliasChoices("MPS_SERVE_BACKGROUND", "MPS_SERVE_PROJECTOR"))
    spool_dir: str = "./spool"
    max_body_bytes: int = 16 * MIB
    body_timeout_seconds: float = 30.0
    journal_budget_seconds: float = 2.0
    retention_days: int = 0
    #: How often the background process writes the counters' growth for the dashboard's health charts.
    health_sample_seconds: float = Field(60.0, gt=0, le=3600)
    verify_with_api: bool = False
    api_endpoint: str = "https://mps.tencentcloudapi.com"
    api_region: str = "ap-guangzhou"
    #: The TDMQ-CMQ queue door: the queue's data-plane endpoint and name (credentials: TENCENTCLOUD_SECRET_*).
    cmq_endpoint: str = ""
    cmq_queue: str = ""
    #: The AWS SQS door: the queue URL, and an endpoint for SQS-compatible services (credentials: AWS_*).
    sqs_queue_url: str = ""
    sqs_endpoint_url: str = ""
    #: Reconciliation through the MPS API inside serve's background process every this many seconds (0: off).
    #: 0, or 60 s to a day: each run lists 72 h of tasks, so a shorter interval only spends the API's rate
    #: limit, and a longer one would leave gaps; a negative value is a mistake, not "off".
    reconcile_interval_seconds: float = Field(0.0, ge=0, le=86400)
    log_level: str = "INFO"
    # Hostile input (bodies that cost more than they are worth; connections that never end).
    #: A body larger than this is "large": admitted under the limits below, screened in a child process.
    large_body_bytes: int = 1 * MIB
    #: Large bodies a web worker takes at once; one more is answered 503 with Retry-After.
    large_bodies: int = 2
    #: Bytes of large bodies a web worker buffers at once (503 with Retry-After beyond).
    large_body_budget_bytes: int = 40 * MIB
    #: Connections and requests uvicorn serves at once per worker (503 beyond: uvicorn's limit_concurrency).
    limit_concurrency: int = 1000

    @field_validator("notify_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        """MPS_NOTIFY_KEYS is comma-separated, so that a key can be rotated by listing both."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cdn_domains", mode="before")
    @classmethod
    def _split_domains(cls, value: object) -> object:
        """MPS_CDN_DOMAINS: ``bucket=https://cdn.example.com,other-bucket=https://...``.

        An entry without ``=`` stops the start."""
        if isinstance(value, str):
            return cdn_domains_setting(value)
        return value

    @field_validator("cdn_domains")
    @classmethod
    def _check_domains(cls, value: dict[str, str]) -> dict[str, str]:
        """Each domain becomes the host of output URLs: a missing scheme, a path or user info would build wrong ones."""
        return {bucket: cdn_entry(bucket, domain) for bucket, domain in value.items()}

    @field_validator("live_output_storage")
    @classmethod
    def _check_live_storage(cls, value: str) -> str:
        """MPS_LIVE_OUTPUT_STORAGE: ``cos://bucket-appid.region``, ``s3://bucket.region`` or ``https://host``."""
        value = value.strip()
        if value:
            storage_setting(value)
        return value

    @field_validator("reconcile_interval_seconds")
    @classmethod
    def _check_reconcile_interval(cls, value: float) -> float:
        if 0 < value < MIN_RECONCILE_INTERVAL_SECONDS:
            raise ValueError(f"0 (off) or at least {MIN_RECONCILE_INTERVAL_SECONDS} seconds")
        return value

    @cached_property
    def output_urls(self) -> OutputUrls:
        """What the projector needs to turn output paths into URLs."""
        live = storage_setting(self.live_output_storage) if self.live_output_storage else None
        return OutputUrls(self.cdn_domains, live)

    @cached_property
    def notify_key_values(self) -> tuple[str, ...]:
        return tuple(key.get_secret_value() for key in self.notify_keys)


def renamed_settings_in_use(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The old names of renamed settings set in the environment or ``.env``, for a warning at start."""
    given = {name.upper() for name in (*environ, *dotenv_values(ENV_FILE))}
    return [old for old in RENAMED if old in given]
