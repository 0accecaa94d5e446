"""`cdb bench consume`: the consumer runtime against a raw XREADGROUP loop, in one run.

Baseline: XREADGROUP COUNT 1000, JSON decoding of each entry's body (the codec's own JSON
parser, :func:`cdb.eventstore.codec.parse_json`, so both sides parse alike), one XACK per batch.
Measured against it, on the same entries (one consumer group each):

- the runtime with a no-op handler (every entry decoded into its contract), 1 and 2 processes;
- the runtime with a handler that appends one output event per input, 1 and 2 processes;
- for reference, decoding alone (``decode_fields`` of every entry, no Redis): the contract
  decoding that every runtime path pays and the raw loop does not.

Workers are separate processes, started first and released together through their stdin, so
process start-up is not timed. Headline ``ratio`` = runtime no-op (1 process) / raw loop.

Each runtime run also records the CPU spent while it was timed: ``cores_busy`` (every process
of this machine, in cores kept busy) and ``redis_cores`` (the server's own figure, from INFO).
They say what a scale figure means: two workers that leave cores idle are waiting on
something, two that keep every core busy are bound by the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
import redis

from cdb.domain.contracts import AlertV1, CircuitBreakerV1
from cdb.domain.envelope import EventEnvelope, EventMetadata, NewEvent, derive_id
from cdb.domain.event_types import EventType
from cdb.eventstore.codec import decode_fields, parse_json
from cdb.eventstore.keys import Keys
from cdb.eventstore.namespace import delete_namespace
from cdb.eventstore.store import AppendRequest, EventStore
from cdb.eventstore.topology import Topology, parse_topology
from cdb.projections.split import usable_cpus
from cdb.runtime.consumer import Consumer
from cdb.runtime.handler import Ack, Delivery, Handler
from cdb.runtime.worker import run_worker

TOPIC_IN = "bench_in"
BATCH = 1000
MAX_REPEAT = 5  # each path runs this many times at most (best run counts: shared cores)
_T0 = datetime(2026, 1, 1, tzinfo=UTC)
_MODES = ("noop", "append")


def bench_topology() -> Topology:
    policy = {
        "max_deliveries": 5,
        "backoff_base_ms": 100,
        "backoff_cap_ms": 1000,
        "claim_idle_ms": 30_000,
        "batch_size": BATCH,
    }
    groups = {
        f"{path}-{rep}": dict(policy)
        for path in ("raw", *(f"{mode}{n}" for mode in _MODES for n in (1, 2)))
        for rep in range(MAX_REPEAT)
    }
    raw: dict[str, Any] = {
        "topics": {
            TOPIC_IN: {"events": ["ALERT_RAISED"], "groups": groups},
            "bench_out": {"events": ["CIRCUIT_BREAKER_TRIPPED"]},
        }
    }
    return parse_topology(raw, Path("bench"))


def _input(aggregate: str, n: int) -> NewEvent:
    return NewEvent(
        event_id=derive_id("bench", aggregate, str(n)),
        event_type=EventType.ALERT_RAISED,
        timestamp=_T0,
        payload=AlertV1(
            level="WARNING",
            code="BENCH_EXPOSURE",
            message=f"exposure of {aggregate} at {n}: 0.2871 of equity, limit 0.30 (warning)",
            context={"symbol": "BTCUSDT", "exposure": "0.2871", "limit": "0.30", "n": str(n)},
            timestamp=_T0,
        ),
        metadata=EventMetadata(correlation_id=aggregate, producer="bench"),
    )


def _output(event: EventEnvelope) -> AppendRequest:
    stream = "risk-" + event.stream_id.removeprefix("alert-")
    out = NewEvent(
        event_id=derive_id("bench-out", str(event.event_id)),
        event_type=EventType.CIRCUIT_BREAKER_TRIPPED,
        timestamp=_T0,
        payload=CircuitBreakerV1(
            trading_day=date(2026, 1, 1),
            daily_pnl=Decimal("-512.40"),
            threshold=Decimal("-500"),
            reason="daily drawdown limit crossed",
            timestamp=_T0,
        ),
        metadata=EventMetadata(causation_id=str(event.event_id), producer="bench"),
    )
    return AppendRequest(stream, [out], None)


def noop(_event: EventEnvelope, _delivery: Delivery) -> None:
    return None


def append_one(event: EventEnvelope, _delivery: Delivery) -> Ack:
    return Ack(outputs=[_output(event)])


def fill(store: EventStore, entries: int) -> None:
    # Two events per aggregate, 10_000 entries apart for 20_000 entries: as on a real topic,
    # an aggregate's next event rarely sits in the batch right after its previous one.
    per_aggregate = 2
    aggregates = [f"alert-{uuid.uuid4().hex[:16]}" for _ in range(max(1, entries // per_aggregate))]
    requests: list[AppendRequest] = []
    for n in range(1, per_aggregate + 1):
        requests += [AppendRequest(a, [_input(a, n)], n - 1) for a in aggregates]
    requests = requests[:entries]
    for i in range(0, len(requests), 1000):
        store.append_many(requests[i : i + 1000])


def raw_loop(client: redis.Redis, stream: str, entries: int, rep: int = 0) -> float:
    group = f"raw-{rep}"
    client.xgroup_create(stream, group, id="0")
    started = time.perf_counter()
    done = 0
    while done < entries:
        reply: Any = client.xreadgroup(group, "raw-1", {stream: ">"}, count=BATCH)
        if not reply:
            break
        rows: list[Any] = reply[0][1]
        for _, fields in rows:
            parse_json(fields[b"d"])
        client.xack(stream, group, *[row[0] for row in rows])
        done += len(rows)
    return time.perf_counter() - started


def decode_only(client: redis.Redis, stream: str, entries: int) -> float:
    """Seconds to decode every entry into its contract, no Redis involved (the fixed cost
    every runtime path pays per entry; the raw loop only parses the JSON)."""
    rows: list[Any] = client.xrange(stream, count=entries) or []
    started = time.perf_counter()
    for _, fields in rows:
        decode_fields(fields)
    return (time.perf_counter() - started) * entries / max(1, len(rows))


def _group_done(client: redis.Redis, stream: str, group: str, last_id: bytes) -> bool:
    for g in client.xinfo_groups(stream):
        if g["name"].decode() == group:
            return bool(g["last-delivered-id"] == last_id and int(g["pending"]) == 0)
    return False


@dataclass(frozen=True)
class Usage:
    """What one timed run took: wall seconds, and CPU as cores kept busy over them."""

    seconds: float
    busy_cores: float  # every process of this machine (Redis too, when it runs here)
    redis_cores: float  # the Redis server, by its own count


def _cpu_clock(client: redis.Redis) -> tuple[float, float, float]:
    """Now, and the CPU seconds spent so far by this machine and by the Redis server."""
    times = psutil.cpu_times()
    # Named fields, not a sum: on Linux user already holds guest time, and steal is the
    # hypervisor's, not ours.
    busy = sum(getattr(times, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))
    info: Any = client.info("cpu")
    server = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return time.perf_counter(), busy, server


def _usage(start: tuple[float, float, float], end: tuple[float, float, float]) -> Usage:
    seconds = end[0] - start[0]
    return Usage(seconds, (end[1] - start[1]) / seconds, (end[2] - start[2]) / seconds)


def runtime_run(
    client: redis.Redis,
    url: str,
    namespace: str,
    *,
    mode: str,
    processes: int,
    stream: str,
    rep: int = 0,
) -> Usage:
    group = f"{mode}{processes}-{rep}"
    client.xgroup_create(stream, group, id="0")
    newest = client.xrevrange(stream, count=1) or []
    last = str(newest[0][0]).encode() if isinstance(newest[0][0], str) else newest[0][0]
    assert isinstance(last, bytes)
    config = {"url": url, "namespace": namespace, "group": group, "mode": mode}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "cdb.bench.consume", json.dumps({**config, "name": f"w{i}"})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for i in range(processes)
    ]
    try:
        for w in workers:
            assert w.stdout is not None
            if w.stdout.readline().strip() != b"ready":
                raise RuntimeError("bench worker did not start")
        started = _cpu_clock(client)
        for w in workers:
            assert w.stdin is not None
            w.stdin.write(b"go\n")
            w.stdin.flush()
        while not _group_done(client, stream, group, last):
            time.sleep(0.01)  # light polling: the parent shares the cores
        return _usage(started, _cpu_clock(client))
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)


@dataclass(frozen=True)
class ConsumeBench:
    entries: int
    seconds: dict[str, float]  # best run of each path
    repeat: int = 1
    usage: dict[str, Usage] = field(default_factory=dict)  # of that best run, runtime paths
    cpus: int = 1

    def rate(self, name: str) -> float:
        return self.entries / self.seconds[name]

    def as_dict(self) -> dict[str, Any]:
        rates = {name: round(self.rate(name)) for name in self.seconds}
        return {
            "entries": self.entries,
            "repeat": self.repeat,
            "entries_per_s": rates,
            "ratio": round(self.rate("runtime_noop_1") / self.rate("raw"), 3),
            "ratio_append_vs_raw": round(self.rate("runtime_append_1") / self.rate("raw"), 3),
            "scale_noop_2_vs_1": round(
                self.rate("runtime_noop_2") / self.rate("runtime_noop_1"), 3
            ),
            "scale_append_2_vs_1": round(
                self.rate("runtime_append_2") / self.rate("runtime_append_1"), 3
            ),
            "targets": {"ratio": 0.4, "scale_2_vs_1": 1.4},
            "cpus": self.cpus,
            "cores_busy": {name: round(u.busy_cores, 2) for name, u in self.usage.items()},
            "redis_cores": {name: round(u.redis_cores, 2) for name, u in self.usage.items()},
            "scale_ceiling": {
                mode: self.ceiling(f"runtime_{mode}_1") for mode in _MODES if self.usage
            },
        }

    def ceiling(self, name: str) -> float:
        """About the most more workers could add on this machine if each entry kept costing
        the CPU it costs this run: usable CPUs / cores the run kept busy. Not a hard bound
        (a pair may spend less per entry, e.g. fewer wake-ups), but a worker that overlaps
        Redis with Python keeps more than one core busy alone, which lowers this, not its
        speed."""
        used = self.usage.get(name)
        if used is None or used.busy_cores <= 0:
            return float("nan")
        return round(self.cpus / used.busy_cores, 3)


def run(client: redis.Redis, url: str, entries: int, repeat: int = 3) -> ConsumeBench:
    """Every path ``repeat`` times on the same entries (a fresh group each time); the best run
    of each path counts, so a burst of unrelated load on shared cores skews less."""
    repeat = max(1, min(repeat, MAX_REPEAT))
    namespace = f"bench-consume-{uuid.uuid4().hex[:8]}"
    topology = bench_topology()
    store = EventStore(client, topology, namespace)
    keys = Keys(namespace)
    stream = keys.topic(TOPIC_IN, 0)
    try:
        fill(store, entries)
        seconds: dict[str, float] = {}
        usage: dict[str, Usage] = {}

        def best(name: str, value: float) -> None:
            seconds[name] = min(value, seconds.get(name, value))

        for rep in range(repeat):
            best("raw", raw_loop(client, stream, entries, rep))
            best("decode_only", decode_only(client, stream, entries))
            for mode in _MODES:
                for processes in (1, 2):
                    name = f"runtime_{mode}_{processes}"
                    used = runtime_run(
                        client,
                        url,
                        namespace,
                        mode=mode,
                        processes=processes,
                        stream=stream,
                        rep=rep,
                    )
                    if name not in usage or used.seconds < usage[name].seconds:
                        usage[name] = used
                        seconds[name] = used.seconds
        return ConsumeBench(entries, seconds, repeat, usage, usable_cpus())
    finally:
        delete_namespace(client, keys.namespace)


def _worker(config: dict[str, Any]) -> int:
    client = redis.Redis.from_url(config["url"])
    topology = bench_topology()
    store = EventStore(client, topology, config["namespace"], check_server=False)
    handler: Handler = noop if config["mode"] == "noop" else append_one

    def ready(_consumer: Consumer) -> None:
        # Started (group, scripts, heartbeat): now wait for the parent's "go".
        print("ready", flush=True)
        sys.stdin.readline()

    return run_worker(
        client,
        topology,
        config["namespace"],
        topic=TOPIC_IN,
        group=config["group"],
        handler=handler,
        store=store,
        consumer_name=config["name"],
        grace_s=5,
        on_started=ready,
    )


if __name__ == "__main__":
    sys.exit(_worker(json.loads(sys.argv[1])))
