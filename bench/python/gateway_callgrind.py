#!/usr/bin/env python3
"""The gateway's user-space instructions per tool call (valgrind callgrind), in the processes of
bench/run's `gateway` section (SQLite queues and job store, the echo actor and the happy-end
sidecar reporting and exporting spans to the gateway): 50 warm-up calls, then the counters are
zeroed, N async calls are made from 4 keep-alive clients, and once /metrics counts every call's
final report the counters are dumped; prints the instructions of all the gateway's threads / N.
A count that the machine's load barely moves (the rates do), for before/after pairs.

    ASYA_BUILD_DIR=build bench/python/gateway_callgrind.py [N=300] [native]

With `native` the gateway runs without valgrind and the script prints, for the same N calls
counted until every final report arrived, the gateway's CPU time (all threads, schedstat) and
bytes written (/proc/PID/io wchar) per call: the work a call causes with all its reports and
spans, free of the row's 1 s window (which counts the reports of earlier calls the actors were
still working through).

Needs valgrind (callgrind_control); the gateway runs ~50x slower under it, so the actors keep up
and their reports coalesce more than in the row: compare builds with this script, not with the
row. The dump's path is printed; `callgrind_annotate --inclusive=yes <dump>` splits it.
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
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
loader = importlib.machinery.SourceFileLoader("bench_run", str(REPO / "bench" / "run"))
spec = importlib.util.spec_from_loader("bench_run", loader)
bench = importlib.util.module_from_spec(spec)
loader.exec_module(bench)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 400
NATIVE = len(sys.argv) > 2 and sys.argv[2] == "native"
work = pathlib.Path(tempfile.mkdtemp(prefix="gateway-callgrind-"))
procs = bench.Processes(work)
db = work / "queues.db"
port = bench.free_port()
url = "http://127.0.0.1:%d" % port
(work / "routes.yaml").write_text(
    "tools:\n  - {name: echo-async, description: Echo, route: [g-echo], timeout: 300, async: true,\n"
    "     parameters: {message: {type: string, required: true}}}\n")
out = work / "cg.out"
def metric(name):
    t = bench.http_get(url + "/metrics")
    return sum(float(l.rsplit(" ", 1)[1]) for l in t.splitlines() if l.startswith(name))
try:
    wrapper = [] if NATIVE else ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % out]
    gateway = procs.start("gateway", wrapper + [bench.binary("src/gateway/asya-gateway")], dict(bench.queue_env(db), **{
        "ASYA_CONFIG_PATH": str(work / "routes.yaml"), "ASYA_GATEWAY_HOST": "127.0.0.1",
        "ASYA_GATEWAY_PORT": str(port), "ASYA_GATEWAY_DB": str(work / "gateway.db")}), serves=True)
    echo = bench.Actor(procs, db, "g-echo", extra_env={"ASYA_GATEWAY_URL": url})
    end = procs.start("happy-end", [bench.binary("src/sidecar/asya-sidecar")], dict(
        bench.queue_env(db), **{"ASYA_ACTOR_NAME": "happy-end", "ASYA_GATEWAY_URL": url,
                                "ASYA_RESULT_STORE": "file://%s/results" % work}))
    def ready():
        try:
            return bench.http_get(url + "/readyz").strip() != ""
        except OSError:
            return False
    bench.wait_for(ready, "gateway", timeout=120)
    body = {"name": "echo-async", "arguments": {"message": "hi"}}
    def hammer(n):
        left = [n]
        lock = threading.Lock()
        def client():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                bench.http_json(c, "POST", "/tools/call", body)
        ts = [threading.Thread(target=client) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    def drained(total):
        deadline = time.time() + 120
        while time.time() < deadline:
            if metric('asya_gateway_sidecar_reports_total{kind="final"}') >= total:
                return
            time.sleep(0.5)
        raise RuntimeError("finals missing")
    hammer(50)
    drained(50)
    time.sleep(1.5)
    def cpu_ns(pid):
        total = 0
        for task in pathlib.Path("/proc/%d/task" % pid).iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError):
                pass
        return total
    def written(pid):
        for line in pathlib.Path("/proc/%d/io" % pid).read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    if NATIVE:
        req0 = metric("asya_gateway_http_requests_total")
        cpu0, w0 = cpu_ns(gateway.pid), written(gateway.pid)
    else:
        subprocess.run(["callgrind_control", "-z", str(gateway.pid)], check=True,
                       capture_output=True)
    t0 = time.time()
    hammer(N)
    elapsed = time.time() - t0
    drained(50 + N)
    time.sleep(1.5)
    req = metric("asya_gateway_http_requests_total")
    if NATIVE:
        print(json.dumps({"calls": N, "calls_per_s": round(N / elapsed, 1),
                          "gateway_cpu_us_per_call": round((cpu_ns(gateway.pid) - cpu0) / 1e3 / N, 1),
                          "gateway_written_kb_per_call": round((written(gateway.pid) - w0) / 1024 / N, 1),
                          "requests_per_call": round((req - req0) / N, 2),
                          "load": os.getloadavg()[0]}))
        sys.exit(0)
    subprocess.run(["callgrind_control", "-d", str(gateway.pid)], check=True, capture_output=True)
    files = sorted(work.glob("cg.out*"))
    dump = [f for f in files if f.name != "cg.out"] or files
    text = dump[-1].read_text(errors="replace")
    m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    ir = int(m.group(1))
    print(json.dumps({"calls": N, "calls_per_s_under_valgrind": round(N / elapsed, 1),
                      "instructions_per_call": round(ir / N), "requests_total": req,
                      "dump": str(dump[-1])}))
finally:
    procs.stop_all()
