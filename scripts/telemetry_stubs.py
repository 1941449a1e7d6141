#!/usr/bin/env python3
"""Loopback test peers for scripts/check-telemetry.sh.

  telemetry_stubs.py sink PORT OUT.jsonl
      An OTLP/HTTP trace receiver (POST /v1/traces, protobuf, optionally gzip): decodes
      each ExportTraceServiceRequest with the `opentelemetry-proto` package and appends one
      JSON line per span: {"name", "trace_id", "span_id", "parent_span_id", "service"}.
      The receiver under test (rotel) forwards what it got from orderly here.

  telemetry_stubs.py gateway PORT OUT.jsonl
      A payment gateway speaking the protocol of src/payments/http.rs. Card 4000000000000002
      is declined, any other succeeds. Appends {"method", "path", "traceparent"} per request.

Both bind 127.0.0.1 only and exit on SIGTERM.
"""

import gzip
import json
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def append(path, record):
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
        return data

    def reply(self, status, payload=None, content_type="application/json"):
        data = b"" if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def sink(port, out):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    class Sink(Quiet):
        def do_POST(self):
            req = ExportTraceServiceRequest()
            req.ParseFromString(self.body())
            for rs in req.resource_spans:
                service = next(
                    (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), None
                )
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        append(out, {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "service": service,
                        })
            self.reply(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()


def gateway(port, out):
    charges = {}  # idempotency key -> charge

    class Gateway(Quiet):
        def record(self):
            append(out, {"method": self.command, "path": self.path, "traceparent": self.headers.get("traceparent")})

        def do_POST(self):
            self.record()
            path = urlparse(self.path).path.rstrip("/")
            body = self.body()
            if path.endswith("/charges"):
                key = self.headers.get("Idempotency-Key")
                req = json.loads(body or b"{}")
                if not key or "card_number" not in req:
                    return self.reply(422, {"error": "idempotency key and card_number required"})
                if key not in charges:
                    declined = req["card_number"] == "4000000000000002"
                    charges[key] = {"id": "ch_" + uuid.uuid4().hex, "status": "declined" if declined else "succeeded"}
                    if declined:
                        charges[key]["decline_code"] = "card_declined"
                return self.reply(200, charges[key])
            for action, status in (("/void", "voided"), ("/refund", "refunded")):
                if path.endswith(action):
                    cid = path[: -len(action)].rsplit("/", 1)[-1]
                    for c in charges.values():
                        if c["id"] == cid:
                            c["status"] = status
                            return self.reply(200, c)
                    return self.reply(404, {"error": "no such charge"})
            self.reply(404, {"error": "no such route"})

        def do_GET(self):
            self.record()
            key = (parse_qs(urlparse(self.path).query).get("idempotency_key") or [None])[0]
            if key in charges:
                return self.reply(200, charges[key])
            self.reply(404, {"error": "no such charge"})

    ThreadingHTTPServer(("127.0.0.1", port), Gateway).serve_forever()


if __name__ == "__main__":
    mode, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    {"sink": sink, "gateway": gateway}[mode](port, out)
