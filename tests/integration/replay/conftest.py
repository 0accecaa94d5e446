"""A recorded pipeline run in the test's namespace: the in-memory pipeline over a slice of the
shipped market data, stored in the order it emitted its events."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from itertools import islice
from pathlib import Path

import pytest
import redis

from cdb.domain.event_types import EventType
from cdb.domain.services.events import Emit
from cdb.domain.services.marketdata import read_market_data
from cdb.domain.services.marketgen import RECORDING, iter_csv_lines
from cdb.domain.services.risk import RiskParams
from cdb.domain.services.signal import SignalParams
from cdb.domain.services.sim import Pipeline, PipelineParams, simulate
from cdb.eventstore.namespace import delete_namespace
from cdb.eventstore.store import AppendRequest, EventStore
from cdb.eventstore.topology import Topology, load_topology

REPO = Path(__file__).resolve().parents[3]
TICKS = 600

# A livelier strategy than the defaults, so 600 one-minute bars give signals, orders, fills,
# blocks, alerts and closed positions to replay.
PARAMS = PipelineParams(
    signal=SignalParams(
        threshold_pct=Decimal("0.2"), lookback_min=5, cooldown_min=5, min_volume=Decimal(0)
    ),
    risk=RiskParams(stop_loss_pct=Decimal("0.01")),
)

Recorder = Callable[[str, Sequence[Emit]], EventStore]


@pytest.fixture(scope="session")
def pipeline_run() -> Pipeline:
    lines = iter_csv_lines((REPO / RECORDING).read_bytes())
    return simulate(islice(read_market_data(lines), TICKS), PARAMS)


@pytest.fixture(scope="session")
def topology() -> Topology:
    return load_topology()


def record(store: EventStore, events: Sequence[Emit]) -> None:
    """Store ``events`` in the order given: ticks published, the rest appended.

    The in-memory pipeline lists events in the order its services handled them, so entry ids
    follow that order (as they follow arrival order in a streamed run).
    """
    batch: list[AppendRequest] = []

    def flush() -> None:
        for result in store.append_many(batch):
            if isinstance(result, Exception):
                raise result
        batch.clear()

    for item in events:
        if item.event_type is EventType.MARKET_DATA_RECEIVED:
            flush()
            store.publish("market_data", item.stream_id, [item.event])
        else:
            batch.append(AppendRequest(item.stream_id, [item.event], None))
    flush()


@pytest.fixture
def recorder(redis_client: redis.Redis, topology: Topology) -> Iterator[Recorder]:
    """Records events into a namespace; namespaces other than the test's own are deleted after."""
    extra: list[str] = []

    def run(namespace: str, events: Sequence[Emit]) -> EventStore:
        if not namespace.startswith("t"):
            raise ValueError("test namespaces start with 't'")
        extra.append(namespace)
        store = EventStore(redis_client, topology, namespace, check_server=False)
        record(store, events)
        return store

    yield run
    for namespace in extra:
        delete_namespace(redis_client, namespace)


@pytest.fixture
def recorded(namespace: str, pipeline_run: Pipeline, recorder: Recorder) -> EventStore:
    """The pipeline run recorded in the test's namespace."""
    return recorder(namespace, pipeline_run.events)
