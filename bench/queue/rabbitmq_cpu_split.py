#!/usr/bin/env python3
"""Where the CPU of a RabbitMQ hop goes: the sidecar's threads, the broker, the runtime, per
message, with context switches, and optionally perf record or strace -c of the sidecar.

    bench/queue/rabbitmq_cpu_split.py c8   [--count N] [--runs R] [--perf FILE] [--strace FILE]
    bench/queue/rabbitmq_cpu_split.py rate [--seconds S] [--runs R] [--perf FILE] [--strace FILE]
    bench/queue/rabbitmq_cpu_split.py raw  [--count N] [--runs R]
    ... [--reductions] [--strace-broker FILE]

c8: bench/run's rabbitmq_hop_c8 set-up (asya-sidecar at ASYA_CONCURRENCY=8, prefetch 64, quorum
queues, C++ no-op runtime), one `bench_queue hop` of N messages per run; the broker's CPU is
split into the fill (sidecar stopped) and the hop (from the sidecar's SIGCONT to the end). raw:
the baseline (`bench_queue raw-rabbitmq --mode window`) with the broker's CPU over its whole
run (fill included) and the driver's own. rate: bench/run's CpuRig (the
sidecar_cpu_per_msg_rabbitmq row: 100 async tool calls/s through asya-gateway) for S seconds.

The functions are bench/run's (loaded as a module); ASYA_BUILD_DIR selects the build. Thread CPU
from /proc/PID/task/TID/schedstat, switches from its status; the broker's switches per message
(all its threads) in `broker_switches` (c8 and raw: fill and hop together). --reductions: the
broker's Erlang reductions per message by kind of process (rabbit_channel, rabbit_reader, the
queues by name, ra_log_wal, ...) and in all (TOTAL, from erlang:statistics(exact_reductions):
processes that ended meanwhile, such as a closed connection's, count there only), taken with
rabbitmqctl eval around the driver (fill and hop): Erlang's own count of its work, which the
load does not change. --strace-broker: strace -c -f of the broker in the last run (c8, raw).
Prints one JSON line per run.
--strace-full writes every system call with its time (strace -f -tt) instead of the counts."""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = pathlib.Path(__file__).resolve().parent
loader = importlib.machinery.SourceFileLoader("bench_run", str(HERE.parent / "run"))
spec = importlib.util.spec_from_loader("bench_run", loader)
bench = importlib.util.module_from_spec(spec)
loader.exec_module(bench)


FULL_STRACE = False  # --strace-full: every call with its time, not the counts


def threads(pid):
    """{tid: (comm, cpu_ns, voluntary switches, involuntary switches)} of a live process."""
    out = {}
    for task in pathlib.Path("/proc/%d/task" % pid).iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            cpu = int((task / "schedstat").read_text().split()[0])
            vol = invol = 0
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    vol = int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    invol = int(line.split()[1])
            out[int(task.name)] = (comm, cpu, vol, invol)
        except (OSError, ValueError, IndexError):
            pass
    return out


def split(before, after, count):
    """Per thread ("name/tid", busiest first): µs of CPU and voluntary and involuntary switches
    per message between two threads() readings, and their TOTAL."""
    rows = []
    for tid, (comm, cpu, vol, invol) in after.items():
        b = before.get(tid, (comm, 0, 0, 0))
        rows.append(("%s/%d" % (comm, tid), (cpu - b[1]) / 1e3 / count, (vol - b[2]) / count,
                     (invol - b[3]) / count))
    rows.sort(key=lambda r: -r[1])
    out = {name: {"us": round(us, 1), "vol": round(vol, 2), "invol": round(invol, 2)}
           for name, us, vol, invol in rows if us >= 0.5 or vol >= 0.05}
    out["TOTAL"] = {"us": round(sum(r[1] for r in rows), 1),
                    "vol": round(sum(r[2] for r in rows), 2),
                    "invol": round(sum(r[3] for r in rows), 2)}
    return out


def process_cpu_ns(pid):
    return sum(t[1] for t in threads(pid).values())


def broker_pid(broker):
    return int((broker.broker.dir / "rabbitmq.pid").read_text().split()[0])


