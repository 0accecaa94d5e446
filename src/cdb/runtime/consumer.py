"""The consumer loop: one handler for one (topic, group), on every partition of the topic.

One cycle per partition:

1. now and then, claim entries of consumers that went silent and remove consumers that are gone;
2. re-run own entries whose retry backoff elapsed (XCLAIM to self: Redis counts the delivery);
3. read a batch and record each entry's place in its aggregate's order (one Lua step for small
   batches, a plain XREADGROUP then that step for big ones, see :mod:`cdb.runtime.ordering`);
   when idle, the read waits behind a blocking XREAD in the same round trip;
4. handle, in entry order, every entry whose aggregate predecessor is finished; park the others;
5. call ``commit`` if given, append the handlers' outputs (one pipeline), then ack the batch
   (one command, its reply read later).

While entries are flowing, Redis and this process work at the same time instead of taking
turns (:class:`~cdb.runtime.link.Link`: commands sent ahead on one connection, replies read
in order). After a full read, the ack of a cycle goes out together with the XREADGROUP of the
next batch, neither waited for. While the handlers run, the loop looks for that read's reply
every 64 entries and sends the record of its rows as soon as it is in, so the next cycle finds
its batch read and recorded (and entries spend little time delivered but unrecorded, which
would make another reader record them for us, at a cost). So a fresh entry may be recorded
behind one of the batch being handled: the ids this consumer acked in its last cycle count as
finished predecessors. Each ack's reply is still checked: an error leaves its entries pending,
to be adopted again and re-run. Entries are decoded at their turn, not ahead: a batch of
decoded events kept alive costs the garbage collector more than the decoding.

An entry is acked only after its outputs are durably appended. A failure leaves it pending and
schedules a retry after the group's backoff; after ``max_deliveries``, or at once for a contract
violation, an unknown event type or a handler's reject, it moves to the dead-letter stream.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from opentelemetry.trace import TracerProvider
from tenacity import Retrying, retry_if_exception_type, stop_never, wait_exponential

from cdb.domain.envelope import EventEnvelope
from cdb.errors import ContractError, HandlerRejected, StoreError, StoreUnavailableError
from cdb.eventstore.codec import RawFields, decode_fields
from cdb.eventstore.keys import Keys
from cdb.eventstore.store import AppendRequest, AppendResult, EventStore
from cdb.eventstore.topology import LINGER_BELOW, GroupPolicy, Topic, Topology
from cdb.heap import frozen_heap
from cdb.runtime import claim, deadletter, ordering, retry
from cdb.runtime._util import fields_text, id_key, now_ms, text
from cdb.runtime.handler import Ack, Delivery, Handler, Outcome, Reject, Retry
from cdb.runtime.heartbeat import Heartbeat, interval_ms
from cdb.runtime.link import Link, Reply
from cdb.runtime.ordering import PartitionKeys, Read, Rows
from cdb.runtime.tracing import EntryTracer

log = logging.getLogger(__name__)

_TRANSIENT = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    StoreUnavailableError,  # the store's own retries ran out: an outage, not a bad entry
)
_PING_TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError)
_ROUTING = ("rq", "rg")  # fields a requeue adds; not part of the event
_ACK = Ack()
_SMALL = ordering.SMALL


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class ConsumerStats:
    handled: int = 0
    retried: int = 0
    dead_lettered: int = 0
    claimed: int = 0
    reconnects: int = 0


class _Entry:
    """One entry in hand; fields as redis-py returned them (bytes, or str)."""

    __slots__ = ("agg", "checked", "delivery_count", "entry_id", "fields", "held", "prev", "waited")

    def __init__(
        self,
        entry_id: str,
        fields: RawFields,
        agg: bytes,
        prev: str = "",
        delivery_count: int | None = None,
        *,
        checked: bool = True,
        waited: bool = True,
    ) -> None:
        self.entry_id = entry_id
        self.fields = fields
        self.agg = agg  # the aggregate ('' = none), as the ack passes it
        self.prev = prev  # the aggregate predecessor it waits for ('' = none)
        self.held = False  # that predecessor is dead-lettered (or requeued, not yet delivered)
        self.delivery_count = delivery_count  # None = ask Redis when it matters
        self.checked = checked  # prev is current (False after a claim or a resync)
        # Redis may record what it waits behind (the ack clears that); False only for a fresh
        # read that came back waiting behind nothing.
        self.waited = waited


@dataclass
class _Partition:
    pk: PartitionKeys
    parked: dict[str, _Entry] = field(default_factory=dict)
    retries: retry.RetrySchedule = field(default_factory=retry.RetrySchedule)
    top: str = ""  # the stream's newest id after an empty read ('' = unknown: do not block)
    drained: bool = False  # the last small read was short: the next read would find nothing
    big: bool = False  # the last read filled a small one: read natively
    prefetched: Read | None = None  # read by the last wait, not handled yet
    next_read: Reply | None = None  # an XREADGROUP sent ahead, reply not read yet
    ahead: Rows | None = None  # rows of that read, read back, not handled yet
    ahead_record: Reply | None = None  # the record of those rows, sent (None: not yet)
    full: bool = False  # the newest read filled what it asked for: more is likely waiting
    # Entries this consumer acked in its last cycle (that ack may still be on its way): an
    # entry waiting behind one of them may run, as behind one acked earlier in its own cycle.
    recent: set[str] = field(default_factory=set)
    next_claim_ms: int = 0
    next_heads_ms: int = 0


@dataclass
class _Cycle:
    """What one partition cycle decided, applied at its end."""

    ok: list[_Entry] = field(default_factory=list)
    ok_ids: set[str] = field(default_factory=set)
    outputs: list[tuple[_Entry, Sequence[AppendRequest]]] = field(default_factory=list)
    failed: list[tuple[_Entry, str]] = field(default_factory=list)


class Consumer:
    """Runs ``handler`` for ``group`` on ``topic``; call :meth:`run` (or :meth:`step`)."""

    def __init__(
        self,
        client: redis.Redis,
        topology: Topology,
        namespace: str,
        *,
        topic: str,
        group: str,
        handler: Handler,
        store: EventStore | None = None,
        consumer_name: str | None = None,
        partitions: Sequence[int] | None = None,
        block_ms: int = 200,
        heads_every_ms: int = 20,
        tracer_provider: TracerProvider | None = None,
        commit: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.topic: Topic = topology.topic(topic)
        self.policy: GroupPolicy = self.topic.group(group)
        self.group = group
        self.name = consumer_name or default_consumer_name()
        self.handler = handler
        # Called once per cycle after the handlers ran, before outputs are appended and entries
        # acked (e.g. a projection commits its transaction); raising re-runs the whole cycle.
        self.commit = commit
        self.store = store
        self.stats = ConsumerStats()
        self._block_ms = block_ms
        self._heads_every_ms = heads_every_ms
        self._claim_every_ms = max(50, self.policy.claim_idle_ms // 2)
        keys = Keys(namespace)
        chosen = list(partitions) if partitions is not None else list(range(self.topic.partitions))
        self._parts = [_Partition(PartitionKeys.of(keys, topic, group, p)) for p in chosen]
        self._heartbeat = Heartbeat(
            client, [p.pk for p in self._parts], self.name, interval_ms(self.policy.claim_idle_ms)
        )
        self._tracer = EntryTracer(topic, group, tracer_provider)
        self._link = Link(client)
        self._reack: list[tuple[_Partition, list[tuple[str, bytes, bool]]]] = []
        self._adopt = False  # an ack failed: adopt own pending entries again (resync)
        self._started = False
        self._draining = False  # stopping: handle what the last wait read, read nothing new
        # In run(), a cycle that finds nothing is followed by the blocking wait, so a read
        # after a short one can be left to the wait. A caller driving step() itself (the
        # laptop's causal scheduler) takes "nothing finished" to mean "caught up": it always
        # reads.
        self._waits_after_idle = False
        self._linger_s = self.policy.linger_ms / 1000
        # The last step finished a few entries: more are likely on their way, one at a time.
        self._flowing = False
        # Set by run()'s caller to stop: a linger in progress ends with it.
        self._stop = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the group where missing and start heartbeating."""
        if self._started:
            return
        for part in self._parts:
            ensure_group(self.client, part.pk)
        ordering.load_scripts(self.client)
        self._heartbeat.start()
        self._started = True
        self._resync()

    def close(self) -> None:
        """Read outstanding replies, stop heartbeating; entries still pending here are claimed
        by others later (or adopted again by a consumer of the same name)."""
        try:
            self._link.settle()
        except _TRANSIENT as exc:  # the acks it could not check stay pending here
            log.warning("consumer %s: outstanding replies lost on close: %s", self.name, exc)
            self._link.reset()
        if self._started:
            self._heartbeat.stop(forget=True)
            self._started = False

    def run(self, stop: threading.Event, *, idle_exit: bool = False) -> ConsumerStats:
        """Cycle until ``stop`` is set (or, with ``idle_exit``, until nothing is left to do)."""
        self.start()
        self._stop = stop
        self._waits_after_idle = not idle_exit  # idle_exit: a step finding nothing means done
        # The heap the process built before (libraries, service state) is left out of the
        # garbage collector's walks while entries flow: see cdb.heap.
        with frozen_heap():
            try:
                while not stop.is_set():
                    busy = self._step_reconnecting(stop)
                    if idle_exit and not busy and not self.has_work():
                        break
                self._drain()
            finally:
                self.close()
                self._waits_after_idle = False
        return self.stats

    def _drain(self) -> None:
        """Handle entries read just before the stop (by a wait, or a read sent ahead), so none
        stays pending here."""
        if not any(self._read_in_hand(p) for p in self._parts):
            return
        self._draining = True
        try:
            for part in self._parts:
                # a read sent ahead may come in while the batch before it is handled
                for _ in range(3):
                    if not self._read_in_hand(part):
                        break
                    self._cycle(part)
        except _TRANSIENT as exc:  # they stay pending; a live consumer claims them
            log.warning("consumer %s could not finish read entries on stop: %s", self.name, exc)
        finally:
            self._draining = False

    def has_work(self) -> bool:
        return any(p.parked or len(p.retries) or self._read_in_hand(p) for p in self._parts)

    @staticmethod
    def _read_in_hand(part: _Partition) -> bool:
        """A read is in hand or on its way (entries delivered here, not handled yet)."""
        return (
            (part.prefetched is not None and bool(part.prefetched.rows))
            or part.next_read is not None
            or bool(part.ahead)
        )

    # -- one cycle -------------------------------------------------------------------------------

    def step(self) -> int:
        """One cycle over every partition; returns how many entries were finished."""
        if not self._started:
            self.start()
        if self._reack or self._adopt:
            self._after_failed_acks()
        finished = 0
        for part in self._parts:
            finished += self._cycle(part)
        if finished == 0:
            self._link.settle()  # check the last acks, give the connection back while idle
            self._wait()
        self._flowing = 0 < finished < LINGER_BELOW
        return finished

    def _step_reconnecting(self, stop: threading.Event) -> int:
        try:
            return self.step()
        except _TRANSIENT as exc:
            self._lose_link()
            self._reconnect(exc, stop)
            return 0

    def _lose_link(self) -> None:
        """The connection failed: what was sent ahead on it is lost (its reads and acks may or
        may not have run); the resync after the reconnect adopts what is pending here."""
        self._link.reset()
        for part in self._parts:
            part.next_read = part.ahead_record = None  # rows in hand are recorded again
            part.full = False
            part.recent = set()

    def _reconnect(self, exc: Exception, stop: threading.Event) -> None:
        started = time.monotonic()
        log.warning("consumer %s lost Redis (%s); reconnecting", self.name, exc)

        def ping() -> None:
            if stop.is_set():
                return
            self.client.ping()

        for attempt in Retrying(
            wait=wait_exponential(multiplier=0.05, max=2.0),
            retry=retry_if_exception_type(_PING_TRANSIENT),
            stop=stop_never,
            reraise=True,
        ):
            with attempt:
                ping()
        if stop.is_set():
            return
        self.stats.reconnects += 1
        log.warning("consumer %s reconnected after %.1fs", self.name, time.monotonic() - started)
        self._heartbeat.beat_now()
        ordering.load_scripts(self.client)
        self._resync()

    def _resync(self) -> None:
        """Adopt own pending entries this process does not track (lost replies, restarts).

        An adopted entry may have been delivered by a read whose record never ran: recording
        it again gives it its place (one already recorded only has what it waits behind looked
        up); the next cycle then checks what it waits for."""
        for part in self._parts:
            known = set(part.parked) | part.retries.ids()
            if part.next_read is not None:  # delivered here: in hand, not adopted
                if part.ahead is None:
                    self._take_ahead(part)
                else:  # a batch in hand already: this one stays in flight
                    reply = self._link.wait(part.next_read)
                    if isinstance(reply, Exception):
                        raise reply
                    known |= {text(eid) for eid, _ in ordering.rows_of(reply)}
            if part.prefetched is not None:
                known |= {text(eid) for eid, _ in part.prefetched.rows}
            if part.ahead:
                known |= {text(eid) for eid, _ in part.ahead}
            rows = self.client.xpending_range(
                part.pk.stream,
                part.pk.group,
                min="-",
                max="+",
                count=100_000,
                consumername=self.name,
            )
            missing = [text(r["message_id"]) for r in rows if text(r["message_id"]) not in known]
            if not missing:
                continue
            pipe = self.client.pipeline(transaction=False)
            for eid in missing:
                pipe.xrange(part.pk.stream, eid, eid)
            gone: list[tuple[str, bytes, bool]] = []
            adopted: Rows = []
            for eid, found in zip(missing, pipe.execute(), strict=True):
                if found:
                    adopted.append(found[0])
                    fields = fields_text(found[0][1])
                    agg = ordering.aggregate_of(fields)
                    part.parked[eid] = _Entry(eid, fields, agg, checked=False)
                else:
                    gone.append((eid, b"", True))
            ordering.record(self.client, part.pk, self.name, adopted)
            ordering.ack(self.client, part.pk, gone)

    def _after_failed_acks(self) -> None:
        """Acks sent ahead that came back with an error: again (the scripts were flushed), or
        their entries stay pending and are adopted again, to run again."""
        reack, self._reack = self._reack, []
        ordering.load_scripts(self.client)
        for part, done in reack:
            ordering.ack(self.client, part.pk, done)
        if self._adopt:
            self._adopt = False
            self._resync()

    def _send_ack(self, part: _Partition, cycle: _Cycle) -> None:
        """Ack what the cycle finished (its outputs are appended) and, after a full read,
        read the batch after the one in hand: one write, no wait."""
        ok = cycle.ok
        # _unwind may have taken entries out of ok (not out of ok_ids)
        part.recent = cycle.ok_ids if len(cycle.ok_ids) == len(ok) else {e.entry_id for e in ok}
        commands: list[tuple[tuple[Any, ...], Any]] = []
        read_ahead = part.full and part.next_read is None and not self._draining
        if read_ahead:
            part.full = False
            commands.append(
                (ordering.xread_command(part.pk, self.name, self.policy.batch_size), None)
            )
        if ok:
            done = [(e.entry_id, e.agg, e.waited) for e in ok]
            commands.append((ordering.ack_command(part.pk, done), self._ack_check(part, done)))
        if commands:
            replies = self._link.send_all(commands)
            if read_ahead:
                part.next_read = replies[0]

    def _ack_check(
        self, part: _Partition, done: list[tuple[str, bytes, bool]]
    ) -> Callable[[Any], None]:

        def checked(value: Any) -> None:
            if not isinstance(value, Exception):
                return
            part.recent = set()
            if ordering.is_noscript(value):
                self._reack.append((part, done))
                return
            log.warning(
                "consumer %s: ack of %d entries on %s failed (%s): those still pending run again",
                self.name,
                len(done),
                part.pk.stream,
                value,
            )
            self._adopt = True

        return checked

    def _cycle(self, part: _Partition) -> int:
        now = now_ms()
        if now >= part.next_claim_ms and not self._draining:
            self._claim(part)
            part.next_claim_ms = now + self._claim_every_ms
        if part.parked and (
            now >= part.next_heads_ms or any(not e.checked for e in part.parked.values())
        ):
            self._check_parked(part)
            # Behind a dead letter nothing moves until an operator acts: look less often.
            waiting_on_pending = any(not e.held for e in part.parked.values())
            part.next_heads_ms = now + (self._heads_every_ms if waiting_on_pending else 1000)

        candidates = self._due_retries(part, now)
        retried = bool(candidates)
        candidates += self._read(part, self.policy.batch_size - len(candidates))
        if not candidates and not any(not e.prev for e in part.parked.values()):
            return 0
        if part.parked or retried:
            # Fresh reads arrive in id order; only a mix needs sorting.
            candidates.extend(part.parked.values())
            part.parked = {}
            candidates.sort(key=lambda e: id_key(e.entry_id))

        cycle = _Cycle()
        self._run(part, candidates, cycle)
        self._commit(part, cycle)
        self._append_outputs(part, cycle)
        self._send_ack(part, cycle)
        for entry, reason in cycle.failed:
            self._failed(part, entry, reason)
        self.stats.handled += len(cycle.ok)
        return len(cycle.ok) + len(cycle.failed)

    def _read(self, part: _Partition, room: int) -> list[_Entry]:
        if room <= 0:
            return []
        read = part.prefetched
        if read is not None:
            part.prefetched = None
        elif part.next_read is not None or part.ahead is not None:
            if part.ahead is None:  # not in yet: wait, and read the next batch meanwhile
                self._take_ahead(part)
                self._read_more(part)
            rows, pending = part.ahead or [], part.ahead_record
            part.ahead = part.ahead_record = None
            return self._record(part, rows, pending)
        elif self._draining or (part.drained and self._waits_after_idle):
            # Drained: the last read was short, so nothing was behind it. Go straight to the
            # blocking wait (the next read rides behind it) instead of a read that would find
            # nothing: at a tick a millisecond, one round trip and one script less per entry.
            part.drained = False
            return []
        elif part.big:
            rows = ordering.rows_of(
                self._link.call(ordering.xread_command(part.pk, self.name, room))
            )
            part.full = len(rows) >= room and not self._draining
            self._read_more(part)
            return self._record(part, rows, None)
        else:
            # The script reads on another connection: acks sent ahead go first.
            self._link.settle()
            read = ordering.read_small(self.client, part.pk, self.name, min(room, _SMALL))
        rows = read.rows
        part.top = read.top
        part.big = len(rows) >= _SMALL
        part.drained = bool(rows) and bool(read.top)
        if not rows:
            return []
        waits = read.waits
        entries = _entries(rows)
        for i, prev in waits.items():
            entry = entries[i]
            entry.prev, entry.waited = prev, True
        return entries

    def _record(self, part: _Partition, rows: Rows, pending: Reply | None) -> list[_Entry]:
        """Record rows read natively (unless ``pending``, their record, was sent already)."""
        part.top = ""
        part.big = len(rows) >= _SMALL
        if not rows:
            return []
        if pending is None:
            pending = self._link.send(ordering.record_command(part.pk, self.name, rows))
        entries = _entries(rows)
        reply = self._link.wait(pending)
        if isinstance(reply, Exception):
            if not ordering.is_noscript(reply):
                raise reply
            ordering.load_scripts(self.client)
            waits = ordering.record(self.client, part.pk, self.name, rows)
        else:
            waits = ordering.parse_read(reply).waits
        for i, prev in waits.items():
            entry = entries[i]
            entry.prev, entry.waited = prev, True
        return entries

    def _read_more(self, part: _Partition) -> None:
        """After a full read, read the next batch while this one is handled."""
        if part.full and part.next_read is None and not self._draining:
            part.full = False
            command = ordering.xread_command(part.pk, self.name, self.policy.batch_size)
            part.next_read = self._link.send(command)

    def _take_ahead(self, part: _Partition) -> None:
        """Take in the reply of the XREADGROUP sent ahead and send the record of its rows
        (never over a batch in hand: at most one in hand and one in flight)."""
        assert part.next_read is not None
        assert part.ahead is None
        reply = self._link.wait(part.next_read)
        part.next_read = None
        if isinstance(reply, Exception):
            raise reply
        rows = ordering.rows_of(reply)
        part.ahead = rows
        part.full = len(rows) >= self.policy.batch_size and not self._draining
        if rows:
            part.ahead_record = self._link.send(ordering.record_command(part.pk, self.name, rows))

    def _run(self, part: _Partition, candidates: list[_Entry], cycle: _Cycle) -> None:
        """Handle, in order, every entry whose predecessor is finished; park the others.

        The per-entry path of the runtime: what every entry needs is bound once per batch, and
        the usual entry (six fields, handler answers None) goes through no other call."""
        parked, recent = part.parked, part.recent
        ok, ok_ids = cycle.ok, cycle.ok_ids
        handler, tracing, decode, link = self.handler, self._tracer.on, decode_fields, self._link
        topic, partition, group, name = part.pk.topic, part.pk.partition, self.group, self.name
        for i, entry in enumerate(candidates):
            if (
                i & 63 == 63
                and part.next_read is not None
                and part.ahead is None
                and link.poll(part.next_read)
            ):
                self._take_ahead(part)  # its record goes out now, while this batch runs
            prev = entry.prev
            if prev and prev not in ok_ids and prev not in recent:
                parked[entry.entry_id] = entry
                continue
            fields: Any = entry.fields
            if len(fields) != 6 or tracing:  # requeued (rq, rg), malformed, or traced
                self._handle(part, entry, cycle)
                continue
            try:
                event = decode(fields)
            except ContractError as exc:
                self._dead_letter(part, entry, deadletter.CONTRACT, exc)
                continue
            delivery = Delivery(
                topic, partition, group, name, entry.entry_id, entry.delivery_count or 1, fields
            )
            try:
                outcome = handler(event, delivery)
            except Exception as exc:
                outcome = self._failure(exc, delivery, None)
            if outcome is None:
                ok.append(entry)
                ok_ids.add(entry.entry_id)
            else:
                self._settle(part, entry, outcome, cycle)

    def _handle(self, part: _Partition, entry: _Entry, cycle: _Cycle) -> None:
        fields: Any = entry.fields
        if len(fields) != 6:  # an event has six fields; a requeued one also carries rq and rg
            fields = fields_text(fields)
            if "rg" in fields:
                if fields["rg"] != self.group:
                    # Requeued for another group (reached us through a claim): nothing to do.
                    cycle.ok.append(entry)
                    cycle.ok_ids.add(entry.entry_id)
                    return
                fields = {k: v for k, v in fields.items() if k not in _ROUTING}
        try:
            event = decode_fields(fields)
        except ContractError as exc:
            self._dead_letter(part, entry, deadletter.CONTRACT, exc)
            return
        delivery = Delivery(
            part.pk.topic,
            part.pk.partition,
            self.group,
            self.name,
            entry.entry_id,
            entry.delivery_count or 1,
            fields,
        )
        if self._tracer.on:
            outcome: Outcome | None = self._call(event, delivery)
        else:
            try:
                outcome = self.handler(event, delivery)
            except Exception as exc:
                outcome = self._failure(exc, delivery, None)
        self._settle(part, entry, outcome, cycle)

    def _settle(
        self, part: _Partition, entry: _Entry, outcome: Outcome | None, cycle: _Cycle
    ) -> None:
        if outcome is None:
            cycle.ok.append(entry)
            cycle.ok_ids.add(entry.entry_id)
        elif isinstance(outcome, Ack):
            cycle.ok.append(entry)
            cycle.ok_ids.add(entry.entry_id)
            if outcome.outputs:
                cycle.outputs.append((entry, outcome.outputs))
        elif isinstance(outcome, Reject):
            self._dead_letter(part, entry, deadletter.REJECTED, HandlerRejected(outcome.reason))
        else:
            cycle.failed.append((entry, outcome.reason))

    def _call(self, event: EventEnvelope, delivery: Delivery) -> Outcome:
        attributes = {
            "messaging.message.id": delivery.entry_id,
            "cdb.event_id": str(event.event_id),
            "cdb.event_type": event.event_type.value,
            "cdb.stream_id": event.stream_id,
            "cdb.delivery_count": delivery.delivery_count,
        }
        with self._tracer.span(event.metadata.traceparent, attributes) as span:
            return self._outcome(event, delivery, span)

    def _outcome(self, event: EventEnvelope, delivery: Delivery, span: Any) -> Outcome:
        try:
            outcome = self.handler(event, delivery)
        except Exception as exc:
            return self._failure(exc, delivery, span)
        if outcome is None:
            return _ACK
        if not isinstance(outcome, Ack):
            EntryTracer.mark_failed(span, outcome.reason)
        return outcome

    @staticmethod
    def _failure(exc: Exception, delivery: Delivery, span: Any) -> Outcome:
        if isinstance(exc, HandlerRejected):
            EntryTracer.mark_failed(span, str(exc))
            return Reject(exc.reason)
        # any other failure is worth another try
        log.info("handler failed on %s: %r", delivery.entry_id, exc)
        EntryTracer.mark_failed(span, repr(exc))
        return Retry(f"{type(exc).__name__}: {exc}")

    def _commit(self, part: _Partition, cycle: _Cycle) -> None:
        if self.commit is None or not cycle.ok:
            return
        try:
            self.commit()
        except Exception as exc:  # nothing of this cycle is done: every entry runs again
            log.warning("commit failed for %d entries: %r", len(cycle.ok), exc)
            reason = f"commit failed: {type(exc).__name__}: {exc}"
            self._unwind(part, cycle, {e.entry_id: reason for e in cycle.ok})
            cycle.outputs = []

    def _append_outputs(self, part: _Partition, cycle: _Cycle) -> None:
        if not cycle.outputs:
            return
        if self.store is None:
            raise StoreError("a handler returned outputs but the consumer has no event store")
        failed: dict[str, str] = {}
        requests = [req for _, reqs in cycle.outputs for req in reqs]
        try:
            results: list[AppendResult | StoreError] = self.store.append_many(requests)
        except ContractError:
            results = []
            for entry, reqs in cycle.outputs:
                try:
                    results += self.store.append_many(reqs)
                except ContractError as exc:
                    failed[entry.entry_id] = f"reject:{exc}"
                    results += [StoreError(str(exc))] * len(reqs)
        pos = 0
        for entry, reqs in cycle.outputs:
            for result in results[pos : pos + len(reqs)]:
                if isinstance(result, StoreError) and entry.entry_id not in failed:
                    failed[entry.entry_id] = f"{type(result).__name__}: {result}"
            pos += len(reqs)
        if failed:
            self._unwind(part, cycle, failed)

    def _unwind(self, part: _Partition, cycle: _Cycle, failed: dict[str, str]) -> None:
        # An entry whose outputs did not land is not done, and neither is anything after it
        # in its aggregate: those re-run after it, in order (handlers are idempotent).
        blocked: dict[bytes, str] = {}
        keep: list[_Entry] = []
        for entry in cycle.ok:
            agg = entry.agg
            if agg and agg in blocked:
                entry.prev, entry.checked, entry.waited = blocked[agg], True, True
                part.parked[entry.entry_id] = entry
                blocked[agg] = entry.entry_id
            elif entry.entry_id in failed:
                reason = failed[entry.entry_id]
                if reason.startswith("reject:"):
                    self._dead_letter(part, entry, deadletter.REJECTED, HandlerRejected(reason[7:]))
                else:
                    cycle.failed.append((entry, reason))
                if agg:
                    blocked[agg] = entry.entry_id
            else:
                keep.append(entry)
        cycle.ok = keep

    # -- retry and dead letter -------------------------------------------------------------------

    def _failed(self, part: _Partition, entry: _Entry, reason: str) -> None:
        count = entry.delivery_count
        if count is None:
            count = retry.delivery_counts(self.client, part.pk, [entry.entry_id]).get(
                entry.entry_id, 1
            )
        if count >= self.policy.max_deliveries:
            error = RuntimeError(reason)
            self._dead_letter(part, entry, deadletter.EXHAUSTED, error, count)
            return
        self.stats.retried += 1
        part.retries.schedule(entry.entry_id, entry.agg, count, self.policy, now_ms())

    def _due_retries(self, part: _Partition, now: int) -> list[_Entry]:
        due = part.retries.pop_due(now)
        if not due:
            return []
        got = retry.redeliver(self.client, part.pk, self.name, [eid for eid, _, _ in due])
        out: list[_Entry] = []
        gone: list[tuple[str, bytes, bool]] = []
        for eid, aggregate, count in due:
            fields = got.get(eid)
            if fields is None:
                gone.append((eid, aggregate, True))  # deleted from the stream meanwhile
            else:
                out.append(_Entry(eid, fields, aggregate, "", count + 1))
        ordering.ack(self.client, part.pk, gone)
        return out

    def _dead_letter(
        self,
        part: _Partition,
        entry: _Entry,
        reason: str,
        error: Exception,
        count: int | None = None,
    ) -> None:
        if count is None:
            count = entry.delivery_count
        if count is None:
            count = retry.delivery_counts(self.client, part.pk, [entry.entry_id]).get(
                entry.entry_id, 1
            )
        letter = deadletter.DeadLetter(
            reason=reason,
            error_type=type(error).__name__,
            error=str(error),
            delivery_count=count,
            consumer=self.name,
            entry_id=entry.entry_id,
            fields=fields_text(entry.fields),
        )
        if deadletter.dead_letter(self.client, part.pk, letter) is not None:
            self.stats.dead_lettered += 1
            log.warning(
                "dead-lettered %s %s (%s): %s", part.pk.topic, entry.entry_id, reason, error
            )

    # -- claim and parking -----------------------------------------------------------------------

    def _claim(self, part: _Partition) -> None:
        result = claim.autoclaim(self.client, part.pk, self.name, self.policy.claim_idle_ms)
        for eid, fields in result.claimed:
            if eid not in part.parked and eid not in part.retries:
                agg = ordering.aggregate_of(fields)
                part.parked[eid] = _Entry(eid, fields, agg, checked=False)
        if result.claimed:
            self.stats.claimed += len(result.claimed)
            log.info("consumer %s claimed %d entries", self.name, len(result.claimed))
        claim.reap_consumers(self.client, part.pk, self.name, self.policy.claim_idle_ms)

    def _check_parked(self, part: _Partition) -> None:
        waiting = sorted(part.parked.values(), key=lambda e: id_key(e.entry_id))
        verdicts = ordering.waiting_for(self.client, part.pk, [e.entry_id for e in waiting])
        for entry, verdict in zip(waiting, verdicts, strict=True):
            entry.checked = True
            entry.prev = verdict[2:]
            entry.held = verdict.startswith("h:")
            entry.waited = bool(verdict)  # a free entry's record is gone

    def parked(self) -> dict[str, str]:
        """Entries waiting behind an unfinished predecessor: entry id -> predecessor id."""
        return {eid: e.prev for p in self._parts for eid, e in p.parked.items()}

    def _linger(self) -> None:
        """Entries are trickling in: let a few gather so the next cycle handles them together
        (see GroupPolicy.linger_ms). After a quiet spell the wait returns at the first entry."""
        if self._flowing and self._linger_s and self._waits_after_idle:
            self._stop.wait(self._linger_s)

    def _wait(self) -> None:
        """Block until new entries may be there, a retry falls due or parked entries need a look;
        the next read of every partition rides in the same round trip, behind the wait."""
        timeout = self._block_ms
        now = now_ms()
        for part in self._parts:
            due = part.retries.next_due_ms()
            if due is not None:
                timeout = min(timeout, max(0, due - now))
            if part.parked:
                timeout = min(timeout, max(0, part.next_heads_ms - now))
            timeout = min(timeout, max(0, part.next_claim_ms - now))
        if timeout <= 0 or any(self._read_in_hand(p) or not p.top for p in self._parts):
            # Something is due, a read is in hand, or a read did not say where its stream
            # ends: read (or handle) first.
            return
        self._linger()
        pipe = self.client.pipeline(transaction=False)
        pipe.xread({p.pk.stream: p.top for p in self._parts}, count=1, block=max(1, timeout))
        count = min(self.policy.batch_size, _SMALL)
        for part in self._parts:
            sha, args = ordering.read_script_call(part.pk, self.name, count)
            pipe.evalsha(sha, *args)
        results = pipe.execute(raise_on_error=False)
        failure: Exception | None = None
        for part, result in zip(self._parts, results[1:], strict=True):
            if isinstance(result, Exception):
                if ordering.is_noscript(result):  # flushed scripts (a restart): load, read next
                    ordering.load_scripts(self.client)
                else:
                    failure = result
                continue
            part.prefetched = read = ordering.parse_read(result)
            if read.top:
                part.top = read.top
        if failure is None and isinstance(results[0], Exception):
            failure = results[0]
        if failure is not None:
            raise failure


def _entries(rows: Rows) -> list[_Entry]:
    """Freshly read rows as entries (delivered once, waiting for nothing until told)."""
    if isinstance(rows[0][0], bytes):  # the usual client: ids and fields as bytes
        return [
            _Entry(eid.decode(), fields, fields.get(b"s", b""), "", 1, waited=False)
            for eid, fields in rows
        ]
    return [
        _Entry(text(eid), fields, ordering.aggregate_of(fields), "", 1, waited=False)
        for eid, fields in rows
    ]


def ensure_group(client: redis.Redis, pk: PartitionKeys) -> None:
    """Create the consumer group (from the start of the topic) if it does not exist."""
    try:
        client.xgroup_create(pk.stream, pk.group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
