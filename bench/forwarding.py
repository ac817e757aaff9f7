"""The forwarding run: ``serve`` delivers its outbox to a webhook receiver and to RabbitMQ while
an open-loop client posts notifications at a fixed rate.

Both consumers live in the bench process and note when each event id arrives: the webhook
receiver is a few lines of asyncio HTTP/1.1 that checks every signature with the
``standardwebhooks`` package and answers 204, the RabbitMQ consumer a server-named queue bound
with ``#`` to the sink's exchange before the first event is owed (a message no queue takes is a
retry for the forwarder). The figures per sink come from the ``deliveries`` table: sustained
deliveries/s (delivered rows over first ``created_at`` to last ``delivered_at``), lag
``delivered_at - created_at`` (the outbox's own wait plus the send), delivered against what the
accepted notifications owe, and dead rows. The consumers' counts (distinct ids, repeats) say
whether what the table calls delivered arrived.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import sqlalchemy as sa
from standardwebhooks import Webhook

from bench import contenders
from bench.load import open_loop
from mps_callback.store.engine import create_engine

#: Two events per notification of the typical body (a finished WorkflowTask): the journal's and
#: the projection's. ``task.updated`` would double the count without saying anything new.
EVENTS = ("notification.received", "task.finished")
SECRET = "whsec_" + base64.b64encode(b"mps-callback-bench-signing-key!!").decode()
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
EXCHANGE = "mps.bench"
RECEIVER_PORT = 8796


@dataclass
class Arrivals:
    """What one consumer got: the first arrival time (epoch seconds) per event id, and repeats."""

    first: dict[str, float] = field(default_factory=dict)
    repeats: int = 0
    rejected: int = 0  # webhook signatures that did not verify

    def note(self, event_id: str) -> None:
        if event_id in self.first:
            self.repeats += 1
        else:
            self.first[event_id] = time.time()


async def webhook_receiver(port: int, arrivals: Arrivals) -> asyncio.Server:
    """A keep-alive HTTP/1.1 endpoint: verify, note, 204 (401 for a bad signature)."""
    verifier = Webhook(SECRET)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readline():  # the request line; b"" when the client closed
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                try:
                    verifier.verify(body, headers)
                except Exception:
                    arrivals.rejected += 1
                    writer.write(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
                else:
                    arrivals.note(headers["webhook-id"])
                    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", port)


async def rabbitmq_consumer(arrivals: Arrivals) -> Callable[[], Any]:
    """A queue bound to every routing key of the bench exchange; returns its closer."""
    connection = await aio_pika.connect_robust(AMQP)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=500)
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
    await queue.bind(exchange, "#")

    async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        arrivals.note(message.message_id or "")

    await queue.consume(take, no_ack=True)
    return connection.close


def sink_config(directory: Path, receiver_port: int) -> Path:
    events = ", ".join(f'"{event}"' for event in EVENTS)
    path = directory / "forward.toml"
    path.write_text(
        f'[[sink]]\nname = "webhook"\nurl = "http://127.0.0.1:{receiver_port}/hooks/mps"\n'
        f'secret = "{SECRET}"\nevents = [{events}]\n\n'
        f'[[sink]]\nname = "rabbitmq"\nurl = "{AMQP}?exchange={EXCHANGE}"\nevents = [{events}]\n'
    )
    return path


@dataclass
class SinkResult:
    sink: str
    expected: int
    delivered: int
    dead: int
    per_second: float
    during_load: float  # deliveries/s until the load ended
    after_load: float  # deliveries/s draining the backlog after it
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    arrived: int  # distinct event ids the consumer got
    arrival_lag_p99_s: float
    repeats: int
    rejected: int


def forwarding_run(
    backend: str, url: str, port: int, rate: float, seconds: float, template: Path, work: Path
) -> tuple[int, list[SinkResult]]:
    """Post ``rate``/s for ``seconds`` to a ``serve`` that forwards to both sinks; wait for the outbox to empty."""
    contender = contenders.ours(backend, url, 2, work / "spool-forwarding", projector=True)
    contender.env["MPS_FORWARD_CONFIG"] = str(sink_config(work, RECEIVER_PORT))
    consumers = {"webhook": Arrivals(), "rabbitmq": Arrivals()}

    async def run() -> int:
        receiver = await webhook_receiver(RECEIVER_PORT, consumers["webhook"])
        close_consumer = await rabbitmq_consumer(consumers["rabbitmq"])
        process = await asyncio.to_thread(contender.start, port, work / "forwarding.log")
        try:
            accepted = await open_loop(f"http://127.0.0.1:{port}{contender.path}", template, rate, seconds, "fwd")
            deadline = time.monotonic() + 600  # a backlog of 20,000 deliveries per sink at a few hundred/s
            while time.monotonic() < deadline:  # polling the database: no event to wait on
                if await _settled(url, accepted * len(EVENTS) * len(consumers)):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(1)  # the last confirms and 204s reach the consumers
        finally:
            await asyncio.to_thread(contenders.stop, process)
            await close_consumer()
            receiver.close()
        return accepted

    accepted = asyncio.run(run())
    rows = asyncio.run(_deliveries(url))
    return accepted, [_summarise(sink, rows, accepted * len(EVENTS), consumers[sink]) for sink in consumers]


async def _settled(url: str, expected: int) -> bool:
    """Every owed delivery row written, and none pending."""
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    async with engine.connect() as connection:
        total, pending = (
            await connection.execute(
                sa.text("SELECT COUNT(*), SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) FROM deliveries")
            )
        ).one()
    await engine.dispose()
    return int(total) >= expected and not pending


_NEVER = datetime.min  # no delivery: no rate
Delivery = tuple[str, str, str, str, datetime, datetime | None]  # sink, event, event id, status, created, delivered


async def _deliveries(url: str) -> list[Delivery]:
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    async with engine.connect() as connection:
        result = await connection.execute(
            sa.text("SELECT sink, event, event_id, status, created_at, delivered_at FROM deliveries")
        )
        rows = [
            (sink, event, event_id, status, _as_datetime(created), _as_datetime(delivered) if delivered else None)
            for sink, event, event_id, status, created, delivered in result
        ]
    await engine.dispose()
    return rows


def _as_datetime(value: datetime | str) -> datetime:
    """Naive UTC: SQLite hands back text, the servers datetimes, naive or aware."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


