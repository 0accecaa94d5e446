"""The live source: batches aligned in time across partitions, every entry exactly once."""

from __future__ import annotations

from collections import Counter
from typing import Any

from cdb.eventstore.keys import Keys
from cdb.projections import split
from cdb.projections.apply import Entry
from cdb.projections.checkpoints import entry_key
from cdb.projections.source import GroupSource, Page, read_pages, read_ranges, stream_positions
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


def test_the_parts_of_a_split_read_hold_every_entry_once_and_its_fields(env: Env) -> None:
    trading = env.definitions["trading"]
    append_cycles(env.store, 30)
    keys = Keys(env.namespace)
    wanted = [(pos, "0-0", "+") for pos in stream_positions(trading, env.topology)]
    whole = read_ranges(env.client, keys, wanted, count=10_000)
    pages = [read_pages(env.client, keys, wanted, count=10_000, part=(i, 3)) for i in range(3)]
    for part, part_pages in enumerate(pages):
        for (pos, _, _), page in zip(wanted, part_pages, strict=True):
            on_stream = [e for e in whole if (e.topic, e.partition) == pos]
            # Every page says how much it read and where it got to, whatever it kept.
            assert page.read == len(on_stream)
            assert page.last_id == on_stream[-1].entry_id
            assert all(split.part_of(e.fields, 3) == part for e in page.entries)
    kept = [e for part_pages in pages for page in part_pages for e in page.entries]
    assert sorted(kept, key=_where) == sorted(whole, key=_where)
    # The fields as redis-py's own parsing gives them.
    parsed: list[Entry] = []
    for pos, _, _ in wanted:
        rows: Any = env.client.xrange(keys.topic(*pos))
        parsed += [Entry(pos[0], pos[1], i.decode(), fields) for i, fields in rows]
    assert whole == parsed


def _where(entry: Entry) -> tuple[str, int, tuple[int, int]]:
    return entry.topic, entry.partition, entry_key(entry.entry_id)


def test_a_page_that_ends_the_partition_says_so(env: Env) -> None:
    trading = env.definitions["trading"]
    append_cycles(env.store, 5)
    keys = Keys(env.namespace)
    pos = stream_positions(trading, env.topology)[0]
    (page,) = read_pages(env.client, keys, [(pos, "0-0", "+")], count=3, part=(1, 2))
    assert page.read == 3
    assert page.last_id is not None
    (end,) = read_pages(env.client, keys, [(pos, "99999999999999-0", "+")], count=3)
    assert end == Page([], 0, None)
