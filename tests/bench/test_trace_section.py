"""The `trace` section's OTLP/HTTP receiver (bench/otlp/otlp_sink.cpp, a real process on a real
socket) and the section itself end to end (`bench/run --only trace --quick`, 3 rounds): the
receiver reads whole requests on kept-alive connections, answers OTLP success and counts the spans
it got, and the row records that every span of the burst arrived and what the CPU went to."""
import http.client
import json
import os
import pathlib
import re
import signal
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run"


def export_request(spans):
    """An ExportTraceServiceRequest in OTLP JSON, as Asya's encoder writes it."""
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "t"}}]},
        "scopeSpans": [{"scope": {"name": "asya"}, "spans": [
            {"traceId": "%032x" % (i + 1), "spanId": "%016x" % (i + 1), "name": "s%d" % i,
             "kind": 5, "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": []}
            for i in range(spans)]}]}]}, separators=(",", ":")).encode()


def test_the_receiver_answers_otlp_success_on_one_connection_and_counts_spans(build_path):
    sink = subprocess.Popen([str(build_path / "bench/otlp/bench_otlp_sink")],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(sink.stdout.readline())
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        sizes = (3, 600)  # the second body (~90 KB) arrives in several reads
        for n in sizes:
            connection.request("POST", "/v1/traces", body=export_request(n),
                               headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            assert answer.status == 200
            assert json.loads(answer.read()) == {"partialSuccess": {}}
        connection.request("GET", "/stats")  # the same kept-alive connection
        stats = json.loads(connection.getresponse().read())
        assert (stats["requests"], stats["spans"]) == (2, sum(sizes))
        assert stats["bytes"] == sum(len(export_request(n)) for n in sizes)
        assert stats["cpu_us"] >= 0
        connection.request("POST", "/v1/metrics", body=b"{}")
        missing = connection.getresponse()
        assert missing.status == 404
        missing.read()
        connection.close()
    finally:
        sink.send_signal(signal.SIGTERM)
        out, _ = sink.communicate(timeout=10)
    assert sink.returncode == 0
    final = json.loads(out.strip().splitlines()[-1])
    assert (final["requests"], final["spans"]) == (2, 603)


def test_the_trace_section_gets_every_span_of_the_burst_and_records_the_cpu(tmp_path, build_path):
    out = tmp_path / "trace.json"
    done = subprocess.run([sys.executable, str(RUN), "--only", "trace", "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, ASYA_BENCH_ROUNDS="3",
                                   ASYA_BUILD_DIR=str(build_path)))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["id"]: r for r in json.loads(out.read_text())["rows"]}
    row = rows["trace_overhead"]
    assert row["asya"] and row["baseline"], row["note"]
    assert re.search(r"it got \d+ of the \d+ spans", row["note"]), row["note"]
    assert row["note"].startswith("the median of 3 bursts of 500 messages per side"), row["note"]
    assert len(row["rounds"]) == 3, row
    cpu_rounds = row["sidecar_cpu_us_per_msg_rounds"]
    assert len(cpu_rounds) == 3, cpu_rounds
    for cpu in cpu_rounds:
        assert cpu["on"] > 0 and cpu["off"] > 0 and cpu["receiver"] > 0, cpu
        assert 0 < cpu["exporter_thread"] < cpu["on"], cpu
        # --quick: a warm-up of 100 and 3 bursts of 500 messages (each run + the driver's 10),
        # 4 spans per hop, 3 hops: each arrived or was counted as dropped (none when the
        # receiver keeps up, as it does on a quiet machine).
        assert cpu["spans_expected"] == 3 * 4 * (110 + 3 * 510), cpu
        assert cpu["spans_received"] + cpu["spans_dropped"] == cpu["spans_expected"], cpu
        assert cpu["spans_received"] >= cpu["spans_expected"] // 2, cpu
        assert [len(cpu["bursts_msgs_per_s"][who]) for who in ("on", "off")] == [3, 3], cpu
    assert rows["trace_sidecar_rss_idle"]["asya"] > 0


def test_the_cpu_split_counts_every_process_of_both_pipelines_and_every_span(tmp_path,
                                                                              build_path):
    """bench/otlp/trace_cpu_split.py: the section's set-up, CPU per message by process and thread."""
    out = tmp_path / "split.json"
    done = subprocess.run([sys.executable, str(REPO / "bench/otlp/trace_cpu_split.py"), "--bursts",
                           "2", "--segment", "50", "--warmup", "20", "--json", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, ASYA_BUILD_DIR=str(build_path)))
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    messages = 2 * (50 + 10)  # each burst's driver sends 10 warm-up messages first
    assert figures["messages_per_side"] == messages
    on, off = figures["on"], figures["off"]
    # Only the traced sidecars have an export thread; both sides have sidecars and runtimes.
    assert on["cpu_us_per_msg"]["sidecar asya-otlp"] > 0, on
    assert "sidecar asya-otlp" not in off["cpu_us_per_msg"], off
    for side in (on, off):
        assert side["cpu_us_per_msg"]["sidecar asya-sidecar"] > 0, side
        assert side["cpu_us_per_msg"]["runtime bench_noop_runt"] > 0, side
        assert side["driver_us_per_msg"] > 0 and len(side["bursts"]) == 2, side
    # Every span of the window reached the receiver: 4 per hop, 3 hops.
    assert on["receiver_spans"] == 3 * 4 * messages, on
    assert on["receiver_requests_per_msg"] > 0 and on["receiver_us_per_msg"] > 0, on
