#!/usr/bin/env python3
"""Where the CPU of a gateway tool call goes: the processes of bench/run's `gateway` section (the
gateway, the echo actor's sidecar and runtime, the happy-end sidecar; SQLite queues and job store)
with 4 Python keep-alive clients calling the async echo tool, and each process's CPU time per call
(all its threads, /proc/PID/task/*/schedstat), the client's (process_time), and the gateway's
bytes written (/proc/PID/io wchar: its WAL frames, checkpoints, sockets), write calls and context
switches per call. With --perf FILE the gateway is also sampled (`perf record --call-graph dwarf`).

    ASYA_BUILD_DIR=build bench/python/gateway_cpu_split.py [--seconds 3] [--windows 2] [--alone]
        [--healthz] [--perf /tmp/gw.perf]

--alone: the gateway without the actors (a call's own cost: job, envelope, call span);
--healthz: GET /healthz instead of the call (the HTTP floor). One JSON line per window. Each
window is followed by 1 s (0.3 s alone) in which the actors drain what the calls queued, counted
in their figures. Used for the before/after pairs in docs/performance.md.
"""
import argparse
import http.client
import importlib.machinery
import importlib.util
import json
import os
import pathlib
import subprocess
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent.parent


def load_bench_run():
    loader = importlib.machinery.SourceFileLoader("bench_run", str(REPO / "bench" / "run"))
    spec = importlib.util.spec_from_loader("bench_run", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def written(pid):
    """(bytes written through write calls, write calls) of a process: /proc/PID/io."""
    fields = dict(line.split(": ") for line in
                  pathlib.Path("/proc/%d/io" % pid).read_text().splitlines() if line)
    return int(fields["wchar"]), int(fields["syscw"])


def context_switches(pid):
    total = 0
    for task in pathlib.Path("/proc/%d/task" % pid).iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--windows", type=int, default=1)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--alone", action="store_true")
    parser.add_argument("--healthz", action="store_true")
    parser.add_argument("--perf")
    args = parser.parse_args()
    bench = load_bench_run()
    work = pathlib.Path(tempfile.mkdtemp(prefix="gateway-cpu-split-"))
    procs = bench.Processes(work)
    db = work / "queues.db"
    port = bench.free_port()
    url = "http://127.0.0.1:%d" % port
    (work / "routes.yaml").write_text(
        "tools:\n"
        "  - {name: echo-async, description: Echo, route: [g-echo], timeout: 300, async: true,\n"
        "     parameters: {message: {type: string, required: true}}}\n")
    try:
        gateway = procs.start("gateway", [bench.binary("src/gateway/asya-gateway")], dict(
            bench.queue_env(db), **{
                "ASYA_CONFIG_PATH": str(work / "routes.yaml"), "ASYA_GATEWAY_HOST": "127.0.0.1",
                "ASYA_GATEWAY_PORT": str(port), "ASYA_GATEWAY_DB": str(work / "gateway.db")}),
            serves=True)
        pids = {"gateway": gateway.pid}
        if not args.alone:
            echo = bench.Actor(procs, db, "g-echo", extra_env={"ASYA_GATEWAY_URL": url})
            end = procs.start("happy-end", [bench.binary("src/sidecar/asya-sidecar")], dict(
                bench.queue_env(db), **{"ASYA_ACTOR_NAME": "happy-end", "ASYA_GATEWAY_URL": url,
                                        "ASYA_RESULT_STORE": "file://%s/results" % work}))
            pids.update({"echo_sidecar": echo.sidecar.pid, "echo_runtime": echo.runtime.pid,
                         "end_sidecar": end.pid})

        def ready():
            try:
                return bench.http_get(url + "/readyz").strip() != ""
            except OSError:
                return False
        bench.wait_for(ready, "asya-gateway to be ready", timeout=30)
        body = None if args.healthz else {"name": "echo-async", "arguments": {"message": "hi"}}
        path = "/healthz" if args.healthz else "/tools/call"

        def hammer(seconds):
            counts = []
            stop_at = time.monotonic() + seconds

            def client():
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                n = 0
                while time.monotonic() < stop_at:
                    bench.http_json(connection, "POST" if body else "GET", path, body)
                    n += 1
                counts.append(n)
            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return sum(counts)

        hammer(0.5)  # warm-up
        time.sleep(1.0)
        for window in range(args.windows):
            perf = None
            if args.perf:
                perf = subprocess.Popen(
                    ["perf", "record", "--call-graph", "dwarf,16384", "-F", "999", "-p",
                     str(gateway.pid), "-o", "%s.%d" % (args.perf, window)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            switches_before = context_switches(gateway.pid)
            written_before = written(gateway.pid)
            cpu_before = {name: bench.thread_cpu_ns(pid) for name, pid in pids.items()}
            client_before = time.process_time()
            load = os.getloadavg()[0]
            calls = hammer(args.seconds)
            client_after = time.process_time()
            time.sleep(0.3 if args.alone else 1.0)
            cpu_after = {name: bench.thread_cpu_ns(pid) for name, pid in pids.items()}
            if perf:
                perf.send_signal(2)
                perf.wait()
            per_call = {name: round((cpu_after[name] - cpu_before[name]) / 1e3 / calls, 1)
                        for name in pids}
            per_call["client"] = round((client_after - client_before) * 1e6 / calls, 1)
            written_after = written(gateway.pid)
            print(json.dumps({
                "per_s": round(calls / args.seconds), "requests": calls, "load": round(load, 2),
                "cpu_us_per_request": per_call,
                "gateway_written_kb_per_request":
                    round((written_after[0] - written_before[0]) / 1024 / calls, 1),
                "gateway_write_calls_per_request":
                    round((written_after[1] - written_before[1]) / calls, 1),
                "gateway_context_switches_per_request":
                    round((context_switches(gateway.pid) - switches_before) / calls, 1)}),
                flush=True)
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
