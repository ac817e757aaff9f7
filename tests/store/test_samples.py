"""``health_samples`` on real databases: growth per minute, counter resets, nodes adding up, the purge."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from mps_callback import metrics
from mps_callback.store import samples
from mps_callback.store.engine import create_engine
from mps_callback.store.samples import Reading, Sampler
from mps_callback.store.tables import health_samples
from tests.support.db import query, run

T0 = datetime(2026, 11, 24, 10, 0, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class Counters:
    """Readings a test sets, in place of the service's counters (the arithmetic under test is the sampler's)."""

    def __init__(self) -> None:
        self.now: Reading = {}

    def __call__(self) -> Reading:
        return dict(self.now)


def stored(url: str) -> dict[tuple[datetime, str, str, str], float]:
    rows = query(url, sa.select(health_samples.c.minute, health_samples.c.node, health_samples.c.metric,
                                health_samples.c.label, health_samples.c.value))  # fmt: skip
    return {(minute.replace(tzinfo=UTC), node, metric, label): value for minute, node, metric, label, value in rows}


@pytest.fixture
def sampling(database_url: str) -> Iterator[tuple[str, Counters, Sampler]]:
    engine = create_engine(database_url)
    counters = Counters()
    try:
        yield database_url, counters, Sampler(engine, node="host-a:1", read=counters)
    finally:
        run(engine.dispose())


def sample_at(sampler: Sampler, at: datetime) -> Reading:
    async def go() -> Reading:
        try:
            return await sampler.sample(at)
        finally:
            await sampler.engine.dispose()  # the engine's connections belong to this event loop

    return run(go())


def test_each_minute_keeps_the_growth_and_a_reset_counts_its_new_value(sampling):
    url, counters, sampler = sampling
    counters.now = {("notifications", "accepted"): 100.0, ("refusals", "bad_sign"): 7.0}
    assert sample_at(sampler, T0) == {}  # the starting point: nothing before it is attributed
    assert stored(url) == {}

    counters.now = {("notifications", "accepted"): 130.0, ("refusals", "bad_sign"): 7.0}
    sample_at(sampler, T0 + MINUTE)
    counters.now = {("notifications", "accepted"): 4.0, ("refusals", "bad_sign"): 2.0}  # a restart: counted from 0
    sample_at(sampler, T0 + 2 * MINUTE)

    first, second = datetime(2026, 11, 24, 10, 1, tzinfo=UTC), datetime(2026, 11, 24, 10, 2, tzinfo=UTC)
    assert stored(url) == {
        (first, "host-a:1", "notifications", "accepted"): 30.0,
        (second, "host-a:1", "notifications", "accepted"): 4.0,
        (second, "host-a:1", "refusals", "bad_sign"): 2.0,
    }


def test_two_runs_in_one_minute_add_up_and_nodes_add_up_when_read(sampling):
    url, counters, sampler = sampling
    other_counters = Counters()
    other = Sampler(sampler.engine, node="host-b:2", read=other_counters)
    for start in (sampler, other):
        sample_at(start, T0)
    counters.now = {("notifications", "accepted"): 3.0}
    sample_at(sampler, T0 + timedelta(seconds=10))
    counters.now = {("notifications", "accepted"): 5.0}
    sample_at(sampler, T0 + timedelta(seconds=20))
    other_counters.now = {("notifications", "accepted"): 10.0, ("notifications", "refused"): 1.0}
    sample_at(other, T0 + timedelta(seconds=20))

    minute = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert stored(url)[(minute, "host-a:1", "notifications", "accepted")] == 5.0

    async def read() -> samples.Series:
        try:
            return await samples.series(sampler.engine, T0 + timedelta(seconds=20), 1)
        finally:
            await sampler.engine.dispose()

    found = run(read())
    assert len(found.minutes) == 60 and found.minutes[-1] == int(minute.timestamp())
    assert found.notifications["accepted"][-1] == 15.0 and found.notifications["refused"][-1] == 1.0
    assert sum(found.notifications["accepted"][:-1]) == 0.0  # minutes without samples are zeros
    assert found.totals("notifications") == {"accepted": 15.0, "refused": 1.0}


def test_samples_older_than_two_days_are_purged_by_the_sampler(sampling):
    url, counters, sampler = sampling
    day = timedelta(days=1)
    sample_at(sampler, T0)
    for total, at in ((1.0, T0 + MINUTE), (2.0, T0 + day + MINUTE), (3.0, T0 + 2 * day + 3 * MINUTE)):
        sample_at(sampler, at - MINUTE)  # no growth: nothing written
        counters.now = {("notifications", "accepted"): total}
        sample_at(sampler, at)
    first = datetime(2026, 11, 24, 10, 1, tzinfo=UTC)  # the middle of 10:00:30 .. 10:01:30
    assert first not in {minute for minute, *_ in stored(url)}  # 48 h and 2 min before the last run
    assert sorted(minute for minute, *_ in stored(url)) == [first + day, first + 2 * day + 2 * MINUTE]


def test_the_commit_time_per_minute_is_the_mean_and_95th_percentile_over_every_node():
    minute = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    buckets = {"0.001": 50.0, "0.0025": 90.0, "0.005": 100.0, "+Inf": 100.0}
    rows = [(minute, "journal_commits", "", 60.0), (minute, "journal_commits", "", 40.0)]  # two nodes
    rows += [(minute, "journal_commit_seconds", "", 0.15)]
    rows += [(minute, "journal_commit_le", le, count) for le, count in buckets.items()]
    found = samples.assemble(rows, minute - MINUTE, 3)
    assert found.commits == [0.0, 100.0, 0.0]
    assert found.commit_mean_ms == [None, pytest.approx(1.5), None]
    # rank 95 lies in (0.0025, 0.005]: 90 below it, 10 in it, halfway through
    assert found.commit_p95_ms == [None, pytest.approx(3.75), None]
    assert found.window_p95_ms == pytest.approx(3.75)


def test_the_service_counters_are_read_by_outcome_reason_and_bucket():
    before = samples.read_counters()
    metrics.NOTIFICATIONS.labels("vod", "WorkflowTask", "accepted", "").inc(2)
    metrics.NOTIFICATIONS.labels("live", "other", "refused", "bad_sign").inc()
    metrics.NOTIFICATIONS.labels("unknown", "none", "refused", "not_json").inc(3)
    metrics.JOURNAL_COMMIT_SECONDS.observe(0.003)
    grown = samples.growth(before, samples.read_counters())
    assert grown == {
        ("notifications", "accepted"): 2.0,
        ("notifications", "refused"): 4.0,
        ("refusals", "bad_sign"): 1.0,
        ("refusals", "not_json"): 3.0,
        ("journal_commits", ""): 1.0,
        ("journal_commit_seconds", ""): pytest.approx(0.003),
        ("journal_commit_le", "0.005"): 1.0,
        ("journal_commit_le", "0.01"): 1.0,
        ("journal_commit_le", "0.025"): 1.0,
        ("journal_commit_le", "0.05"): 1.0,
        ("journal_commit_le", "0.1"): 1.0,
        ("journal_commit_le", "0.25"): 1.0,
        ("journal_commit_le", "0.5"): 1.0,
        ("journal_commit_le", "1.0"): 1.0,
        ("journal_commit_le", "2.5"): 1.0,
        ("journal_commit_le", "+Inf"): 1.0,
    }


def test_under_serve_the_first_run_counts_from_zero_and_a_restarted_sampler_goes_on_from_the_last(sampling, tmp_path):
    url, counters, sampler = sampling
    sampler.saved = tmp_path / "health-samples.json"
    counters.now = {("notifications", "accepted"): 5.0}
    assert sample_at(sampler, T0) == {("notifications", "accepted"): 5.0}  # counted since serve started

    restarted = Sampler(sampler.engine, node="host-a:2", read=counters, saved=sampler.saved)
    counters.now = {("notifications", "accepted"): 8.0}
    assert sample_at(restarted, T0 + MINUTE) == {("notifications", "accepted"): 3.0}
    assert sorted(stored(url).values()) == [3.0, 5.0]

    sampler.saved.write_text("not json")  # unreadable: start afresh, as outside serve
    assert sample_at(Sampler(sampler.engine, read=counters, saved=sampler.saved), T0 + 2 * MINUTE) == {}
