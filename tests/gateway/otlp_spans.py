"""OTLP/HTTP JSON trace exports as the OpenTelemetry specification encodes them (hex ids, int64 as
decimal strings), for tests that post spans to the gateway's /v1/traces themselves."""
import os
import time


def new_trace_id():
    return os.urandom(16).hex()


def new_span_id():
    return os.urandom(8).hex()


def attribute(key, value):
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def span(trace_id, span_id, parent_id, name, start_ns, end_ns, attributes, kind=5, error=None):
    body = {"traceId": trace_id, "spanId": span_id, "parentSpanId": parent_id or "", "name": name,
            "kind": kind, "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(end_ns),
            "attributes": [attribute(k, v) for k, v in attributes.items()],
            "status": {"code": 2, "message": error} if error else {"code": 1}}
    return body


def export_request(spans, service="asya-sidecar"):
    return {"resourceSpans": [{"resource": {"attributes": [attribute("service.name", service)]},
                               "scopeSpans": [{"scope": {"name": "asya"}, "spans": spans}]}]}


def gateway_call(gateway, job_id):
    """The gateway's own span of the tool call that started `job_id` (docs/tracing.md: written in
    the background, and GET /envelopes/{id}/trace writes what is pending first, so a call already
    answered shows its span): (trace_id, span_id, start_ns)."""
    from gateway_harness import http_json
    status, trace, _ = http_json("GET", f"{gateway.url}/envelopes/{job_id}/trace", headers=gateway.client_headers())
    assert status == 200, trace
    call, = [s for s in trace["spans"] if s["name"].startswith("call ")]
    return call["trace_id"], call["span_id"], int(call["start_time_unix_nano"])


def pipeline_spans(job_id, actors, trace_id=None, start_ns=None, queue_wait_ms=5, handler_ms=20,
                   publish_ms=2, fan_out=None, call=None):
    """One process span per hop of `actors` (each with a runtime call and a publish child span),
    one after the other, as sidecars record them; `fan_out` = (actor index, output count) makes
    that actor's outputs ("<job>", "<job>-1", ...) go through the later actors in parallel.
    `call` (gateway_call()): the gateway's call span the trace starts with, as a real one does."""
    trace_id = trace_id or new_trace_id()
    now = start_ns or time.time_ns() - 10_000_000_000
    spans = []
    parent = new_span_id()  # the gateway's call span (not posted)
    if call:
        trace_id, parent, now = call

    def hop(envelope_id, actor, index, begin, parent_id):
        hop_id = new_span_id()
        queue_ns = queue_wait_ms * 1_000_000
        handler_ns = handler_ms * 1_000_000
        publish_ns = publish_ms * 1_000_000
        start = begin + queue_ns
        common = {"asya.actor": actor, "asya.replica": 0, "asya.envelope_id": envelope_id,
                  "asya.job_id": job_id, "asya.delivery_count": 1}
        spans.append(span(trace_id, hop_id, parent_id, f"process {actor}", start,
                          start + handler_ns + publish_ns,
                          dict(common, **{"asya.queue_wait_ms": float(queue_wait_ms),
                                          "asya.payload_bytes": 42, "asya.outcome": "routed"})))
        # Children as the sidecars record them: no Asya attributes but the published envelope's id;
        # the gateway places them by their trace and parent.
        spans.append(span(trace_id, new_span_id(), hop_id, "runtime call", start, start + handler_ns, {},
                          kind=3))
        spans.append(span(trace_id, new_span_id(), hop_id, "publish asya-next", start + handler_ns,
                          start + handler_ns + publish_ns, {"messaging.destination.name": "asya-next"}, kind=4))
        return hop_id, start + handler_ns + publish_ns

    end = now
    for index, actor in enumerate(actors):
        parent, end = hop(job_id, actor, index, end, parent)
        if fan_out and fan_out[0] == index:
            for branch in range(fan_out[1]):
                envelope_id = job_id if branch == 0 else f"{job_id}-{branch}"
                b_parent, b_end = parent, end
                for later, later_actor in enumerate(actors[index + 1:], start=index + 1):
                    b_parent, b_end = hop(envelope_id, later_actor, later, b_end, b_parent)
            return trace_id, spans
    return trace_id, spans