def _summarise(sink: str, rows: list[Delivery], expected: int, arrivals: Arrivals) -> SinkResult:
    mine = [row for row in rows if row[0] == sink]
    delivered = [(created, done) for _, _, _, status, created, done in mine if status == "delivered" and done]
    lags = [(done - created).total_seconds() for created, done in delivered]
    created_of = {event_id: _epoch(created) for _, _, event_id, _, created, _ in mine}
    arrival_lags = [at - created_of[event_id] for event_id, at in arrivals.first.items() if event_id in created_of]
    during, after = _rates(mine, delivered)
    return SinkResult(
        sink=sink,
        expected=expected,
        delivered=len(delivered),
        dead=sum(row[3] == "dead" for row in mine),
        per_second=_rate(len(delivered), min((created for created, _ in delivered), default=_NEVER), delivered),
        during_load=during,
        after_load=after,
        lag_p50_s=percentile(lags, 50),
        lag_p99_s=percentile(lags, 99),
        lag_max_s=max(lags or [float("nan")]),
        arrived=len(arrivals.first),
        arrival_lag_p99_s=percentile(arrival_lags, 99),
        repeats=arrivals.repeats,
        rejected=arrivals.rejected,
    )


def _rate(count: int, start: datetime, delivered: list[tuple[datetime, datetime]]) -> float:
    """``count`` over the time from ``start`` to the last ``delivered_at``."""
    span = (max(done for _, done in delivered) - start).total_seconds() if delivered else 0.0
    return count / span if span > 0 else float("nan")


def _rates(mine: list[Delivery], delivered: list[tuple[datetime, datetime]]) -> tuple[float, float]:
    """Deliveries/s while the load ran (until the last ``notification.received`` row) and after it:
    the forwarder shares the database's writer with the journal and the projector only while it runs."""
    received = [created for _, event, _, _, created, _ in mine if event == "notification.received"]
    if not delivered or not received:
        return float("nan"), float("nan")
    load_end = max(received)
    first = min(created for created, _ in delivered)
    before = sum(done <= load_end for _, done in delivered)
    after = [(created, done) for created, done in delivered if done > load_end]
    during = before / (load_end - first).total_seconds() if load_end > first else float("nan")
    return during, _rate(len(after), load_end, after)


def percentile(values: list[float], percent: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


def markdown(results: list[SinkResult], rate: float) -> str:
    """One row per sink; the rate as a share of the events offered (``rate`` x events per notification)."""
    offered = rate * len(EVENTS)
    lines = [
        "| sink | deliveries/s | vs offered | during load | after load | lag p50 | lag p99 | lag max "
        "| arrival lag p99 | delivered / expected | dead | arrived (distinct) | repeats |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        complete = "ok" if r.delivered >= r.expected and r.arrived >= r.expected else "LOST"
        if r.rejected:  # a signature the receiver could not verify: the run is not a success whatever arrived
            complete += f", {r.rejected} BAD SIGNATURES"
        lines.append(
            f"| {r.sink} | {r.per_second:,.0f} | {r.per_second / offered:.0%} | {r.during_load:,.0f} "
            f"| {r.after_load:,.0f} | {r.lag_p50_s:.3f} s "
            f"| {r.lag_p99_s:.3f} s | {r.lag_max_s:.3f} s | {r.arrival_lag_p99_s:.3f} s "
            f"| {r.delivered} / {r.expected} {complete} | {r.dead} | {r.arrived} | {r.repeats} |"
        )
    return "\n".join(lines)
