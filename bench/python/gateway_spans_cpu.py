#!/usr/bin/env python3
"""The gateway's cost of receiving spans alone (POST /v1/traces), per span: a gateway (SQLite job
store, no actors) gets JOBS async tool calls, then EXPORTS OTLP/HTTP JSON exports, each with 4 spans
per job for 150 of the jobs (a sidecar's hop: `process <actor>` with the attributes a sidecar sets,
a double among them, and its runtime call, publish and ack children; the actor and replica on the
resource), every span new, each job in two exports (as its actor's and its happy-end's). Prints
the gateway's CPU time (all threads, schedstat) and bytes written (/proc/PID/io wchar) per span
stored, over the exports (and 1.5 s after them, for the WAL checkpoint); with `callgrind`, its
user-space instructions per span instead (valgrind callgrind, zeroed after the jobs were created).

    ASYA_BUILD_DIR=build bench/python/gateway_spans_cpu.py [EXPORTS=40] [callgrind]

ASYA_BENCH_PERF=stat also prints the page faults and context switches per span (perf stat);
ASYA_BENCH_PERF=/path/perf.data records a perf profile of the exports there.

Unlike bench/run's gateway_calls row (whose 1 s window holds the spans of only part of its calls:
the actors lag behind the calls) this counts exactly the spans it sent, so builds compare per span.
"""
import http.client
import importlib.machinery
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
loader = importlib.machinery.SourceFileLoader("bench_run", str(REPO / "bench" / "run"))
spec = importlib.util.spec_from_loader("bench_run", loader)
bench = importlib.util.module_from_spec(spec)
loader.exec_module(bench)
EXPORTS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
CALLGRIND = len(sys.argv) > 2 and sys.argv[2] == "callgrind"
JOBS_PER_EXPORT = 150
# Each job gets its spans in two exports (as a job's actor and its happy-end export them), after
# its call span, which the gateway stored itself: three group rows per job in the end.
work = pathlib.Path(tempfile.mkdtemp(prefix="gateway-spans-"))
procs = bench.Processes(work)
port = bench.free_port()
url = "http://127.0.0.1:%d" % port
(work / "routes.yaml").write_text(
    "tools:\n  - {name: echo-async, description: Echo, route: [g-echo], timeout: 300, async: true,\n"
    "     parameters: {message: {type: string, required: true}}}\n")


def attr(key, value):
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def hop_spans(job_id, trace_id, start):
    hop = os.urandom(8).hex()
    def one(span_id, parent, name, kind, begin, end, attributes):
        return {"traceId": trace_id, "spanId": span_id, "parentSpanId": parent, "name": name,
                "kind": kind, "startTimeUnixNano": str(begin), "endTimeUnixNano": str(end),
                "attributes": attributes, "status": {"code": 1}}
    common = [attr("asya.envelope_id", job_id), attr("asya.delivery_count", 1),
              attr("asya.job_id", job_id)]
    return [
        one(hop, os.urandom(8).hex(), "process g-echo", 5, start, start + 900_000,
            common + [attr("asya.payload_bytes", 19), attr("asya.envelope_bytes", 412),
                      attr("asya.route_index", 0), attr("messaging.destination.name", "asya-g-echo"),
                      attr("asya.queue_wait_ms", 1.234)]),
        one(os.urandom(8).hex(), hop, "runtime call", 3, start + 10_000, start + 600_000, []),
        one(os.urandom(8).hex(), hop, "publish asya-happy-end", 4, start + 610_000, start + 800_000,
            [attr("asya.output_envelope_id", job_id),
             attr("messaging.destination.name", "asya-happy-end")]),
        one(os.urandom(8).hex(), hop, "ack", 1, start + 800_000, start + 880_000, []),
    ]


def export(jobs):
    spans = []
    now = time.time_ns()
    for job_id in jobs:
        spans += hop_spans(job_id, job_id.replace("-", ""), now)
    return {"resourceSpans": [{"resource": {"attributes": [
        attr("service.name", "asya-sidecar"), attr("asya.actor", "g-echo"), attr("asya.replica", 0)]},
        "scopeSpans": [{"scope": {"name": "asya"}, "spans": spans}]}]}


