"""``health_samples``: the service's counters minute by minute, for the dashboard's health charts.

The figures of ``/metrics`` live in the processes that count them and vanish with them, and a
user may have no Prometheus to keep them. So the background process reads the counters (every
process's, added up, under serve's multiprocess mode) once a minute and writes how much each
grew, per node (``host:pid``): several nodes writing the same minute add up when read. The
health page charts the last hours from here.

What is kept is driven by :data:`FIGURES`: notifications by outcome, refusals by reason, and
the journal's commit-time histogram as count, sum and bucket growths, so a minute's mean and
95th percentile can be computed over every node at once (a mean or a percentile per node
would not add up).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from mps_callback.store.engine import for_writing
from mps_callback.store.tables import health_samples
from mps_callback.store.types import width

log = logging.getLogger(__name__)

#: Samples older than this are deleted by the sampler: the charts show at most the last 48 hours.
KEEP = timedelta(hours=48)
MINUTE = timedelta(minutes=1)

#: What the service's counters say: (health_samples.metric, health_samples.label) -> running total.
Reading = dict[tuple[str, str], float]


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure kept per minute: the growth of the Prometheus sample ``sample``, split by its label ``label``.

    ``only`` keeps the samples whose labels have these values (refusals: outcome ``refused``).
    """

    metric: str
    sample: str
    label: str | None = None
    only: tuple[tuple[str, str], ...] = ()

    def wants(self, name: str, labels: dict[str, str]) -> bool:
        return name == self.sample and all(labels.get(key) == value for key, value in self.only)


NOTIFICATIONS = "notifications"
REFUSALS = "refusals"
COMMITS = "journal_commits"
COMMIT_SECONDS = "journal_commit_seconds"
COMMIT_BUCKETS = "journal_commit_le"

FIGURES = (
    Figure(NOTIFICATIONS, "mps_notifications_total", "outcome"),
    Figure(REFUSALS, "mps_notifications_total", "reason", only=(("outcome", "refused"),)),
    Figure(COMMITS, "mps_journal_commit_seconds_count"),
    Figure(COMMIT_SECONDS, "mps_journal_commit_seconds_sum"),
    Figure(COMMIT_BUCKETS, "mps_journal_commit_seconds_bucket", "le"),
)


# ---------------------------------------------------------------- reading the counters


