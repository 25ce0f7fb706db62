#!/usr/bin/env python3
"""An OTLP/HTTP trace receiver that counts what it receives, for Benchmarks/otel-cost.

    sink.py --port-file FILE
        Listens on 127.0.0.1 (a free port, written to FILE once listening). POST /v1/traces (protobuf, gzip or not):
        decodes the request, counts its spans, answers as a collector does. GET /count: the spans received so far.
        A request it cannot decode is answered 400 and counted in GET /errors.
"""

import argparse
import gzip
import os
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

RESPONSE = ExportTraceServiceResponse().SerializeToString()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    arguments = parser.parse_args()
    lock = threading.Lock()
    totals = {"spans": 0, "requests": 0, "errors": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the exporter expects

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.split("?")[0] != "/v1/traces":
                return self.answer(404, b"only /v1/traces", "text/plain")
            try:
                encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
            except Exception as error:  # counted, so a run that lost spans this way says so
                with lock:
                    totals["errors"] += 1
                return self.answer(400, str(error).encode(), "text/plain")
            spans = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
            with lock:
                totals["spans"] += spans
                totals["requests"] += 1
            self.answer(200, RESPONSE, "application/x-protobuf")

        def do_GET(self):
            name = self.path.strip("/")
            if name not in totals:
                return self.answer(404, b"GET /spans, /requests or /errors", "text/plain")
            with lock:
                value = totals[name]
            self.answer(200, str(value).encode(), "text/plain")

        def answer(self, status, body, content_type):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(arguments.port_file + ".tmp", "w") as file:
        file.write(str(server.server_address[1]))
    os.replace(arguments.port_file + ".tmp", arguments.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
