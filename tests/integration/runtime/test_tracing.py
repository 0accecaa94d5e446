"""Each handled entry is a span, child of the producer's span carried in the envelope."""

from __future__ import annotations

import redis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from cdb.domain.envelope import EventEnvelope
from cdb.eventstore.store import EventStore
from cdb.runtime.consumer import Consumer
from cdb.runtime.handler import Delivery
from tests.integration.runtime.support import GROUP, TOPIC, alert, new_aggregate, topology

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


def test_the_consumer_span_continues_the_producers_trace(
    redis_client: redis.Redis, namespace: str
) -> None:
    store = EventStore(redis_client, topology(), namespace, check_server=False)
    agg = new_aggregate()
    store.append(agg, [alert(agg, 1, traceparent=f"00-{TRACE_ID}-{PARENT_SPAN}-01")], 0)
    untraced = new_aggregate()
    store.append(untraced, [alert(untraced, 1)], 0)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[str] = []

    def handler(event: EventEnvelope, delivery: Delivery) -> None:
        seen.append(event.stream_id)

    consumer = Consumer(
        redis_client,
        topology(),
        namespace,
        topic=TOPIC,
        group=GROUP,
        handler=handler,
        tracer_provider=provider,
    )
    consumer.step()
    consumer.close()
    assert sorted(seen) == sorted([agg, untraced])
    spans = {s.attributes["cdb.stream_id"]: s for s in exporter.get_finished_spans()}  # type: ignore[index]
    child = spans[agg]
    assert child.kind == SpanKind.CONSUMER
    assert child.context is not None
    assert child.parent is not None
    assert format(child.context.trace_id, "032x") == TRACE_ID
    assert format(child.parent.span_id, "016x") == PARENT_SPAN
    assert child.attributes is not None
    assert child.attributes["messaging.consumer.group.name"] == GROUP
    root = spans[untraced]
    assert root.parent is None  # no traceparent: a new trace


def test_tracing_is_off_unless_asked_for() -> None:
    from cdb.runtime.tracing import EntryTracer

    assert not EntryTracer(TOPIC, GROUP).on  # no provider installed, OTEL_* unset
