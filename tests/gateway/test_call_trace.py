"""The gateway's call span (docs/tracing.md): every tool call is the root span "call <tool>" of
its job's trace, exported to the OTLP/HTTP receiver of ASYA_OTLP_ENDPOINT, and the envelope it
publishes names that span in its traceparent (so the first actor's hop is its child)."""
import pathlib
import re
import subprocess
import sys

from gateway_harness import ROUTES, FakeActor, Gateway, http, http_json, wait_until

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "sidecar"))
from otlp_receiver import OtlpReceiver  # noqa: E402


def test_a_tool_call_is_the_root_span_its_envelope_names(gateway_binary, queue_tool, tmp_path):
    receiver = OtlpReceiver()
    gw = Gateway(gateway_binary, tmp_path, ROUTES,
                 {"ASYA_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "50"}).start()
    try:
        status, answer, _ = http_json("POST", gw.url + "/tools/call",
                                      {"name": "pipeline", "arguments": {"text": "t"}})
        assert status == 200, answer
        job_id = answer["structuredContent"]["job_id"]
        envelope = FakeActor(queue_tool, gw).receive("first")
        m = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", envelope["headers"]["traceparent"])
        assert m, envelope["headers"]
        # The trace is the job id's hex: the job store finds a span's job by its key (schema 8).
        assert m.group(1) == job_id.replace("-", "")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", envelope["headers"]["asya-sent-at"])
        spans = wait_until(lambda: receiver.snapshot() or None, what="the call span at the receiver")
        span, = spans
        assert span["name"] == "call pipeline" and span["kind"] == 2
        assert span["traceId"] == m.group(1) and span["spanId"] == m.group(2)
        assert "parentSpanId" not in span
        assert span["service"] == "asya-gateway"
        assert span.attrs["asya.job_id"] == job_id and span.attrs["asya.tool"] == "pipeline"
        assert span.attrs["messaging.destination.name"] == "asya-first"
        # The exporter counts a span as exported once the receiver's answer came back, which can be
        # just after the receiver holds it.
        exported = 'asya_trace_spans_exported_total{destination="collector"} 1'
        text = wait_until(lambda: (lambda t: t if exported in t.splitlines() else None)(
            http("GET", gw.url + "/metrics")[2].decode()), what="the exported span counted")
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        gw.stop()
        receiver.close()
