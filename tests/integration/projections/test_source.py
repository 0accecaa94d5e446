"""The live source: batches aligned in time across partitions, every entry exactly once."""

from __future__ import annotations

from collections import Counter

from cdb.eventstore.keys import Keys
from cdb.projections.apply import Entry
from cdb.projections.checkpoints import entry_key
from cdb.projections.source import GroupSource, stream_positions
from tests.integration.projections.conftest import Env, append_cycles


def test_batches_deliver_every_entry_once_in_order_and_bounded(env: Env) -> None:
    trading = env.definitions["trading"]
    appended = append_cycles(env.store, 60)
    source = GroupSource(env.client, trading, env.topology, env.namespace, batch_size=10)
    source.ensure_groups()
    seen: list[Entry] = []
    while batch := source.read(block=False):
        per_partition = Counter((e.topic, e.partition) for e in batch)
        assert max(per_partition.values()) <= 10  # at most a page per partition
        source.ack(batch)
        seen.extend(batch)
    keys = Keys(env.namespace)
    trading_events = sum(
        int(env.client.xlen(keys.topic(*pos))) for pos in stream_positions(trading, env.topology)
    )
    assert trading_events < appended  # other topics hold the rest of the history
    assert len(seen) == len({(e.topic, e.partition, e.entry_id) for e in seen})
    assert len(seen) == trading_events
    for topic in trading.topics:
        ids = [entry_key(e.entry_id) for e in seen if e.topic == topic]
        assert ids == sorted(ids)


def test_entries_held_back_are_delivered_again_after_a_failure(env: Env) -> None:
    trading = env.definitions["trading"]
    append_cycles(env.store, 40)
    source = GroupSource(env.client, trading, env.topology, env.namespace, batch_size=10)
    source.ensure_groups()
    first = source.read(block=False)
    source.recover()  # e.g. the batch's transaction failed: nothing was acked
    again = source.read(block=False)
    ids = {e.entry_id for e in again}
    assert {e.entry_id for e in first} <= ids