class Profiler:
    """perf record or strace -c of `pid` while it runs (stopped by stop()); `broker`: perf record
    of the broker too (its Erlang JIT writes perf maps with --broker-perf)."""

    def __init__(self, pid, perf=None, strace=None, broker=None):
        self.process = None
        self.broker = None
        if broker:
            self.broker = subprocess.Popen(
                ["perf", "record", "-g", "-F", "999", "-p", str(broker[0]), "-o", broker[1]],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if perf:
            self.process = subprocess.Popen(
                ["perf", "record", "--call-graph", "dwarf,16384", "-F", "1999", "-p", str(pid),
                 "-o", perf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif strace:
            command = ["strace", "-f", "-tt", "-yy"] if FULL_STRACE else ["strace", "-c", "-f"]
            self.process = subprocess.Popen(command + ["-p", str(pid), "-o", strace],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.process or self.broker:
            time.sleep(0.5)

    def stop(self):
        for process in (self.process, self.broker):
            if process:
                process.send_signal(2)
                process.wait(timeout=60)


# Every process's reductions and a label (registered name, rabbit's process_name, initial call,
# or current function), one per line into the file %s.
REDUCTIONS_EXPR = (
    'Label = fun(P) -> case erlang:process_info(P, registered_name) of '
    '{registered_name, Reg} -> atom_to_list(Reg); '
    '_ -> D = case erlang:process_info(P, dictionary) of {dictionary, L} -> L; _ -> [] end, '
    'case lists:keyfind(process_name, 1, D) of '
    '{process_name, T} when is_tuple(T) -> atom_to_list(element(1, T)); '
    '{process_name, A} when is_atom(A) -> atom_to_list(A); '
    '_ -> case lists:keyfind(\'$initial_call\', 1, D) of '
    '{_, {M, F, Ar}} -> lists:flatten(io_lib:format("~p:~p/~p", [M, F, Ar])); '
    '_ -> case erlang:process_info(P, current_function) of '
    '{current_function, {M, F, Ar}} -> lists:flatten(io_lib:format("cur ~p:~p/~p", [M, F, Ar])); '
    '_ -> "?" end end end end end, '
    'file:write_file("%s", [io_lib:format("~p ~p ~s~n", [P, R, Label(P)]) || '
    'P <- erlang:processes(), {reductions, R} <- [erlang:process_info(P, reductions)]]).')


def broker_reductions(broker, path, after):
    """{pid: (reductions, label)} of the broker's processes and ("TOTAL": the VM's count); the
    total is read outside the (costly) listing: after it before, before it after."""
    def total():
        out = broker.broker.ctl("eval", "element(1, erlang:statistics(exact_reductions)).")
        return int(out.stdout.strip())
    if after:
        t = total()
    broker.broker.ctl("eval", REDUCTIONS_EXPR % path)
    if not after:
        t = total()
    out = {"TOTAL": (t, "TOTAL")}
    for line in pathlib.Path(path).read_text().splitlines():
        pid, reds, name = line.split(" ", 2)
        out[pid] = (int(reds), name)
    return out


def reductions_split(before, after, count):
    """Reductions per message by label (busiest 12 and TOTAL), the listing's own eval left out."""
    by = {}
    for pid, (reds, name) in after.items():
        d = reds - before.get(pid, (0, name))[0]
        if d > 0 and not name.startswith("cur erl_eval"):
            by[name] = by.get(name, 0) + d
    top = sorted(by.items(), key=lambda kv: -kv[1])[:13]
    return {k: round(v / count) for k, v in top}


def tcp_segments(port):
    """{client port: {"in"/"out": data segments, "bytes_in"/"bytes_out": bytes}} of every
    established connection to the broker's AMQP `port`, as the broker's side counts them (ss -ti:
    data_segs_in / data_segs_out, bytes_received / bytes_acked). No tracing: the counters are the
    kernel's."""
    out = {}
    done = subprocess.run(["ss", "-tinH", "state", "established", "( sport = :%d )" % port],
                          capture_output=True, text=True)
    lines = done.stdout.splitlines()
    for head, info in zip(lines[0::2], lines[1::2]):
        peer = head.split()[-1].rsplit(":", 1)[1]
        fields = dict(f.split(":", 1) for f in info.split() if ":" in f)
        out[peer] = {"in": int(fields.get("data_segs_in", 0)),
                     "out": int(fields.get("data_segs_out", 0)),
                     "bytes_in": int(fields.get("bytes_received", 0)),
                     "bytes_out": int(fields.get("bytes_acked", 0))}
    return out


def segments_per_msg(before, after, count):
    """Per connection alive at the end (busiest first): data segments the broker received and sent
    per message, and bytes per message each way, between two tcp_segments() readings."""
    rows = []
    for peer, a in after.items():
        b = before.get(peer, {"in": 0, "out": 0, "bytes_in": 0, "bytes_out": 0})
        d = {k: (a[k] - b[k]) / count for k in a}
        if d["in"] or d["out"]:
            rows.append({"segs_in": round(d["in"], 3), "segs_out": round(d["out"], 3),
                         "bytes_in": round(d["bytes_in"], 1), "bytes_out": round(d["bytes_out"], 1)})
    rows.sort(key=lambda r: -(r["segs_in"] + r["segs_out"]))
    return rows


def state_of(pid):
    return pathlib.Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0]


def run_c8(args, broker, workdir):
    queue = bench.binary("bench/queue/bench_queue")
    env = {"ASYA_TRANSPORT": "rabbitmq", "ASYA_RABBITMQ_URL": broker.new_vhost(),
           "ASYA_LOG_LEVEL": "warn", "ASYA_RABBITMQ_PREFETCH": "64"}
    env.update(dict(kv.split("=", 1) for kv in args.env))
    procs = bench.Processes(workdir)
    try:
        actor = bench.Actor(procs, workdir / "unused.db", "bench", concurrency=8, extra_env=env)
        sidecar, runtime, beam = actor.sidecar.pid, actor.runtime.pid, broker_pid(broker)
        # Warm-up run, not measured.
        bench.driver(queue, "hop", "--pid", sidecar, "--in", "asya-bench", "--out",
                     "asya-happy-end", "--count", 200, "--poll-ms", 20, env=env)
        for r in range(args.runs):
            load = os.getloadavg()[0]
            marks = {}

            def watch():
                # The sidecar's SIGCONT: the fill is over, the hop starts.
                stopped = False
                while "end" not in marks:
                    s = state_of(sidecar)
                    if s == "T":
                        stopped = True
                    elif stopped:
                        marks["cont"] = (process_cpu_ns(beam), threads(sidecar),
                                         process_cpu_ns(runtime), time.monotonic(),
                                         tcp_segments(broker.broker.port))
                        return
                    time.sleep(0.0005)
            watcher = threading.Thread(target=watch)
            last = r == args.runs - 1
            red0 = (broker_reductions(broker, workdir / "reductions0.txt", False)
                    if args.reductions else None)
            b0, s0, r0 = process_cpu_ns(beam), threads(sidecar), process_cpu_ns(runtime)
            bt0 = threads(beam)
            watcher.start()
            traced = beam if last and args.strace_broker else sidecar
            strace = args.strace_broker or args.strace if last else None
            prof = Profiler(traced, args.perf if last else None, strace,
                            (beam, args.broker_perf) if last and args.broker_perf else None)
            out = bench.driver(queue, "hop", "--pid", sidecar, "--in", "asya-bench", "--out",
                               "asya-happy-end", "--count", args.count, "--poll-ms", 20, env=env)
            marks["end"] = True
            watcher.join()
            prof.stop()
            b1, s1, r1 = process_cpu_ns(beam), threads(sidecar), process_cpu_ns(runtime)
            bt1 = threads(beam)
            n = args.count
            result = {"mode": "c8", "load": round(load, 2), "msgs_per_s": round(out["msgs_per_s"]),
                      "broker_total_us": round((b1 - b0) / 1e3 / n, 1),
                      "runtime_us": round((r1 - r0) / 1e3 / n, 1),
                      "broker_switches": split(bt0, bt1, n)["TOTAL"],
                      "sidecar": split(s0, s1, n)}
            if args.reductions:
                result["reductions"] = reductions_split(
                    red0, broker_reductions(broker, workdir / "reductions1.txt", True), n)
            if "cont" in marks:
                result["broker_hop_us"] = round((b1 - marks["cont"][0]) / 1e3 / n, 1)
                result["broker_fill_us"] = round((marks["cont"][0] - b0) / 1e3 / n, 1)
                # The hop alone: the sidecar's two connections (the driver's are closed).
                result["tcp_hop"] = segments_per_msg(marks["cont"][4],
                                                     tcp_segments(broker.broker.port), n)
            print(json.dumps(result), flush=True)
            actor.check_alive()
    finally:
        procs.stop_all()


def run_raw(args, broker, workdir):
    queue = bench.binary("bench/queue/bench_queue")
    beam = broker_pid(broker)
    for r in range(args.runs):
        load = os.getloadavg()[0]
        url = urllib.parse.urlparse(broker.new_vhost())
        last = r == args.runs - 1
        red0 = (broker_reductions(broker, workdir / "reductions0.txt", False)
                if args.reductions else None)
        b0, bt0 = process_cpu_ns(beam), threads(beam)
        prof = Profiler(beam, strace=args.strace_broker if last else None,
                        broker=(beam, args.broker_perf) if last and args.broker_perf else None)
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # --strace: the driver itself under strace (its system calls, -yy: by TCP connection).
        traced_driver = (["strace", "-f"] + (["-tt", "-yy"] if FULL_STRACE else ["-c"]) +
                         ["-o", args.strace] if last and args.strace else [])
        out = bench.driver(*traced_driver, queue, "raw-rabbitmq", "--mode", "window", "--host",
                           url.hostname,
                           "--port", url.port, "--vhost", urllib.parse.unquote(url.path[1:]),
                           "--seconds", 1, "--count", args.count, "--prefetch", 64,
                           "--queue-type", "quorum")
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        prof.stop()
        b1, bt1 = process_cpu_ns(beam), threads(beam)
        n = args.count
        result = {"mode": "raw", "load": round(load, 2), "msgs_per_s": round(out["msgs_per_s"]),
                  "broker_total_us": round((b1 - b0) / 1e3 / n, 1),
                  "broker_switches": split(bt0, bt1, n)["TOTAL"],
                  "driver_us": round((c1.ru_utime + c1.ru_stime - c0.ru_utime -
                                      c0.ru_stime) * 1e6 / n, 1)}
        if args.reductions:
            result["reductions"] = reductions_split(
                red0, broker_reductions(broker, workdir / "reductions1.txt", True), n)
        print(json.dumps(result), flush=True)


def run_rate(args, broker, workdir):
    env = {"ASYA_TRANSPORT": "rabbitmq", "ASYA_RABBITMQ_URL": broker.new_vhost(),
           "ASYA_LOG_LEVEL": "warn"}
    env.update(dict(kv.split("=", 1) for kv in args.env))
    procs = bench.Processes(workdir)
    try:
        rig = bench.CpuRig(procs, workdir, env, "rabbitmq")
        sidecar, beam = rig.pids["sidecar"], broker_pid(broker)
        for r in range(args.runs):
            load = os.getloadavg()[0]
            s0, b0 = threads(sidecar), process_cpu_ns(beam)
            prof = Profiler(sidecar, args.perf if r == args.runs - 1 else None,
                            args.strace if r == args.runs - 1 else None)
            figures = rig.measure(100, args.seconds)
            prof.stop()
            s1, b1 = threads(sidecar), process_cpu_ns(beam)
            n = figures["sent"]
            print(json.dumps({"mode": "rate", "load": round(load, 2),
                              "per_msg_us": {k: round(v, 1)
                                             for k, v in figures["per_msg_us"].items()},
                              "broker_us": round((b1 - b0) / 1e3 / n, 1),
                              "gateway_requests_per_msg":
                                  round(figures["gateway_requests_per_msg"], 2),
                              "sidecar": split(s0, s1, n)}), flush=True)
    finally:
        procs.stop_all()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["c8", "rate", "raw"])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--perf", help="perf record -g the sidecar during the last run")
    parser.add_argument("--strace", help="strace -c -f the sidecar during the last run")
    parser.add_argument("--strace-full", action="store_true",
                        help="--strace writes every call with its time (strace -f -tt), not counts")
    parser.add_argument("--broker-perf", help="perf record -g the broker (its JIT writes perf "
                        "maps: +JPperf true) during the last run")
    parser.add_argument("--reductions", action="store_true",
                        help="the broker's Erlang reductions per message by kind of process")
    parser.add_argument("--strace-broker", help="strace -c -f the broker during the last run")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the sidecar")
    args = parser.parse_args()
    global FULL_STRACE
    FULL_STRACE = args.strace_full
    sys.path.insert(0, str(bench.REPO / "tests" / "services"))
    import rabbitmq
    if args.broker_perf:
        plain_env = rabbitmq.Broker._env

        def perf_env(self):
            env = plain_env(self)
            env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = "+JPperf true"
            return env
        rabbitmq.Broker._env = perf_env
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="rabbit-split-"))
    with bench.BenchBroker(rabbitmq, args.runs + 4) as broker:
        {"c8": run_c8, "rate": run_rate, "raw": run_raw}[args.mode](args, broker, workdir)


if __name__ == "__main__":
    main()
