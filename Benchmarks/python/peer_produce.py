"""The Python peer: confluent-kafka instrumented by OpenTelemetry, on the same broker as the Swift runs.

    peer_produce.py BOOTSTRAP TOPIC PARTITIONS COUNT   -> prints messages per second

Every produce goes through opentelemetry-instrumentation-confluent-kafka (a sampled PRODUCER span per message, its
context injected into the headers); the SDK batches spans with a BatchSpanProcessor into an exporter that drops them,
so the figure is the instrumentation's cost without any network export. Same shape as the Swift runs: produce COUNT
records of 100 bytes round-robin over the partitions (linger 5 ms), then flush; elapsed from the first produce to the end of the flush.
"""
import sys
import time

from confluent_kafka import Producer
from opentelemetry import trace
from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class NullExporter(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans):
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def main():
    bootstrap, topic, partitions, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullExporter()))
    trace.set_tracer_provider(provider)
    producer = ConfluentKafkaInstrumentor().instrument_producer(
        Producer({"bootstrap.servers": bootstrap, "linger.ms": 5}), tracer_provider=provider
    )
    value = b"a" * 100
    producer.produce(topic, value)  # metadata and connection, outside the timing
    producer.flush()
    start = time.perf_counter()
    for index in range(count):
        while True:
            try:
                producer.produce(topic, value, partition=index % partitions)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - start
    if remaining:
        sys.exit(f"peer_produce: {remaining} records not delivered")
    provider.shutdown()
    print(f"{count / elapsed:.0f}")


if __name__ == "__main__":
    main()
