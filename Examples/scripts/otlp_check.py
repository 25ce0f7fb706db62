#!/usr/bin/env python3
"""A minimal OTLP/HTTP receiver and the checks check-export runs on what it received.

    otlp_check.py serve  --port-file FILE --dump DIR
        Listens on 127.0.0.1 (a free port, written to FILE once listening) for POST /v1/traces, /v1/logs and
        /v1/metrics (application/x-protobuf, gzip-encoded or not), validates each request, stores it in DIR,
        and answers as an OTLP collector does. Anything it cannot take is answered with an error and recorded
        in DIR, so the checks fail on it.

    otlp_check.py verify --dump DIR --orders N [--wait SECONDS] [--watch-pid PID]
        Checks what was received: N traces of the order pipeline, each spanning orders-api, payments and
        notifications (three service.name resources), with PRODUCER and CONSUMER spans where each consumer's
        `process T` span is the child of the upstream service's `send T` span and links to it, payments' send
        inside a committed `transaction` span that is the child of its process span; log records
        from every service that carry the trace_id/span_id of a span they were written in; and TracedKafka's
        metrics with the OpenTelemetry conventions' units: messaging.client.operation.duration and
        messaging.process.duration in "s", messaging.client.sent.messages and messaging.client.consumed.messages
        in "{message}" (from any service), and none of the library's metrics (messaging.*, tracedkafka.*)
        without a unit.
        With --wait it retries until the checks pass or SECONDS pass (or PID exits); exits 1 with the reasons
        when they fail.
"""

import argparse
import gzip
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

