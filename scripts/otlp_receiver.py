#!/usr/bin/env python3
"""An OTLP/HTTP trace receiver for the tests, independent of secretsync's exporter.

It decodes each `POST /v1/traces` with the official protobuf definitions (PyPI
`opentelemetry-proto`), checks what the OTLP specification requires of the request, and
appends every span as one JSON line to OUT:

    {"trace_id", "span_id", "parent_span_id" (hex, "" for a root), "name", "kind",
     "attributes": {key: value}, "status": {"code", "message"}, "resource": {key: value},
     "scope": {"name", "version"}, "start", "end" (ns)}

A request that breaks the protocol (wrong path, method or content type, undecodable body,
ids of the wrong length, an end before the start) is answered 400 and recorded as a line
{"violation": "..."} so the test fails on it. `--status N` answers every export with N
instead of 200; `--hang` accepts connections and never answers (a collector that is stuck).
Prints `listening on PORT` once it is, then serves until killed.

    otlp_receiver.py OUT [--status N] [--hang]
"""

import argparse
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


def any_value(value):
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


def attributes(key_values):
    return {kv.key: any_value(kv.value) for kv in key_values}


def spans_of(request):
    """Every span of the request as a dict, or raises ValueError on a protocol violation."""
    out = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = {"name": scope_spans.scope.name, "version": scope_spans.scope.version}
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or span.trace_id == bytes(16):
                    raise ValueError(f"span {span.name!r}: trace id of {len(span.trace_id)} bytes or all zero")
                if len(span.span_id) != 8 or span.span_id == bytes(8):
                    raise ValueError(f"span {span.name!r}: span id of {len(span.span_id)} bytes or all zero")
                if span.parent_span_id and len(span.parent_span_id) != 8:
                    raise ValueError(f"span {span.name!r}: parent span id of {len(span.parent_span_id)} bytes")
                if span.end_time_unix_nano < span.start_time_unix_nano:
                    raise ValueError(f"span {span.name!r}: ends before it starts")
                out.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": Span.SpanKind.Name(span.kind),
                        "attributes": attributes(span.attributes),
                        "events": [
                            {"name": e.name, "attributes": attributes(e.attributes)} for e in span.events
                        ],
                        "status": {"code": Status.StatusCode.Name(span.status.code), "message": span.status.message},
                        "resource": resource,
                        "scope": scope,
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                    }
                )
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args()
    lock = threading.Lock()

    def record(lines):
        with lock, open(args.out, "a", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line, sort_keys=True) + "\n")

    if args.hang:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        print(f"listening on {listener.getsockname()[1]}", flush=True)
        held = []
        while True:
            connection, _ = listener.accept()
            held.append(connection)  # never read, never answered, never closed

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def answer(self, status, body=b"", content_type="application/x-protobuf"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def violation(self, text):
            record([{"violation": text}])
            self.answer(400, text.encode(), "text/plain")

        def do_GET(self):
            self.violation(f"GET {self.path}: OTLP/HTTP exports are POSTs")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/v1/traces":
                return self.violation(f"POST {self.path}: traces go to /v1/traces")
            content_type = self.headers.get("Content-Type", "")
            if content_type != "application/x-protobuf":
                return self.violation(f"Content-Type {content_type!r}: OTLP/HTTP protobuf is application/x-protobuf")
            request = ExportTraceServiceRequest()
            try:
                request.ParseFromString(body)
                spans = spans_of(request)
            except (DecodeError, ValueError) as e:
                return self.violation(f"undecodable export: {e}")
            if args.status != 200:
                return self.answer(args.status, b"", "text/plain")
            record(spans)
            self.answer(200, ExportTraceServiceResponse().SerializeToString())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