def cpu_ns(pid):
    total = 0
    for task in pathlib.Path("/proc/%d/task" % pid).iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            pass
    return total


def user_system_ticks(pid):
    fields = pathlib.Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def written(pid):
    for line in pathlib.Path("/proc/%d/io" % pid).read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])


try:
    out = work / "cg.out"
    wrapper = ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % out] if CALLGRIND else []
    gateway = procs.start("gateway", wrapper + [bench.binary("src/gateway/asya-gateway")], dict(
        bench.queue_env(work / "queues.db"), **{
            "ASYA_CONFIG_PATH": str(work / "routes.yaml"), "ASYA_GATEWAY_HOST": "127.0.0.1",
            "ASYA_GATEWAY_PORT": str(port), "ASYA_GATEWAY_DB": str(work / "gateway.db")}),
        serves=True)

    def ready():
        try:
            return bench.http_get(url + "/readyz").strip() != ""
        except OSError:
            return False
    bench.wait_for(ready, "gateway", timeout=120)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    jobs = []
    for _ in range(JOBS_PER_EXPORT * (EXPORTS + 2) // 2 + JOBS_PER_EXPORT):
        answer = bench.http_json(c, "POST", "/tools/call", {"name": "echo-async",
                                                            "arguments": {"message": "hi"}})
        jobs.append(answer["structuredContent"]["job_id"])
    bodies = [json.dumps(export(jobs[(i // 2) * JOBS_PER_EXPORT:][:JOBS_PER_EXPORT])).encode()
              for i in range(EXPORTS + 2)]

    def post(body):
        c.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        answer = r.read()
        if r.status != 200 or answer != b"{}":
            raise RuntimeError("export refused: %d %s" % (r.status, answer[:300]))
    for body in bodies[:2]:  # warm-up: statements prepared, pages cached
        post(body)
    time.sleep(1.5)  # the call spans' writer and the WAL checkpointer settle
    if CALLGRIND:
        subprocess.run(["callgrind_control", "-z", str(gateway.pid)], check=True, capture_output=True)
    else:
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "page-faults,context-switches",
                                 "-p", str(gateway.pid)], stderr=subprocess.PIPE, text=True) \
            if os.environ.get("ASYA_BENCH_PERF") == "stat" else None
        if os.environ.get("ASYA_BENCH_PERF", "").startswith("/"):  # a perf.data path: a profile
            perf = subprocess.Popen(["perf", "record", "-q", "-F", "2000", "-o",
                                     os.environ["ASYA_BENCH_PERF"], "-p", str(gateway.pid)],
                                    stderr=subprocess.PIPE, text=True)
        cpu0, w0, ticks0 = cpu_ns(gateway.pid), written(gateway.pid), user_system_ticks(gateway.pid)
    for body in bodies[2:]:
        post(body)
    spans = EXPORTS * JOBS_PER_EXPORT * 4
    time.sleep(1.5)  # the WAL checkpoint of what they wrote is theirs too
    if not CALLGRIND:
        ticks = [b - a for a, b in zip(ticks0, user_system_ticks(gateway.pid))]
        if perf:
            perf.send_signal(2)
            for line in perf.communicate()[1].splitlines():
                if "," in line:
                    print("perf per span:", line.split(",")[2], round(float(line.split(",")[0]) / (EXPORTS * JOBS_PER_EXPORT * 4), 3))
        print(json.dumps({"exports": EXPORTS, "spans": spans,
                          "user_share": round(ticks[0] / max(1, sum(ticks)), 2),
                          "gateway_cpu_us_per_span": round((cpu_ns(gateway.pid) - cpu0) / 1e3 / spans, 2),
                          "gateway_written_bytes_per_span": round((written(gateway.pid) - w0) / spans),
                          "load": os.getloadavg()[0]}))
        sys.exit(0)
    subprocess.run(["callgrind_control", "-d", str(gateway.pid)], check=True, capture_output=True)
    files = sorted(work.glob("cg.out*"))
    dump = [f for f in files if f.name != "cg.out"] or files
    text = dump[-1].read_text(errors="replace")
    m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    print(json.dumps({"exports": EXPORTS, "spans": spans,
                      "instructions_per_span": round(int(m.group(1)) / spans), "dump": str(dump[-1])}))
finally:
    procs.stop_all()
