"""`replay topic`: re-run one service's logic over a recorded range and diff its outputs.

1. The range is named on one input topic of the service (``--from``/``--to``, see
   :mod:`.positions`). Every topic the service reads is merged into one sequence
   (:func:`replay_order`: by entry-id millisecond, then by causal chain) and the inputs
   between the range's first and last entry are replayed, never one before the input that
   caused it.
2. The service's state at the start of the range is rebuilt by folding the recorded events of
   its folded types (``risk.FOLDED_TYPES`` ...) that come before the range.
3. Its outputs are appended to a sandbox namespace (``replay-<random>`` in the same Redis,
   deleted afterwards unless kept), read back, and compared with what was recorded: the outputs
   of that service caused by an input of the range (directly, or through another of its outputs
   such as an alert raised by a breaker trip), plus any recorded event with an id the replay
   produced. Same ids and same payloads, or a list of differences.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import redis

from cdb.domain.envelope import EventEnvelope
from cdb.domain.event_types import EventType
from cdb.domain.services.events import Emit
from cdb.domain.services.sim import PipelineParams
from cdb.errors import ContractError
from cdb.eventstore.namespace import delete_namespace, namespace_is_empty
from cdb.eventstore.store import AppendRequest, EventStore
from cdb.eventstore.topology import Topology
from cdb.services.replay.diff import Compared, Difference, diff_events
from cdb.services.replay.positions import EntryId, Position, resolve_window
from cdb.services.replay.runners import Runner, runner_for

_PAGE = 1000
_APPEND_CHUNK = 500
_CAUSE_DEPTH = 32

SortKey = tuple[EntryId, int, int]
"""(entry id, topic rank in the topology, partition): the order inputs are replayed in."""

Progress = Callable[[int, int], None]
"""Called with (inputs replayed so far, inputs in the range)."""


@dataclass(frozen=True, slots=True)
class Recorded:
    key: SortKey
    topic: str
    entry_id: str
    event: EventEnvelope

    @property
    def event_id(self) -> str:
        return str(self.event.event_id)


@dataclass(frozen=True)
class TopicReplayReport:
    service: str
    topic: str
    namespace: str
    sandbox: str
    kept: bool
    first_entry: str
    last_entry: str
    first_time: str
    last_time: str
    folded_before: int
    inputs: int
    recorded_outputs: int
    replayed_outputs: int
    differences: list[Difference] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences and not self.unfinished

    def as_dict(self, limit: int | None = None) -> dict[str, object]:
        shown = self.differences if limit is None else self.differences[:limit]
        return {
            "service": self.service,
            "topic": self.topic,
            "namespace": self.namespace,
            "sandbox": self.sandbox,
            "sandbox_kept": self.kept,
            "range": {
                "from_entry": self.first_entry,
                "to_entry": self.last_entry,
                "from_time": self.first_time,
                "to_time": self.last_time,
            },
            "folded_before": self.folded_before,
            "inputs": self.inputs,
            "recorded_outputs": self.recorded_outputs,
            "replayed_outputs": self.replayed_outputs,
            "identical": self.identical,
            "differences_total": len(self.differences),
            "differences": [d.as_dict() for d in shown],
            "unfinished_inputs": self.unfinished,
        }


def read_all(store: EventStore, topic: str, rank: int) -> list[Recorded]:
    """Every entry of every partition of ``topic``, in replay order."""
    spec = store.topology.topic(topic)
    out: list[Recorded] = []
    for partition in range(spec.partitions):
        after = "0-0"
        while True:
            page = store.read_topic(topic, partition, after=after, count=_PAGE)
            for entry in page:
                key = (EntryId.parse(entry.entry_id), rank, partition)
                out.append(Recorded(key, topic, entry.entry_id, entry.event))
            if len(page) < _PAGE:
                break
            after = page[-1].entry_id
    out.sort(key=lambda r: r.key)
    return out


def topics_of(topology: Topology, types: Iterable[EventType]) -> list[str]:
    """The topics carrying ``types``, in topology order."""
    wanted = {topology.topic_for(t).name for t in types}
    return [name for name in topology.topics if name in wanted]


def replay_order(items: Sequence[Recorded]) -> list[Recorded]:
    """``items`` in the order a service is taken to have handled them.

    Entry ids of different streams only order events to the millisecond: within one, the
    sequence parts of two streams say nothing about which came first. So events are ordered
    by the millisecond of their entry id; within it, by the entry of the event that started
    their chain (``correlation_id``: the tick every consequence goes back to), then by their
    causal depth in that chain (tick, signal, order, result ...), then by entry id. Within a
    millisecond a tick's consequences thus come before the next tick's, level by level.
    """
    by_id = {r.event_id: r for r in items}
    depths: dict[str, int] = {}

    def depth(r: Recorded) -> int:
        found = depths.get(r.event_id)
        if found is not None:
            return found
        hops, cause = 0, r.event.metadata.causation_id
        while cause is not None and hops < _CAUSE_DEPTH:
            hops += 1
            parent = by_id.get(cause)
            if parent is None:
                break
            if parent.event_id in depths:
                hops += depths[parent.event_id]
                break
            cause = parent.event.metadata.causation_id
        depths[r.event_id] = hops
        return hops

    def order(r: Recorded) -> tuple[int, SortKey, int, SortKey]:
        root = by_id.get(r.event.metadata.correlation_id or "", r)
        return (r.key[0].ms, root.key, depth(r), r.key)

    return sorted(items, key=order)


def causal_order(
    window: Sequence[Recorded], cause_of: dict[str, str], done: set[str]
) -> list[Recorded]:
    """``window`` in its order, except that an input never comes before an input that caused it
    (looked up through ``cause_of``: event id -> causation id, outputs included). ``done`` holds
    the ids already handled before the window."""
    in_window = {r.event_id for r in window}
    deferred: dict[str, list[Recorded]] = {}
    ordered: list[Recorded] = []
    handled = set(done)

    def ancestor(item: Recorded) -> str | None:
        cause = cause_of.get(item.event_id)
        for _ in range(_CAUSE_DEPTH):
            if cause is None:
                return None
            if cause in in_window and cause != item.event_id:
                return cause
            cause = cause_of.get(cause)
        return None

    def take(item: Recorded) -> None:
        stack = [item]
        while stack:
            current = stack.pop()
            ordered.append(current)
            handled.add(current.event_id)
            # Release what waited for it, keeping their own order.
            stack.extend(reversed(deferred.pop(current.event_id, [])))

    for item in window:
        cause = ancestor(item)
        if cause is not None and cause not in handled:
            deferred.setdefault(cause, []).append(item)
        else:
            take(item)
    position = {r.event_id: i for i, r in enumerate(window)}
    leftovers = sorted(
        (r for group in deferred.values() for r in group), key=lambda r: position[r.event_id]
    )
    for item in leftovers:  # their cause never came (cut off by the range end): keep order
        if item.event_id not in handled:
            take(item)
    return ordered


def replay_topic(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    *,
    sandbox: str,
    topic: str,
    service: str,
    start: tuple[str, str],
    end: tuple[str, str] | None = None,
    params: PipelineParams | None = None,
    keep: bool = False,
    progress: Progress | None = None,
) -> TopicReplayReport:
    """Re-run ``service`` over ``topic`` from ``start`` (option, value) to ``end`` or the head."""
    runner = runner_for(service, params or PipelineParams())
    topology.topic(topic)  # unknown topic: TopologyError naming the known ones
    input_topics = topics_of(topology, runner.inputs)
    if topic not in input_topics:
        raise ContractError(
            "replay",
            [
                (
                    "topic",
                    topic,
                    f"carries no input of {service}'s logic; its inputs are on: "
                    + ", ".join(input_topics),
                )
            ],
        )
    if sandbox == namespace:
        raise ContractError("replay", [("sandbox", sandbox, "must differ from the namespace")])
    store = EventStore(client, topology, namespace, check_server=False)
    ranks = {name: i for i, name in enumerate(topology.topics)}
    wanted = topics_of(topology, runner.inputs | runner.folded | runner.outputs)
    recorded = {name: read_all(store, name, ranks[name]) for name in wanted}

    positions = [Position(EntryId.parse(r.entry_id), r.event.timestamp) for r in recorded[topic]]
    window = resolve_window(positions, start, end, name=f"topic {topic} in namespace {namespace}")
    first, last = recorded[topic][window.first], recorded[topic][window.last]

    merged = replay_order([r for rows in recorded.values() for r in rows])
    cause_of = {
        r.event_id: r.event.metadata.causation_id
        for r in merged
        if r.event.metadata.causation_id is not None
    }
    index = {(r.topic, r.key): i for i, r in enumerate(merged)}  # event ids may repeat
    start_at, end_at = index[first.topic, first.key], index[last.topic, last.key]
    before = [r for r in merged[:start_at] if r.event.event_type in runner.folded]
    inputs = [r for r in merged[start_at : end_at + 1] if r.event.event_type in runner.inputs]
    for item in before:
        runner.fold(item.event)
    emitted = _run(runner, causal_order(inputs, cause_of, {r.event_id for r in before}), progress)

    if not namespace_is_empty(client, sandbox):
        raise ContractError("replay", [("sandbox", sandbox, "already has keys: pick a fresh one")])
    try:
        replayed = _through_sandbox(
            client, topology=topology, sandbox=sandbox, runner=runner, emitted=emitted, ranks=ranks
        )
        expected = _recorded_outputs(
            merged, runner, first.key, {r.event_id for r in inputs}, {x.event_id for x in replayed}
        )
        differences = diff_events(
            [Compared(r.event.stream_id, r.event) for r in expected],
            [Compared(r.event.stream_id, r.event) for r in replayed],
        )
    finally:
        if not keep:
            delete_namespace(client, sandbox)
    return TopicReplayReport(
        service=service,
        topic=topic,
        namespace=namespace,
        sandbox=sandbox,
        kept=keep,
        first_entry=first.entry_id,
        last_entry=last.entry_id,
        first_time=first.event.timestamp.isoformat(),
        last_time=last.event.timestamp.isoformat(),
        folded_before=len(before),
        inputs=len(inputs),
        recorded_outputs=len(expected),
        replayed_outputs=len(replayed),
        differences=differences,
        unfinished=runner.unfinished(),
    )


def _run(runner: Runner, inputs: Sequence[Recorded], progress: Progress | None) -> list[Emit]:
    out: list[Emit] = []
    total = len(inputs)
    every = max(1, total // 200)
    for i, item in enumerate(inputs, start=1):
        out.extend(runner.step(item.event))
        if progress is not None and (i % every == 0 or i == total):
            progress(i, total)
    if progress is not None and total == 0:
        progress(0, 0)
    return out


def _through_sandbox(
    client: redis.Redis,
    *,
    topology: Topology,
    sandbox: str,
    runner: Runner,
    emitted: Sequence[Emit],
    ranks: dict[str, int],
) -> list[Recorded]:
    """Append the replayed outputs to the sandbox and read them back as stored events."""
    store = EventStore(client, topology, sandbox, check_server=False)
    for i in range(0, len(emitted), _APPEND_CHUNK):
        requests = [
            AppendRequest(e.stream_id, [e.event], None) for e in emitted[i : i + _APPEND_CHUNK]
        ]
        for result in store.append_many(requests):
            if isinstance(result, Exception):
                raise result
    rows = [
        r
        for name in topics_of(topology, runner.outputs)
        for r in read_all(store, name, ranks[name])
    ]
    return sorted(rows, key=lambda r: r.key)


def _recorded_outputs(
    merged: Sequence[Recorded],
    runner: Runner,
    start: SortKey,
    input_ids: set[str],
    replayed_ids: set[str],
) -> list[Recorded]:
    """The recorded outputs the replay must reproduce (see the module docstring)."""
    candidates = [
        r
        for r in merged
        if r.key[0].ms >= start[0].ms  # effects are appended after their causes
        and r.event.event_type in runner.outputs
        and r.event.metadata.producer in (None, runner.name)
    ]
    chosen: dict[str, Recorded] = {r.event_id: r for r in candidates if r.event_id in replayed_ids}
    causes = set(input_ids) | chosen.keys()
    grew = True
    while grew:  # an output may be caused by another output (an alert by its breaker trip)
        grew = False
        for r in candidates:
            if r.event_id not in chosen and r.event.metadata.causation_id in causes:
                chosen[r.event_id] = r
                causes.add(r.event_id)
                grew = True
    return sorted(chosen.values(), key=lambda r: r.key)


def locate(
    client: redis.Redis, topology: Topology, namespace: str, *, topic: str, option: str, value: str
) -> Recorded:
    """The entry of ``topic`` an OFFSET or TIME names (as a range start), or a ContractError
    naming the value and the topic's valid range."""
    topology.topic(topic)  # unknown topic: TopologyError naming the known ones
    store = EventStore(client, topology, namespace, check_server=False)
    rows = read_all(store, topic, list(topology.topics).index(topic))
    positions = [Position(EntryId.parse(r.entry_id), r.event.timestamp) for r in rows]
    window = resolve_window(
        positions, (option, value), None, name=f"topic {topic} in namespace {namespace}"
    )
    return rows[window.first]
