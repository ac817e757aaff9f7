"""Prometheus metrics. Label values come from fixed sets, never from request bodies.

``serve`` runs web workers and a background process; it points ``PROMETHEUS_MULTIPROC_DIR``
at a fresh directory so ``/metrics`` adds up every process's figures (prometheus-client's
multiprocess mode). A gauge that measures the database rather than its own process says
``mostrecent``: the latest measurement wins, whichever process took it, and a background
process that died does not leave its last figure standing.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from mps_callback.mps import EVENT_CONTAINERS, LIVE_NOTIFICATION_TYPES

KNOWN_TYPES = frozenset(EVENT_CONTAINERS) | frozenset(LIVE_NOTIFICATION_TYPES)

NOTIFICATIONS = Counter(
    "mps_notifications_total",
    "Notifications received, by kind (vod/live), type, outcome and refusal reason",
    ["kind", "type", "outcome", "reason"],
)
SPOOLED = Counter(
    "mps_spooled_total", "Notifications written to the local spool because the database did not take them"
)
JOURNAL_COMMIT_SECONDS = Histogram(
    "mps_journal_commit_seconds",
    "Time to commit one group-commit batch",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
JOURNAL_BATCH_SIZE = Histogram(
    "mps_journal_batch_size",
    "Notifications per group-commit batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
PROJECTION_LAG_SECONDS = Gauge(
    "mps_projection_lag_seconds",
    "Age of the oldest notification not yet projected (0 when none)",
    multiprocess_mode="mostrecent",
)
PROJECTED = Counter("mps_projected_total", "Notifications projected")
DOOR_MESSAGES = Counter(
    "mps_door_messages_total",
    "Messages a queue door took, by door (cmq, sqs) and outcome (accepted, duplicate, spooled, refused, "
    "unavailable; acknowledged: removed from the queue)",
    ["door", "outcome"],
)
DOOR_ERRORS = Counter("mps_door_errors_total", "Failed receives or acknowledgements, by door", ["door"])
DOOR_LAG_SECONDS = Gauge(
    "mps_door_lag_seconds",
    "Age of the last message a queue door took, when its transport said when it was sent",
    ["door"],
    multiprocess_mode="mostrecent",
)
# The one label set taken from bodies: clipped and bounded per process by project/family.notice_unknown.
UNKNOWN_FAMILIES = Counter(
    "mps_unknown_family_total",
    "Results of a family or live NotificationType this version does not know (projected generically)",
    ["group", "family"],
)
PROJECTION_FAILURES = Counter(
    "mps_projection_failures_total", "Failed projection attempts (each retried later or parked)"
)
PROJECTION_PARKED = Counter("mps_projection_parked_total", "Notifications parked after every projection attempt failed")
PROJECTIONS_FAILED = Gauge(
    "mps_projections_failed",
    "Parked notifications waiting for `reproject --failed`",
    multiprocess_mode="mostrecent",
)
QUARANTINED = Counter(
    "mps_quarantined_total",
    "Spooled records set aside in spool/quarantine, by reason (damaged, too_large, refused)",
    ["reason"],
)
for _reason in ("damaged", "too_large", "refused"):  # every series from the start, at 0
    QUARANTINED.labels(_reason)
SPOOL_OLDEST_SECONDS = Gauge(
    "mps_spool_oldest_seconds",
    "Age of the oldest notification waiting in the spool (0 when none)",
    multiprocess_mode="max",
)
SPOOL_QUARANTINE_DEPTH = Gauge(
    "mps_spool_quarantined",
    "Records sitting in spool/quarantine",
    multiprocess_mode="max",
)
SPOOL_DEPTH = Gauge("mps_spool_depth", "Notifications waiting in the local spool", multiprocess_mode="max")


def type_label(name: str | None) -> str:
    """EventType/NotificationType as a label: unknown values collapse so a body cannot mint series."""
    if not name:
        return "none"
    return name if name in KNOWN_TYPES else "other"


def exposition() -> bytes:
    """The text format of every metric, summed over processes in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client is untyped here
        return generate_latest(registry)
    return generate_latest()


# Forwarding, per sink: the label is the [[sink]] name from MPS_FORWARD_CONFIG, never its URL.
DELIVERIES = Counter(
    "mps_deliveries_total",
    "Delivery attempts by sink and outcome (delivered, retry, dead, disable)",
    ["sink", "outcome"],
)
DELIVERY_LAG_SECONDS = Histogram(
    "mps_delivery_lag_seconds",
    "From the event's creation to its delivery, by sink",
    ["sink"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 86400),
)
DELIVERIES_BACKLOG = Gauge(
    "mps_deliveries_backlog",
    "Pending deliveries due now, by sink",
    ["sink"],
    multiprocess_mode="mostrecent",
)
DELIVERIES_DEAD = Gauge(
    "mps_deliveries_dead",
    "Deliveries given up after their retry schedule, waiting for a retry, by sink",
    ["sink"],
    multiprocess_mode="mostrecent",
)
