"""The event store: atomic appends to aggregate streams and their topic partitions, and readers.

Writes go through one Lua step per append (``streams/lua/append.lua``): idempotency by
``event_id``, optimistic concurrency on the aggregate's version, then the aggregate stream, the
topic partition and the id hash together. Because an append is idempotent by ``event_id``, an
append whose reply was lost may simply be sent again: the store does so itself on connection
errors (bounded, exponential backoff) and reports the second answer (``duplicate=True`` if the
first attempt had landed).

Topic-only events (market ticks) are written by :meth:`EventStore.publish`: no aggregate stream,
``sequence_number`` 0, no idempotency by ``event_id`` (a publish retried after a lost reply may
store a tick twice, with the same ``event_id``; readers that care dedupe by ``event_id``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

import redis
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from cdb.domain.envelope import EventEnvelope, NewEvent
from cdb.domain.event_types import AGGREGATE_OF, AggregateType, EventType, aggregate_type_of
from cdb.errors import (
    ConcurrencyError,
    ContractError,
    DuplicateBatchError,
    StoreError,
    StoreUnavailableError,
    TopologyError,
)
from cdb.eventstore.codec import RawFields, decode_fields, encode_body, encode_fields
from cdb.eventstore.keys import Keys
from cdb.eventstore.lua import LuaScript
from cdb.eventstore.server_checks import check_server as _check_server
from cdb.eventstore.topology import Topic, Topology
from cdb.heap import frozen_heap

_pack_command: Callable[[tuple[str, ...]], bytes] | None
try:
    # redis-py's generic packer costs more than the script it sends; hiredis packs in C.
    from hiredis import pack_command as _hiredis_pack

    _pack_command = cast(Callable[[tuple[str, ...]], bytes], _hiredis_pack)
except ImportError:  # pragma: no cover - hiredis is a dependency, but not a requirement
    _pack_command = None

S = TypeVar("S")
T = TypeVar("T")

_TRANSIENT = (redis.ConnectionError, redis.TimeoutError)
_PAGE = 1000
_ENTRY_ID = re.compile(r"^[0-9]+(-[0-9]+)?$")
_SEND_CHUNK = 64
_FREEZE_FROM = 100
"""From this many appends (or publishes) in one call, the call runs with the long-lived heap
frozen (:func:`cdb.heap.frozen_heap`): such a batch allocates enough to set off full
collections, each walking every object the process holds. Measured on 200,000 single-event
appends in calls of 500, three interleaved pairs: 32.6-34.7k appends/s unfrozen, 33.3-42.3k
frozen (the consumers' appends ran frozen already, inside their batches)."""
_MAX_STREAM_ID = 200  # EventEnvelope.stream_id max_length

# Outcome codes of append.lua (first element of its reply).
_APPENDED, _DUPLICATE, _CONFLICT, _MIXED = 1, 2, 3, 4


@dataclass(frozen=True)
class AppendRequest:
    stream_id: str
    events: Sequence[NewEvent]
    expected_version: int | None


@dataclass(frozen=True)
class AppendResult:
    """Where an append landed. ``entry_ids`` are the topic partition entry ids it wrote; a
    duplicate wrote nothing, so its ``entry_ids`` is empty and ``first_seq..last_seq`` are the
    positions the events got when they were first stored."""

    stream_id: str
    first_seq: int
    last_seq: int
    entry_ids: tuple[str, ...]
    duplicate: bool


@dataclass(frozen=True)
class TopicEntry:
    entry_id: str
    event: EventEnvelope


@dataclass(frozen=True, slots=True)
class _Route:
    """What the store needs to know about an event type, computed once."""

    type_name: str
    aggregate: str
    topic: Topic | None
    topic_only: bool


class _Prepared:
    """A validated append. Its Lua call is built on first use, chunk by chunk, while Redis is
    already running the previous chunk (see ``EventStore._send_and_read``)."""

    __slots__ = ("_command", "count", "events", "expected_version", "keys", "stream_id", "types")

    def __init__(
        self,
        *,
        stream_id: str,
        keys: tuple[str, str, str],
        events: Sequence[NewEvent],
        types: list[str],
        expected_version: int | None,
    ) -> None:
        self.stream_id = stream_id
        self.keys = keys
        self.events = events
        self.types = types
        self.count = len(types)
        self.expected_version = expected_version
        self._command: tuple[str, ...] | None = None

    def command(self, sha: str) -> tuple[str, ...]:
        if self._command is None:
            expected = self.expected_version
            args = ["EVALSHA", sha, "3", *self.keys]
            args += ("" if expected is None else str(expected), self.stream_id)
            for event, type_name in zip(self.events, self.types, strict=True):
                event_id = str(event.event_id)
                args += (event_id, type_name, event.schema_version, encode_body(event))
            self._command = tuple(args)
        return self._command


class EventStore:
    """Appends and reads events for one key namespace."""

    def __init__(
        self,
        client: redis.Redis,
        topology: Topology,
        namespace: str,
        *,
        check_server: bool = True,
        retry_for_s: float = 10.0,
    ) -> None:
        self._client = client
        self._topology = topology
        self._keys = Keys(namespace)
        self._script = LuaScript("append")
        self._retry_for_s = retry_for_s
        self._topic_of: dict[EventType, Topic] = {}
        self._aggregate_topic: dict[str, Topic] = {}
        for topic in topology.topics.values():
            for event_type in topic.events:
                self._topic_of[event_type] = topic
                # The topology guarantees every topic of one aggregate type has the same
                # partition count, so any of them gives the aggregate's partition.
                self._aggregate_topic.setdefault(AGGREGATE_OF[event_type].value, topic)
        self._routes = {
            event_type: _Route(
                type_name=event_type.value,
                aggregate=AGGREGATE_OF[event_type].value,
                topic=self._topic_of.get(event_type),
                topic_only=AGGREGATE_OF[event_type] is AggregateType.MARKET,
            )
            for event_type in EventType
        }
        if check_server:
            self._retrying(lambda: _check_server(client))

    # -- introspection ------------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self._keys.namespace

    @property
    def keys(self) -> Keys:
        return self._keys

    @property
    def topology(self) -> Topology:
        return self._topology

    def topic_key(self, topic: str, partition: int) -> str:
        spec = self._topology.topic(topic)
        if not 0 <= partition < spec.partitions:
            raise TopologyError(
                f"topic '{topic}' has {spec.partitions} partition(s); partition {partition} "
                f"is out of range 0..{spec.partitions - 1}"
            )
        return self._keys.topic(topic, partition)

    def partition_of(self, stream_id: str) -> int:
        """The partition (hash tag) an aggregate stream lives in."""
        return self._aggregate_topic_of(stream_id).partition_of(stream_id)

    def aggregate_key(self, stream_id: str) -> str:
        return self._keys.aggregate(self.partition_of(stream_id), stream_id)

    # -- writing ------------------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> AppendResult:
        """Append ``events`` to one aggregate, atomically.

        ``expected_version``: 0 for a new stream, N for "currently at N", None for no check.
        Raises :class:`ConcurrencyError`, :class:`DuplicateBatchError`, :class:`ContractError`.
        """
        result = self.append_many([AppendRequest(stream_id, events, expected_version)])[0]
        if isinstance(result, StoreError):
            raise result
        return result

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult | StoreError]:
        """Many appends in one pipeline (one Lua call each), answers in request order.

        A refused append (version conflict, mixed batch) is returned as its error, not raised,
        so the others still count. Malformed requests (wrong aggregate type, events spread over
        topics, ...) raise :class:`ContractError` before anything is sent.
        """
        with _frozen_if_big(len(requests)):
            prepared = [self._prepare(request) for request in requests]
            if not prepared:
                return []
            replies = self._retrying(lambda: self._run_pipeline(prepared))
            return [self._result(p, reply) for p, reply in zip(prepared, replies, strict=True)]

    def publish(self, topic: str, stream_id: str, events: Sequence[NewEvent]) -> list[str]:
        """Write topic-only events (market ticks): no aggregate stream, sequence number 0.

        ``stream_id`` (e.g. ``market-BTCUSDT``) picks the partition and is stored in ``s``.
        Not idempotent by ``event_id`` (see the module docstring). Returns the entry ids.
        """
        return self.publish_many(topic, [(stream_id, event) for event in events])

    def publish_many(self, topic: str, items: Sequence[tuple[str, NewEvent]]) -> list[str]:
        """:meth:`publish` of ``(stream_id, event)`` pairs, in order, in one pipeline.

        A feed publishes thousands of ticks a second; the XADDs are packed in C and sent in
        chunks while the replies of earlier chunks are read, as appends are. Every event is
        checked before anything is sent. A failure part-way leaves a prefix published.
        """
        spec = self._topology.topic(topic)
        keys: list[str] = []
        for stream_id, event in items:
            _check_stream_id_length(stream_id)
            route = self._routes[event.event_type]
            owner = self._topic_for_event(event)
            if owner.name != spec.name:
                raise ContractError(
                    f"publish to '{topic}'",
                    [("event_type", route.type_name, f"belongs on topic '{owner.name}'")],
                )
            if not route.topic_only:
                # Publishing it would put it on the topic without its aggregate stream.
                raise ContractError(
                    f"publish to '{topic}'",
                    [("event_type", route.type_name, "has an aggregate stream: use append()")],
                )
            keys.append(self._keys.topic(spec.name, spec.partition_of(stream_id)))
        if not items:
            return []

        def xadd(i: int) -> tuple[str | bytes, ...]:
            stream_id, event = items[i]
            fields = encode_fields(event, stream_id, 0)
            return ("XADD", keys[i], "*", *(x for kv in fields.items() for x in kv))

        with _frozen_if_big(len(items)):
            replies = self._retrying(lambda: self._send_commands(len(items), xadd))
        errors = [r for r in replies if isinstance(r, Exception)]
        if errors:
            raise StoreError(f"publish to '{topic}' failed on the server: {errors[0]}")
        return [_text(entry_id) for entry_id in replies]

    # -- reading ------------------------------------------------------------------------------

    def version(self, stream_id: str) -> int:
        key = self.aggregate_key(stream_id)
        return int(self._retrying(lambda: self._client.xlen(key)))

    def read_aggregate(
        self, stream_id: str, from_seq: int = 1, to_seq: int | None = None
    ) -> list[EventEnvelope]:
        """Events ``from_seq..to_seq`` (inclusive, 1-based) of one aggregate, in order."""
        return list(self._iter_aggregate(stream_id, from_seq, to_seq))

    def load(
        self,
        stream_id: str,
        fold: Callable[[S, EventEnvelope], S],
        initial: S,
        to_seq: int | None = None,
    ) -> tuple[S, int]:
        """Fold an aggregate's events into state; returns the state and the version folded up
        to (0 for an empty stream), ready to pass as ``expected_version`` to the next append."""
        state, version = initial, 0
        for event in self._iter_aggregate(stream_id, 1, to_seq):
            state = fold(state, event)
            version = event.sequence_number
        return state, version

    def read_topic(
        self, topic: str, partition: int = 0, after: str = "0-0", count: int = 1000
    ) -> list[TopicEntry]:
        """Up to ``count`` entries of a topic partition strictly after entry id ``after``."""
        if count < 1:
            raise ContractError("read_topic", [("count", count, "must be >= 1")])
        if not _ENTRY_ID.match(after):
            raise ContractError(
                "read_topic", [("after", after, "must be a stream entry id 'ms-seq'")]
            )
        key = self.topic_key(topic, partition)
        rows = self._retrying(lambda: self._xrange(key, f"({after}", "+", count))
        return [TopicEntry(entry_id, decode_fields(fields)) for entry_id, fields in rows]

    # -- internals ----------------------------------------------------------------------------

    def _iter_aggregate(
        self, stream_id: str, from_seq: int, to_seq: int | None
    ) -> Iterator[EventEnvelope]:
        if from_seq < 1:
            raise ContractError("read_aggregate", [("from_seq", from_seq, "must be >= 1")])
        if to_seq is not None and to_seq < from_seq:
            return
        key = self.aggregate_key(stream_id)
        end = "+" if to_seq is None else f"0-{to_seq}"
        start = from_seq
        while True:
            rows = self._retrying(partial(self._xrange, key, f"0-{start}", end, _PAGE))
            for _, fields in rows:
                yield decode_fields(fields)
            if len(rows) < _PAGE:
                return
            start = int(rows[-1][0].split("-", 1)[1]) + 1

    def _xrange(self, key: str, start: str, end: str, count: int) -> list[tuple[str, RawFields]]:
        rows = self._client.xrange(key, start, end, count=count) or []
        # Entry fields are None only for deleted entries in claim replies, never in XRANGE.
        return [(_text(entry_id or b""), fields or {}) for entry_id, fields in rows]

    def _aggregate_topic_of(self, stream_id: str) -> Topic:
        kind = aggregate_type_of(stream_id)
        try:
            return self._aggregate_topic[kind]
        except KeyError:
            known = ", ".join(sorted(f"{k}-<id>" for k in self._aggregate_topic))
            raise ContractError(
                "stream id",
                [("stream_id", stream_id, f"must be '<aggregate type>-<id>', one of: {known}")],
            ) from None

    def _topic_for_event(self, event: NewEvent) -> Topic:
        try:
            return self._topic_of[event.event_type]
        except KeyError:
            raise TopologyError(
                f"event type '{event.event_type}' is not declared on any topic in "
                f"{self._topology.source}"
            ) from None

    def _prepare(self, request: AppendRequest) -> _Prepared:
        # The hot path of every append: plain dict lookups and string work, no enum properties.
        stream_id, events = request.stream_id, request.events
        if not events:
            raise _append_error(stream_id, "events", [], "an append needs at least one event")
        expected = request.expected_version
        if expected is not None and (isinstance(expected, bool) or expected < 0):
            raise _append_error(
                stream_id, "expected_version", expected, "must be None (any) or an integer >= 0"
            )
        _check_stream_id_length(stream_id)
        kind = aggregate_type_of(stream_id)
        topic: Topic | None = None
        types: list[str] = []
        for event in events:
            route = self._routes[event.event_type]
            if route.topic is None:
                raise TopologyError(
                    f"event type '{route.type_name}' is not declared on any topic in "
                    f"{self._topology.source}"
                )
            if route.topic_only:
                raise _append_error(
                    stream_id,
                    "event_type",
                    route.type_name,
                    "is topic-only (no aggregate stream): use publish()",
                )
            if kind != route.aggregate or len(stream_id) <= len(kind) + 1:
                raise _append_error(
                    stream_id,
                    "stream_id",
                    stream_id,
                    f"{route.type_name} belongs to '{route.aggregate}-<id>' streams",
                )
            if topic is None:
                topic = route.topic
            elif route.topic is not topic:
                raise _append_error(
                    stream_id,
                    "events",
                    route.type_name,
                    f"is on topic '{route.topic.name}', but this append's first event is on "
                    f"'{topic.name}': one append writes one topic",
                )
            types.append(route.type_name)
        if len(events) > 1:
            ids = [event.event_id for event in events]
            if len(set(ids)) < len(ids):
                twice = sorted({str(event_id) for event_id in ids if ids.count(event_id) > 1})
                raise _append_error(stream_id, "event_id", twice, "appears twice in one append")
        assert topic is not None
        partition = topic.partition_of(stream_id)
        keys = (
            self._keys.aggregate(partition, stream_id),
            self._keys.event_ids(partition, stream_id),
            self._keys.topic(topic.name, partition),
        )
        return _Prepared(
            stream_id=stream_id,
            keys=keys,
            events=events,
            types=types,
            expected_version=expected,
        )

    def _run_pipeline(self, prepared: list[_Prepared]) -> list[Any]:
        replies = self._send_and_read(prepared)
        missing = [
            i for i, r in enumerate(replies) if isinstance(r, redis.exceptions.NoScriptError)
        ]
        if missing:
            # The server lost its script cache (restart, SCRIPT FLUSH): none of these ran.
            self._script.load(self._client)
            again = self._send_and_read([prepared[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    def _send_and_read(self, prepared: list[_Prepared]) -> list[Any]:
        """One pipeline of EVALSHA calls, sent in chunks; replies in request order."""
        sha = self._script.sha
        return self._send_commands(len(prepared), lambda i: prepared[i].command(sha))

    def _send_commands(self, count: int, command: Callable[[int], tuple[Any, ...]]) -> list[Any]:
        """One pipeline of ``command(0) .. command(count - 1)``, sent in chunks; replies in
        request order.

        A plain redis-py pipeline builds everything, then sends, then reads, so this process
        and Redis take turns. Here each chunk is built (encoded) and packed right before it is
        sent, and the replies of the chunks before it are read while Redis runs it: building,
        running and reading overlap. An error reply is kept as that command's answer.
        """
        pool = self._client.connection_pool
        conn: Any  # redis-py's Connection methods are untyped
        try:
            conn = pool.get_connection()
        except TypeError:  # redis-py < 5.3 wants a command name
            conn = pool.get_connection("EVALSHA")  # type: ignore[call-arg,unused-ignore]
        replies: list[Any] = []

        def read_until(count: int) -> None:
            while len(replies) < count:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)

        try:
            for start in range(0, count, _SEND_CHUNK):
                chunk = [command(i) for i in range(start, min(start + _SEND_CHUNK, count))]
                if _pack_command is not None:
                    conn.send_packed_command([b"".join(map(_pack_command, chunk))])
                else:
                    conn.send_packed_command(conn.pack_commands(chunk))
                read_until(start)
            read_until(count)
        except BaseException:
            # A half-read pipeline leaves the connection out of step: never reuse it.
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return replies

    def _result(self, p: _Prepared, reply: Any) -> AppendResult | StoreError:
        if isinstance(reply, Exception):
            return StoreError(f"append to '{p.stream_id}' failed on the server: {reply}")
        code = int(reply[0])
        if code == _APPENDED:
            first = int(reply[1])
            # one event per append is the common case: keep it cheap
            entry_ids = (_text(reply[2]),) if p.count == 1 else tuple(_text(e) for e in reply[2:])
            return AppendResult(p.stream_id, first, first + p.count - 1, entry_ids, False)
        if code == _DUPLICATE:
            return AppendResult(
                stream_id=p.stream_id,
                first_seq=int(reply[1]),
                last_seq=int(reply[2]),
                entry_ids=(),
                duplicate=True,
            )
        if code == _CONFLICT:
            assert p.expected_version is not None
            return ConcurrencyError(p.stream_id, p.expected_version, int(reply[1]))
        if code == _MIXED:
            known = [_text(event_id) for event_id in reply[1:]]
            return DuplicateBatchError(
                f"stream '{p.stream_id}': {len(known)} of {p.count} event ids are already stored "
                f"({', '.join(known[:5])}{', ...' if len(known) > 5 else ''}); an append must be "
                "all new events or an exact retry of a stored one"
            )
        return StoreError(f"append to '{p.stream_id}': unexpected script reply {reply!r}")

    def _retrying(self, fn: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_delay(self._retry_for_s),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            retry=retry_if_exception_type(_TRANSIENT),
            reraise=False,
        )
        try:
            return retrying(fn)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise StoreUnavailableError(
                f"Redis unreachable for {self._retry_for_s:.0f}s (namespace "
                f"'{self.namespace}'): {cause}"
            ) from cause


def _frozen_if_big(count: int) -> AbstractContextManager[None]:
    return frozen_heap() if count >= _FREEZE_FROM else nullcontext()


def _append_error(stream_id: str, field: str, value: Any, rule: str) -> ContractError:
    return ContractError(f"append to '{stream_id}'", [(field, value, rule)])


def _check_stream_id_length(stream_id: str) -> None:
    if not 1 <= len(stream_id) <= _MAX_STREAM_ID:
        raise ContractError(
            "stream id", [("stream_id", stream_id, f"must be 1-{_MAX_STREAM_ID} characters")]
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