def _registry() -> Any:
    """Every process's figures under serve (``PROMETHEUS_MULTIPROC_DIR``), else this process's, as ``/metrics``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client is untyped here
        return registry
    return REGISTRY


def read_counters(registry: Any = None) -> Reading:
    """The running totals of :data:`FIGURES` now, summed over the labels each figure does not split by."""
    reading: Reading = {}
    for family in (registry or _registry()).collect():
        for sample in family.samples:
            for figure in FIGURES:
                if figure.wants(sample.name, sample.labels):
                    key = (figure.metric, sample.labels.get(figure.label, "") if figure.label else "")
                    reading[key] = reading.get(key, 0.0) + sample.value
    return reading


def growth(before: Reading, now: Reading) -> Reading:
    """How much each figure grew from ``before`` to ``now``; only the ones that grew.

    A counter below its earlier value was reset (its process restarted): all of its new value
    is growth. A figure not seen before grew from zero.
    """
    grown = {}
    for key, value in now.items():
        earlier = before.get(key, 0.0)
        change = value - earlier if value >= earlier else value
        if change > 0:
            grown[key] = change
    return grown


def this_node() -> str:
    """``host:pid``, cut to fit the column (the pid is kept whole)."""
    pid = str(os.getpid())
    return f"{socket.gethostname()[: width(health_samples.c.node) - len(pid) - 1]}:{pid}"


def minute_of(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(second=0, microsecond=0)


# ---------------------------------------------------------------- the sampler


@dataclass
class Sampler:
    """The background process's job: each run writes the growth since the previous run.

    The growth goes to the minute holding the middle of the interval it covers. A run whose
    write fails keeps the old starting point, so the next run writes that growth too.

    Under serve, ``saved`` (a file in serve's runtime directory) keeps the last reading written:
    a background process serve restarts goes on from it, and the first one of a serve starts
    from zero, because serve's multiprocess directory was created empty with it (so what the
    web workers counted before the background process started is charted too). Elsewhere the
    first run only takes the starting point: what the counters held before is nobody's minute.
    """

    engine: AsyncEngine
    node: str = field(default_factory=this_node)
    read: Callable[[], Reading] = read_counters
    keep: timedelta = KEEP
    saved: Path | None = None
    _last: tuple[datetime, Reading] | None = None

    async def sample(self, now: datetime | None = None) -> Reading:
        """Read the counters, write their growth since the last run, purge old samples; return the growth."""
        now = now or datetime.now(UTC)
        reading = self.read()
        if self._last is None:
            self._last = self._resumed(now)
        if self._last is None:
            self._last = (now, reading)
            return {}
        since, before = self._last
        grown = growth(before, reading)
        await record(self.engine, minute_of(since + (now - since) / 2), self.node, grown)
        self._last = (now, reading)
        self._save(now, reading)
        await purge(self.engine, now - self.keep)
        return grown

    def _resumed(self, now: datetime) -> tuple[datetime, Reading] | None:
        """Where an earlier background process of this serve stopped; zero for the first; None outside serve."""
        if self.saved is None:
            return None
        try:
            kept = json.loads(self.saved.read_text())
            reading = {(metric, label): float(value) for metric, label, value in kept["reading"]}
            return datetime.fromisoformat(kept["at"]), reading
        except FileNotFoundError:
            return now, {}
        except (OSError, ValueError, KeyError, TypeError) as error:  # unreadable: start afresh rather than guess
            log.warning("health samples: last reading unreadable", extra={"error": str(error)[:200]})
            return None

    def _save(self, now: datetime, reading: Reading) -> None:
        if self.saved is None:
            return
        rows = [[metric, label, value] for (metric, label), value in reading.items()]
        kept = {"at": now.isoformat(), "reading": rows}
        partial = self.saved.with_suffix(".partial")
        try:
            partial.write_text(json.dumps(kept))
            partial.replace(self.saved)
        except OSError as error:  # serve went away with its directory: nothing to resume
            log.debug("health samples: last reading not kept", extra={"error": str(error)})


# ---------------------------------------------------------------- writing and purging


def _adding(dialect: str) -> Any:
    """``INSERT`` that adds the value to the row of the same minute, node, metric and label when there is one."""
    table = health_samples
    key = ["minute", "node", "metric", "label"]
    if dialect in ("mysql", "mariadb"):
        insert = mysql.insert(table)
        return insert.on_duplicate_key_update(value=table.c.value + insert.inserted.value)
    dialects: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
    if dialect not in dialects:
        raise NotImplementedError(f"unsupported database backend {dialect}")
    statement = dialects[dialect](table)
    return statement.on_conflict_do_update(index_elements=key, set_={"value": table.c.value + statement.excluded.value})


async def record(engine: AsyncEngine, minute: datetime, node: str, grown: Reading) -> None:
    """Add ``grown`` to the samples of ``minute`` for ``node`` (a second run in the same minute adds up)."""
    if not grown:
        return
    rows = [
        {"minute": minute_of(minute), "node": node, "metric": metric, "label": label, "value": value}
        for (metric, label), value in sorted(grown.items())
    ]
    writer = for_writing(engine)
    async with writer.begin() as connection:
        await connection.execute(_adding(writer.dialect.name), rows)


async def purge(engine: AsyncEngine, before: datetime) -> int:
    """Delete the samples of minutes before ``before``; return how many."""
    async with for_writing(engine).begin() as connection:
        result = await connection.execute(health_samples.delete().where(health_samples.c.minute < minute_of(before)))
    return int(result.rowcount or 0)


# ---------------------------------------------------------------- reading the minutes back


@dataclass(frozen=True, slots=True)
class Series:
    """Per-minute figures over a window, every node added up; a minute without samples is zero.

    ``minutes`` are the minutes' starts (Unix seconds, UTC), oldest first; ``notifications``
    maps each outcome and ``refusals`` each reason to one value per minute; ``commits`` is
    commits per minute, ``commit_mean_ms`` and ``commit_p95_ms`` the commit time (None in a
    minute without commits: there is no time to show).
    """

    minutes: list[int]
    notifications: dict[str, list[float]]
    refusals: dict[str, list[float]]
    commits: list[float]
    commit_mean_ms: list[float | None]
    commit_p95_ms: list[float | None]
    #: Over the whole window.
    window_mean_ms: float | None
    window_p95_ms: float | None

    def totals(self, metric: str) -> dict[str, float]:
        """Each label's sum over the window, largest first."""
        found = self.notifications if metric == NOTIFICATIONS else self.refusals
        sums = {label: sum(values) for label, values in found.items()}
        return dict(sorted(sums.items(), key=lambda item: (-item[1], item[0])))


