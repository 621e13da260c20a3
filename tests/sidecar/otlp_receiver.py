"""An OTLP/HTTP JSON receiver for tests: a real HTTP server on a loopback port that accepts
`POST /v1/traces` (ExportTraceServiceRequest, OTLP JSON encoding) and keeps every span, with its
resource's attributes. It checks each request the way a collector would (Content-Type, JSON,
the specified field names and types) and answers 400 to one that breaks them, so a test fails
loudly on a malformed export."""
import http.server
import json
import re
import threading

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
SPAN_FIELDS = {"traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano",
               "endTimeUnixNano", "attributes", "status"}


def attribute_value(value):
    """The Python value of an OTLP AnyValue (scalars)."""
    (kind, v), = value.items()
    if kind == "intValue":
        assert isinstance(v, str), "intValue must be a decimal string: %r" % (value,)
        return int(v)
    assert kind in ("stringValue", "doubleValue", "boolValue"), value
    return v


def check_span(span):
    """Raises AssertionError when `span` breaks the OTLP JSON encoding."""
    assert set(span) <= SPAN_FIELDS, set(span) - SPAN_FIELDS
    assert HEX32.match(span["traceId"]), span
    assert HEX16.match(span["spanId"]), span
    if "parentSpanId" in span:
        assert HEX16.match(span["parentSpanId"]), span
    assert isinstance(span["kind"], int) and 0 <= span["kind"] <= 5, span
    for key in ("startTimeUnixNano", "endTimeUnixNano"):
        assert isinstance(span[key], str) and span[key].isdigit(), span
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]), span
    for a in span.get("attributes", []):
        assert set(a) == {"key", "value"}, a
        attribute_value(a["value"])
    if "status" in span:
        assert isinstance(span["status"]["code"], int), span


class Span(dict):
    """One received span: the OTLP JSON object plus `service`, `resource` (the resource attributes
    of its request, key -> value), `attrs` (its own attributes, key -> value), `start` and `end`
    (integers, nanoseconds)."""

    @property
    def attrs(self):
        return {a["key"]: attribute_value(a["value"]) for a in self.get("attributes", [])}

    @property
    def start(self):
        return int(self["startTimeUnixNano"])

    @property
    def end(self):
        return int(self["endTimeUnixNano"])


class OtlpReceiver:
    def __init__(self, status=200):
        self.spans = []
        self.requests = 0
        self.errors = []
        self.status = status
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                status = outer.status
                try:
                    assert self.path == "/v1/traces", self.path
                    assert self.headers.get("Content-Type") == "application/json", self.headers
                    doc = json.loads(body)
                    got = []
                    for rs in doc["resourceSpans"]:
                        resource = {a["key"]: attribute_value(a["value"])
                                    for a in rs["resource"]["attributes"]}
                        for ss in rs["scopeSpans"]:
                            for span in ss["spans"]:
                                check_span(span)
                                s = Span(span)
                                s["service"] = resource.get("service.name")
                                s.resource = resource
                                got.append(s)
                    with outer.lock:
                        outer.requests += 1
                        if status == 200:
                            outer.spans.extend(got)
                except (AssertionError, KeyError, ValueError) as e:
                    with outer.lock:
                        outer.errors.append("%s: %s" % (type(e).__name__, e))
                    status = 400
                reply = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            assert not self.errors, self.errors
            return list(self.spans)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
