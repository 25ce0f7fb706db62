"""The Python side of the cross-language checks: confluent-kafka instrumented by OpenTelemetry.

    otel_kafka.py consume --bootstrap B --topic T --group G --count N
    otel_kafka.py produce --bootstrap B --topic T --count N

Both print one JSON object on stdout: the spans the OpenTelemetry SDK recorded (in-memory exporter) and, for
`consume`, what OpenTelemetry's own W3C propagator extracted from each record's headers. The Swift suite
(CrossLanguageTests) runs this script and checks the ids against its own spans.
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, Producer
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class HeaderGetter:
    """Reads Kafka headers (a list of (key, bytes) tuples) for OpenTelemetry's propagators; the last value wins."""

    def get(self, carrier, key):
        values = [v.decode("utf-8") for (k, v) in (carrier or []) if k == key and v is not None]
        return values[-1:] or None

    def keys(self, carrier):
        return [k for (k, _) in (carrier or [])]


def span_json(span):
    """A finished SDK span as plain JSON: hex ids, parent, links, kind, attributes, tracestate."""
    ctx = span.context
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "trace_state": ctx.trace_state.to_header(),
        "links": [
            {"trace_id": format(l.context.trace_id, "032x"), "span_id": format(l.context.span_id, "016x")}
            for l in span.links
        ],
        "attributes": {k: (v if isinstance(v, (str, int, float, bool)) else str(v)) for k, v in span.attributes.items()},
    }


def setup():
    """A tracer provider that keeps finished spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider, exporter


def consume(args):
    provider, exporter = setup()
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 200,
        "topic.metadata.refresh.interval.ms": 500,
    })
    consumer = ConfluentKafkaInstrumentor().instrument_consumer(consumer, tracer_provider=provider)
    consumer.subscribe([args.topic])
    tracer = provider.get_tracer("integration-python-consumer")
    messages = []
    deadline = time.time() + args.timeout
    while len(messages) < args.count:
        if time.time() > deadline:
            sys.exit(f"otel_kafka consume: got {len(messages)} of {args.count} messages from {args.topic} in {args.timeout} s")
        record = consumer.poll(0.5)
        if record is None:
            continue
        if record.error():
            sys.exit(f"otel_kafka consume: {record.error()}")
        headers = record.headers() or []
        # OpenTelemetry's own W3C propagators (tracecontext + baggage) read the headers; a handler span is started
        # as the extracted context's child, the way a service continues a trace by hand.
        extracted = propagate.extract(headers, getter=HeaderGetter())
        parent = trace.get_current_span(extracted).get_span_context()
        with tracer.start_as_current_span(f"handle {args.topic}", context=extracted, kind=trace.SpanKind.CONSUMER):
            pass
        messages.append({
            "value": record.value().decode("utf-8", "replace") if record.value() is not None else None,
            "headers": [[k, v.decode("utf-8", "replace") if v is not None else None] for (k, v) in headers],
            "extracted": {
                "valid": parent.is_valid,
                "trace_id": format(parent.trace_id, "032x"),
                "span_id": format(parent.span_id, "016x"),
                "sampled": parent.trace_flags.sampled,
                "trace_state": parent.trace_state.to_header(),
                "baggage": dict(baggage.get_all(extracted)),
            },
        })
    consumer.close()  # ends the instrumentation's last "process" span
    print(json.dumps({"messages": messages, "spans": [span_json(s) for s in exporter.get_finished_spans()]}))


def produce(args):
    provider, exporter = setup()
    producer = ConfluentKafkaInstrumentor().instrument_producer(
        Producer({"bootstrap.servers": args.bootstrap}), tracer_provider=provider
    )
    tracer = provider.get_tracer("integration-python-producer")
    failures = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(str(err))

    token = context.attach(baggage.set_baggage("origin", "python"))
    try:
        with tracer.start_as_current_span("py-request", kind=trace.SpanKind.SERVER):
            for index in range(args.count):
                producer.produce(args.topic, value=f"from-python-{index}".encode(), headers=[], on_delivery=delivered)
    finally:
        context.detach(token)
    remaining = producer.flush(30)
    if remaining or failures:
        sys.exit(f"otel_kafka produce: {remaining} undelivered, failures: {failures}")
    print(json.dumps({"spans": [span_json(s) for s in exporter.get_finished_spans()]}))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("consume", "produce"):
        p = sub.add_parser(name)
        p.add_argument("--bootstrap", required=True)
        p.add_argument("--topic", required=True)
        p.add_argument("--count", type=int, default=1)
        p.add_argument("--group", default="integration-python")
        p.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    consume(args) if args.command == "consume" else produce(args)


if __name__ == "__main__":
    main()