SIGNALS = {
    "/v1/traces": ("traces", ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/logs": ("logs", ExportLogsServiceRequest, ExportLogsServiceResponse),
    "/v1/metrics": ("metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}

# The order pipeline, as Examples/Sources/order-pipeline builds it.
ORDERS_API, PAYMENTS, NOTIFICATIONS = "orders-api", "payments", "notifications"
REQUEST_SPAN = "POST /orders"
HOPS = [  # (topic, upstream service, downstream service)
    ("orders.placed", ORDERS_API, PAYMENTS),
    ("payments.captured", PAYMENTS, NOTIFICATIONS),
]

TRANSACTION_SPAN = "transaction"  # payments' exactly-once transaction, around its send

# TracedKafka's metrics that the pipeline records, with their units as the OpenTelemetry semantic conventions give
# them. The library puts the unit in a `unit` dimension, which swift-otel makes the instrument's unit.
EXPECTED_UNITS = {
    "messaging.client.operation.duration": "s",
    "messaging.process.duration": "s",
    "messaging.client.sent.messages": "{message}",
    "messaging.client.consumed.messages": "{message}",
}
LIBRARY_METRIC_PREFIXES = ("messaging.", "tracedkafka.")  # the library's metrics, whose units are checked


def string_attribute(span, key):
    for attribute in span.attributes:
        if attribute.key == key:
            return attribute.value.string_value
    return None


KIND_NAMES = {value: name.removeprefix("SPAN_KIND_").lower() for name, value in Span.SpanKind.items()}


# MARK: - serve


def serve(port_file, dump):
    os.makedirs(dump, exist_ok=True)
    sequence = count(1)

    def store(name, body):
        path = os.path.join(dump, f"{next(sequence):06d}-{name}")
        with open(path + ".tmp", "wb") as file:
            file.write(body)
        os.replace(path + ".tmp", path)  # whole files only, for a verify running meanwhile

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the exporter expects

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            signal = SIGNALS.get(self.path.split("?")[0])
            if signal is None:
                return self.refuse(404, f"no OTLP endpoint at {self.path}")
            name, request_type, response_type = signal
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type != "application/x-protobuf":
                return self.refuse(415, f"{self.path}: Content-Type {content_type!r}, expected application/x-protobuf")
            encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
            try:
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                elif encoding != "identity":
                    return self.refuse(415, f"{self.path}: unsupported Content-Encoding {encoding!r}")
                request_type.FromString(body)
            except Exception as error:  # a body that doesn't decode is the exporter's bug: record it
                return self.refuse(400, f"{self.path}: undecodable {encoding} body of {len(body)} bytes: {error}")
            store(name, body)
            self.answer(200, response_type().SerializeToString(), "application/x-protobuf")

        def refuse(self, status, reason):
            store("error", reason.encode())
            print(f"otlp receiver: {reason}", file=sys.stderr, flush=True)
            self.answer(status, reason.encode(), "text/plain")

        def answer(self, status, body, content_type):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # quiet: one line per request would drown the pipeline's output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as file:
        file.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    print(f"otlp receiver: listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


# MARK: - verify


@dataclass
class SpanRecord:
    service: str
    span: Span

    @property
    def id(self):
        return self.span.span_id.hex()

    @property
    def parent(self):
        return self.span.parent_span_id.hex()

    @property
    def kind(self):
        return KIND_NAMES.get(self.span.kind, str(self.span.kind))

    def describe(self):
        return f"{self.span.name!r} ({self.kind}, {self.service}, span {self.id}, parent {self.parent or '-'})"


@dataclass
class Received:
    spans: list = field(default_factory=list)  # SpanRecord
    logs: list = field(default_factory=list)  # (service, trace_id hex, span_id hex, body)
    # (name, unit) -> {"services": the service.names it came from, "kinds": its data kinds (sum, histogram, …)}
    metrics: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    requests: dict = field(default_factory=lambda: {"traces": 0, "logs": 0, "metrics": 0})


def service_name(resource):
    for attribute in resource.attributes:
        if attribute.key == "service.name":
            return attribute.value.string_value
    return "<no service.name>"


def entries(resources, scopes, items):
    """(service.name, item) for every span or log record of an export request's resources."""
    for resource in resources:
        service = service_name(resource.resource)
        for scope in getattr(resource, scopes):
            for item in getattr(scope, items):
                yield service, item


def load(dump):
    received, spans, logs = Received(), {}, {}
    if not os.path.isdir(dump):
        return received
    for name in sorted(os.listdir(dump)):
        if name.endswith(".tmp"):
            continue
        with open(os.path.join(dump, name), "rb") as file:
            body = file.read()
        kind = name.split("-", 1)[1]
        if kind == "error":
            received.errors.append(body.decode(errors="replace"))
        elif kind == "traces":
            received.requests["traces"] += 1
            request = ExportTraceServiceRequest.FromString(body)
            for service, span in entries(request.resource_spans, "scope_spans", "spans"):
                # A request the exporter retried repeats its items: each span and log record counts once.
                spans.setdefault((span.trace_id, span.span_id), SpanRecord(service, span))
        elif kind == "logs":
            received.requests["logs"] += 1
            request = ExportLogsServiceRequest.FromString(body)
            for service, record in entries(request.resource_logs, "scope_logs", "log_records"):
                entry = (service, record.trace_id.hex(), record.span_id.hex(), record.body.string_value)
                logs.setdefault((entry, record.time_unix_nano), entry)
        elif kind == "metrics":
            received.requests["metrics"] += 1
            request = ExportMetricsServiceRequest.FromString(body)
            for service, metric in entries(request.resource_metrics, "scope_metrics", "metrics"):
                # Cumulative metrics are sent again on every export: what counts is each (name, unit) seen.
                data = metric.WhichOneof("data")
                seen = received.metrics.setdefault((metric.name, metric.unit), {"services": set(), "kinds": set()})
                seen["services"].add(service)
                seen["kinds"].add(data or "<no data>")
    received.spans = list(spans.values())
    received.logs = list(logs.values())
    return received


def check_trace(trace_id, spans):
    """The problems with one pipeline trace; an empty list when it is whole and well-formed."""
    problems = []
    services = {record.service for record in spans}
    if services != {ORDERS_API, PAYMENTS, NOTIFICATIONS}:
        problems.append(f"spans from {sorted(services)}, not exactly orders-api, payments and notifications")

    def find(name, kind, service):
        matches = [r for r in spans if r.span.name == name and r.span.kind == kind and r.service == service]
        if len(matches) != 1:
            problems.append(f"{len(matches)} {KIND_NAMES[kind]} spans {name!r} from {service}, expected 1")
            return None
        return matches[0]

    request = find(REQUEST_SPAN, Span.SPAN_KIND_SERVER, ORDERS_API)
    if request and request.parent:
        problems.append(f"{request.describe()} should be the root")
    upstream_parent = request
    for topic, upstream, downstream in HOPS:
        if upstream == PAYMENTS:
            # payments sends in a transaction: its `transaction` span sits between its process span and its send.
            transaction = find(TRANSACTION_SPAN, Span.SPAN_KIND_INTERNAL, PAYMENTS)
            if transaction and upstream_parent and transaction.parent != upstream_parent.id:
                problems.append(f"{transaction.describe()} is not a child of {upstream_parent.describe()}")
            if transaction and string_attribute(transaction.span, "tracedkafka.transaction.outcome") != "committed":
                problems.append(f"{transaction.describe()} does not say committed")
            upstream_parent = transaction
        send = find(f"send {topic}", Span.SPAN_KIND_PRODUCER, upstream)
        process = find(f"process {topic}", Span.SPAN_KIND_CONSUMER, downstream)
        if send and upstream_parent and send.parent != upstream_parent.id:
            problems.append(f"{send.describe()} is not a child of {upstream_parent.describe()}")
        if send and process:
            if process.parent != send.id:
                problems.append(f"{process.describe()} is not a child of {send.describe()}")
            if not any(link.span_id.hex() == send.id and link.trace_id.hex() == trace_id for link in process.span.links):
                problems.append(f"{process.describe()} has no link to {send.describe()}")
        upstream_parent = process
    for record in spans:
        if record.parent and record.parent not in {other.id for other in spans}:
            problems.append(f"{record.describe()} has a parent that was not exported")
    return problems


def verify(received, orders):
    """Every problem with what was received, and the pipeline traces found."""
    problems = [f"the receiver refused a request: {error}" for error in received.errors]
    by_trace = {}
    for record in received.spans:
        by_trace.setdefault(record.span.trace_id.hex(), []).append(record)
    pipeline = {
        trace_id: spans
        for trace_id, spans in by_trace.items()
        if any(r.span.name == REQUEST_SPAN and r.service == ORDERS_API for r in spans)
    }
    if received.requests["traces"] == 0:
        problems.append("no POST /v1/traces was received")
    if len(pipeline) < orders:
        problems.append(f"{len(pipeline)} traces start with orders-api's {REQUEST_SPAN!r}, expected {orders}")
    for trace_id, spans in sorted(pipeline.items()):
        problems += [f"trace {trace_id}: {problem}" for problem in check_trace(trace_id, spans)]
    # Nothing else: a span outside the orders' traces (an exporter tracing its own requests, say) is a bug too.
    strays = sorted({(r.service, r.span.name, r.kind) for t, spans in by_trace.items() if t not in pipeline for r in spans})
    if strays:
        problems.append(f"spans outside the orders' traces: {', '.join(f'{n!r} ({k}, {s})' for s, n, k in strays)}")

    # Logs: each service wrote at least one record inside one of its own pipeline spans, and says so.
    span_owner = {(r.span.trace_id.hex(), r.id): r.service for spans in pipeline.values() for r in spans}
    if received.requests["logs"] == 0:
        problems.append("no POST /v1/logs was received")
    for service in (ORDERS_API, PAYMENTS, NOTIFICATIONS):
        correlated = [log for log in received.logs if log[0] == service and span_owner.get((log[1], log[2])) == service]
        if not correlated:
            total = sum(1 for log in received.logs if log[0] == service)
            problems.append(f"none of {service}'s {total} log records carries the trace_id/span_id of one of its spans")

    problems += check_metrics(received)
    return problems, pipeline


def check_metrics(received):
    """The problems with TracedKafka's metrics: each expected one in its conventional unit, none without a unit."""
    problems = []
    if received.requests["metrics"] == 0:
        return ["no POST /v1/metrics was received"]
    units = {}  # name -> {unit: services}
    for (name, unit), seen in received.metrics.items():
        units.setdefault(name, {})[unit] = seen["services"]

    def describe(name):
        return ", ".join(
            f"{unit or '<empty>'!r} from {', '.join(sorted(services))}" for unit, services in sorted(units[name].items())
        )

    for name, unit in EXPECTED_UNITS.items():
        if name not in units:
            problems.append(f"metric {name} did not arrive (expected with unit {unit!r})")
        elif set(units[name]) != {unit}:
            problems.append(f"metric {name} arrived with unit {describe(name)}; expected only {unit!r}")
    for name in sorted(units):
        if name.startswith(LIBRARY_METRIC_PREFIXES) and name not in EXPECTED_UNITS and "" in units[name]:
            problems.append(f"metric {name} arrived without a unit (from {', '.join(sorted(units[name]['']))})")
    return problems


def metrics_summary(received):
    """One line per metric received: name, unit, data kind, services."""
    lines = []
    for (name, unit), seen in sorted(received.metrics.items()):
        lines.append(
            f"  {name:<40} unit {unit or '<empty>'!r:<12} {'/'.join(sorted(seen['kinds'])):<10} "
            f"{', '.join(sorted(seen['services']))}"
        )
    return "\n".join(lines)


def waterfall(spans):
    """The spans of one trace as an indented tree."""
    children = {}
    for record in spans:
        children.setdefault(record.parent, []).append(record)
    ids = {record.id for record in spans}
    lines = []

    def walk(record, depth):
        duration = (record.span.end_time_unix_nano - record.span.start_time_unix_nano) / 1e6
        label = f"{'   ' * depth}{record.span.name}"
        lines.append(f"  {label:<42} {record.kind:<9} {record.service:<14} {duration:7.1f} ms")
        for child in sorted(children.get(record.id, []), key=lambda r: r.span.start_time_unix_nano):
            walk(child, depth + 1)

    for root in sorted((r for r in spans if r.parent not in ids), key=lambda r: r.span.start_time_unix_nano):
        walk(root, 0)
    return "\n".join(lines)


def run_verify(dump, orders, wait, watch_pid):
    started = time.monotonic()
    deadline = started + wait
    while True:
        received = load(dump)
        problems, pipeline = verify(received, orders)
        if not problems:
            break
        if time.monotonic() >= deadline or (watch_pid and not alive(watch_pid)):
            if watch_pid and not alive(watch_pid):
                problems.insert(0, f"the pipeline (pid {watch_pid}) exited before its export was complete")
            waited = time.monotonic() - started
            print(f"check-export: after {waited:.0f} s, what the pipeline exported is incomplete or wrong:")
            for problem in problems[:40]:
                print(f"  - {problem}")
            if len(problems) > 40:
                print(f"  … and {len(problems) - 40} more")
            print(
                f"  (received {received.requests['traces']} trace requests with {len(received.spans)} spans, "
                f"{received.requests['logs']} log requests with {len(received.logs)} records, "
                f"{received.requests['metrics']} metrics requests with {len(received.metrics)} metrics)"
            )
            if received.metrics:
                print("metrics received (name, unit, kind, services):")
                print(metrics_summary(received))
            return 1
        time.sleep(0.5)

    trace_id, spans = sorted(pipeline.items(), key=lambda item: min(r.span.start_time_unix_nano for r in item[1]))[0]
    services = sorted({r.service for r in spans})
    print(
        f"check-export: {len(pipeline)} traces across {', '.join(services)}; "
        f"{len(received.spans)} spans, {len(received.logs)} log records and {len(received.metrics)} metrics "
        "received over OTLP/HTTP"
    )
    print(f"trace {trace_id}:")
    print(waterfall(spans))
    print("metrics (name, unit, kind, services):")
    print(metrics_summary(received))
    return 0


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve")
    serve_parser.add_argument("--port-file", required=True)
    serve_parser.add_argument("--dump", required=True)
    verify_parser = commands.add_parser("verify")
    verify_parser.add_argument("--dump", required=True)
    verify_parser.add_argument("--orders", type=int, required=True)
    verify_parser.add_argument("--wait", type=float, default=0)
    verify_parser.add_argument("--watch-pid", type=int)
    arguments = parser.parse_args()
    if arguments.command == "serve":
        serve(arguments.port_file, arguments.dump)
    else:
        sys.exit(run_verify(arguments.dump, arguments.orders, arguments.wait, arguments.watch_pid))


if __name__ == "__main__":
    main()