async def series(engine: AsyncEngine, until: datetime, hours: int) -> Series:
    """The ``hours`` before ``until`` (its minute included), minute by minute."""
    last = minute_of(until)
    first = last - timedelta(hours=hours) + MINUTE
    query = (
        sa.select(
            health_samples.c.minute,
            health_samples.c.metric,
            health_samples.c.label,
            sa.func.sum(health_samples.c.value),
        )
        .where(health_samples.c.minute >= first, health_samples.c.minute <= last)
        .group_by(health_samples.c.minute, health_samples.c.metric, health_samples.c.label)
    )
    async with engine.connect() as connection:
        found = await connection.execute(query)
        rows = [(minute, metric, label, float(value)) for minute, metric, label, value in found]
    return assemble(rows, first, hours * 60)


def assemble(rows: Iterable[tuple[datetime, str, str, float]], first: datetime, count: int) -> Series:
    """Rows of (minute, metric, label, value) as one value per minute from ``first``, zeros where none."""
    index = {first + MINUTE * step: step for step in range(count)}
    by_metric: dict[str, dict[str, list[float]]] = {}
    for minute, metric, label, value in rows:
        step = index.get(minute_of(minute))
        if step is not None:
            by_metric.setdefault(metric, {}).setdefault(label, [0.0] * count)[step] += value
    commits = by_metric.get(COMMITS, {}).get("", [0.0] * count)
    seconds = by_metric.get(COMMIT_SECONDS, {}).get("", [0.0] * count)
    buckets = by_metric.get(COMMIT_BUCKETS, {})
    all_commits = sum(commits)
    return Series(
        minutes=[int((first + MINUTE * step).timestamp()) for step in range(count)],
        notifications=by_metric.get(NOTIFICATIONS, {}),
        refusals=by_metric.get(REFUSALS, {}),
        commits=commits,
        commit_mean_ms=[1000 * total / n if n > 0 else None for total, n in zip(seconds, commits, strict=True)],
        commit_p95_ms=[
            _quantile(0.95, {label: values[step] for label, values in buckets.items()}, commits[step])
            for step in range(count)
        ],
        window_mean_ms=1000 * sum(seconds) / all_commits if all_commits > 0 else None,
        window_p95_ms=_quantile(0.95, {label: sum(values) for label, values in buckets.items()}, all_commits),
    )


def _quantile(q: float, buckets: dict[str, float], count: float) -> float | None:
    """The ``q`` quantile in ms from cumulative bucket counts (``le`` -> count), as Prometheus's histogram_quantile.

    Linear within the bucket it falls in; in the +Inf bucket, the largest finite bound.
    """
    if count <= 0:
        return None
    bounds = sorted((float(le), value) for le, value in buckets.items())
    rank, lower, below = q * count, 0.0, 0.0
    for upper, cumulative in bounds:
        if cumulative >= rank:
            if math.isinf(upper):
                return 1000 * lower
            share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
            return 1000 * (lower + (upper - lower) * share)
        lower, below = upper, cumulative
    return 1000 * lower
