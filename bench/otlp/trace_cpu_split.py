#!/usr/bin/env python3
"""Where the CPU of a traced message goes in the whole `trace` section's system: the CPU per
message of every process and thread of the traced pipeline and of the untraced one, split by
process (sidecars, runtimes, the driver, the OTLP receiver) and by sidecar thread (the worker
threads, the export thread `asya-otlp`), with the receiver's requests and bytes per message.

    bench/otlp/trace_cpu_split.py [--bursts N] [--segment N] [--json FILE]

The same set-up as bench/run's section trace (the same functions: bench/run is loaded as a
module): both pipelines up, a warm-up of 100 messages each, then bursts of --segment messages
taking turns, traced and untraced. The sidecars', runtimes' and receiver's CPU is read over the
whole window (each belongs to one side), the driver's per burst (getrusage of the children).
Thread CPU from /proc/PID/task/TID/schedstat (ns), context switches from its status. ASYA_BUILD_DIR
selects the build, as for bench/run."""
import argparse
import http.client
import importlib.machinery
import importlib.util
import json
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
loader = importlib.machinery.SourceFileLoader("bench_run", str(HERE.parent / "run"))
spec = importlib.util.spec_from_loader("bench_run", loader)
bench = importlib.util.module_from_spec(spec)
loader.exec_module(bench)


def threads(pid):
    """{tid: (comm, cpu_ns, context switches, minor page faults)} of a live process."""
    out = {}
    for task in pathlib.Path("/proc/%d/task" % pid).iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            cpu = int((task / "schedstat").read_text().split()[0])
            switches = 0
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
            faults = int((task / "stat").read_text().rsplit(")", 1)[1].split()[7])
            out[int(task.name)] = (comm, cpu, switches, faults)
        except (OSError, ValueError, IndexError):
            pass
    return out


def children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", type=int, default=5, help="bursts per side")
    parser.add_argument("--segment", type=int, default=500, help="messages per burst")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--perf", help="perf record (cpu-clock) the traced side's sidecars and "
                        "the receiver during the bursts into this file")
    parser.add_argument("--perf-options", default="-e cpu-clock -F 2999",
                        help="perf record's options (e.g. '-e page-faults --call-graph dwarf')")
    args = parser.parse_args()
    queue = bench.binary("bench/queue/bench_queue")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="trace-split-"))
    sink = subprocess.Popen([str(bench.binary("bench/otlp/bench_otlp_sink"))],
                            stdout=subprocess.PIPE, text=True)
    procs = bench.Processes(workdir)
    try:
        port = int(sink.stdout.readline())
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def sink_stats():
            connection.request("GET", "/stats")
            return json.loads(connection.getresponse().read())

        sides = ("on", "off")
        actors, dbs = {}, {}
        for who in sides:
            dbs[who] = workdir / ("split-%s.db" % who)
            extra = {"ASYA_OTLP_ENDPOINT": "http://127.0.0.1:%d" % port} if who == "on" else {}
            actors[who] = [bench.Actor(procs, dbs[who], name, metrics=True, extra_env=extra,
                                       wait=False) for name in ("t-one", "t-two", "t-three")]
        for who in sides:
            for actor in actors[who]:
                actor.wait_ready()

        def burst(who, count):
            return bench.driver(queue, "pipeline", "--in", "asya-t-one", "--out",
                                "asya-happy-end", "--actors", "t-one,t-two,t-three", "--rate",
                                100, "--seconds", 0, "--count", count, env=bench.queue_env(dbs[who]),
                                timeout=240)

        for who in sides:
            burst(who, args.warmup)
        time.sleep(1.5)  # the warm-up's partial batches out

        def snapshot():
            shot = {}
            for who in sides:
                for actor in actors[who]:
                    shot[(who, "sidecar", actor.name)] = threads(actor.sidecar.pid)
                    shot[(who, "runtime", actor.name)] = threads(actor.runtime.pid)
            return shot

        perf = None
        if args.perf:
            pids = [a.sidecar.pid for a in actors["on"]] + [sink.pid]
            perf = subprocess.Popen(["perf", "record", "-q"] + args.perf_options.split() +
                                    ["-o", args.perf, "-p", ",".join(map(str, pids))])
            time.sleep(0.5)
        def user_system(pid):  # clock ticks
            fields = pathlib.Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
            return int(fields[11]), int(fields[12])
        sink_ticks_before = user_system(sink.pid)
        before, sink_before = snapshot(), sink_stats()
        driver_cpu = {who: 0.0 for who in sides}
        rates = {who: [] for who in sides}
        started = time.monotonic()
        for _ in range(args.bursts):
            for who in sides:
                cpu0 = children_cpu_s()
                rates[who].append(burst(who, args.segment)["msgs_per_s"])
                driver_cpu[who] += children_cpu_s() - cpu0
        messages = args.bursts * (args.segment + 10)
        expected = sink_before["spans"] + 3 * 4 * messages
        deadline = time.monotonic() + 20
        while sink_stats()["spans"] < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        after, sink_after = snapshot(), sink_stats()
        sink_ticks = [a - b for a, b in zip(user_system(sink.pid), sink_ticks_before)]
        window = time.monotonic() - started
        if perf:
            perf.send_signal(2)
            perf.wait(30)
    finally:
        procs.stop_all()
        sink.terminate()
        sink.wait(10)
        sink.stdout.close()

    per_msg = lambda ns: ns / 1e3 / messages  # noqa: E731  (ns in all -> µs per message)
    figures = {}
    for who in sides:
        parts = {}
        for key, threads_after in after.items():
            if key[0] != who:
                continue
            threads_before = before[key]
            for tid, (comm, cpu, switches, faults) in threads_after.items():
                cpu0, switches0, faults0 = threads_before.get(tid, (comm, 0, 0, 0))[1:]
                part = "%s %s" % (key[1], comm)
                entry = parts.setdefault(part, [0, 0, 0])
                entry[0] += cpu - cpu0
                entry[1] += switches - switches0
                entry[2] += faults - faults0
        figures[who] = {
            "msgs_per_s_median": statistics.median(rates[who]),
            "bursts": [round(r) for r in rates[who]],
            "cpu_us_per_msg": {part: round(per_msg(v[0]), 1) for part, v in sorted(parts.items())},
            "switches_per_msg": {part: round(v[1] / messages, 2)
                                 for part, v in sorted(parts.items())},
            "page_faults_per_msg": {part: round(v[2] / messages, 2)
                                    for part, v in sorted(parts.items())},
            "driver_us_per_msg": round(driver_cpu[who] * 1e6 / messages, 1)}
    figures["on"]["receiver_us_per_msg"] = round(
        (sink_after["cpu_us"] - sink_before["cpu_us"]) / messages, 1)
    figures["on"]["receiver_requests_per_msg"] = round(
        (sink_after["requests"] - sink_before["requests"]) / messages, 4)
    figures["on"]["receiver_bytes_per_msg"] = round(
        (sink_after["bytes"] - sink_before["bytes"]) / messages)
    figures["on"]["receiver_user_system_ticks"] = sink_ticks
    figures["on"]["receiver_spans"] = sink_after["spans"] - sink_before["spans"]
    figures["window_s"] = round(window, 2)
    figures["messages_per_side"] = messages
    figures["load"] = open("/proc/loadavg").read().split()[:3]
    for who in sides:
        total = (sum(figures[who]["cpu_us_per_msg"].values()) + figures[who]["driver_us_per_msg"]
                 + figures[who].get("receiver_us_per_msg", 0))
        figures[who]["total_us_per_msg"] = round(total, 1)
    print(json.dumps(figures, indent=1))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    sys.exit(main())
