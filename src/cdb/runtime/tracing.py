"""One OpenTelemetry span per handled entry, child of the producer's span.

The producer's W3C ``traceparent`` travels in the envelope's metadata; the consumer span is
started in that context. Off unless asked for, through the standard variables:
``OTEL_TRACES_EXPORTER`` (``console``, or ``otlp`` when the OTLP exporter package is installed;
unset or ``none`` = off), ``OTEL_SERVICE_NAME``, ``OTEL_SDK_DISABLED``. A process that installs
its own tracer provider (a test, an embedding application) gets spans through it as well.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)
_PROPAGATOR = TraceContextTextMapPropagator()
_configured = False


def configure_from_env(service_name: str) -> bool:
    """Install an SDK tracer provider when ``OTEL_TRACES_EXPORTER`` asks for one."""
    global _configured  # noqa: PLW0603 - process-wide, like OpenTelemetry's own provider
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    disabled = os.environ.get("OTEL_SDK_DISABLED", "false").strip().lower() == "true"
    if _configured or disabled or exporter_name in ("", "none"):
        return _configured
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            log.warning("OTEL_TRACES_EXPORTER=otlp but the OTLP exporter is not installed")
            return False
        exporter = OTLPSpanExporter()
    else:
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported (console, otlp)", exporter_name)
        return False
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
    return True


def enabled() -> bool:
    """Whether spans go anywhere (the default proxy provider records nothing)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


class EntryTracer:
    """Starts the consumer span of one entry; a no-op context when tracing is off."""

    def __init__(
        self, topic: str, group: str, provider: trace.TracerProvider | None = None
    ) -> None:
        self._topic = topic
        self._group = group
        self.on = provider is not None or enabled()
        self._tracer = None
        if self.on:
            self._tracer = (provider or trace.get_tracer_provider()).get_tracer("cdb.runtime")

    def span(
        self, traceparent: str | None, attributes: Mapping[str, Any]
    ) -> AbstractContextManager[Any]:
        if self._tracer is None:
            return nullcontext()
        return self._span(traceparent, attributes)

    @contextmanager
    def _span(self, traceparent: str | None, attributes: Mapping[str, Any]) -> Iterator[Any]:
        assert self._tracer is not None
        parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        with self._tracer.start_as_current_span(
            f"{self._topic} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "redis",
                "messaging.destination.name": self._topic,
                "messaging.consumer.group.name": self._group,
                **attributes,
            },
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            yield span

    @staticmethod
    def mark_failed(span: Any, reason: str) -> None:
        if span is not None and hasattr(span, "set_status"):
            span.set_status(Status(StatusCode.ERROR, reason))
