"""Child process for the OpenTelemetry test: a subscription in another process continues the
trace its events carry. ``python -m tests._otel_child PATH`` prints, per handled event, the
trace id and parent span id of its ``process`` span (hex)."""

import sys

import anyio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventuality import Event, SQLiteEventStore, Subscription, otel
from tests import domain  # noqa: F401  (registers the event types the store holds)


async def main(path: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(tracer_provider=provider)

    async def handle(event: Event) -> None: ...

    async with SQLiteEventStore(path) as store:
        await Subscription(store, "child", handle).catch_up()
    for span in exporter.get_finished_spans():
        if span.name == "process child" and span.parent is not None and span.context is not None:
            print(f"{span.context.trace_id:032x} {span.parent.span_id:016x}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
