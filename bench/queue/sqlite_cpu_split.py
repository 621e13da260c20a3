#!/usr/bin/env python3
"""Where the actor sidecar's CPU goes in the sidecar_cpu_per_msg (SQLite) rig: per message, the
CPU and context switches of every thread of the actor's sidecar, and the CPU of the gateway, the
runtime, happy-end and the bare consumer, optionally with perf record or strace -c of the sidecar.

    bench/queue/sqlite_cpu_split.py [--seconds S] [--runs R] [--perf FILE] [--strace FILE]
                                    [--strace-full] [--env NAME=VALUE ...]

bench/run's CpuRig (loaded as a module; ASYA_BUILD_DIR selects the build): an actor (sidecar + C++
no-op runtime) and happy-end reporting to asya-gateway, 100 async tool calls/s for S seconds per
run. Thread CPU from /proc/PID/task/TID/schedstat, switches from its status. --perf / --strace
attach to the sidecar during the last run (perf record --call-graph dwarf; strace -c -f, or
strace -f -tt with --strace-full); --perf-stat counts the sidecar's and the gateway's user and
kernel instructions and context switches per message in every run (perf stat: counts the load
changes little, unlike CPU time). Prints one JSON line per run."""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent


def load(name, path):
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


bench = load("bench_run", HERE.parent / "run")
split_tools = load("rabbitmq_cpu_split", HERE / "rabbitmq_cpu_split.py")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--perf", help="perf record --call-graph dwarf the sidecar, last run")
    parser.add_argument("--strace", help="strace -c -f the sidecar during the last run")
    parser.add_argument("--strace-full", action="store_true",
                        help="--strace writes every call with its time (strace -f -tt)")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for every process")
    parser.add_argument("--perf-stat", action="store_true",
                        help="perf stat the sidecar and the gateway in every run: user and kernel "
                        "instructions (where the machine counts them) and context switches per "
                        "message")
    args = parser.parse_args()
    split_tools.FULL_STRACE = args.strace_full
    env = {"ASYA_TRANSPORT": "sqlite", "ASYA_LOG_LEVEL": "warn"}
    env.update(dict(kv.split("=", 1) for kv in args.env))
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="sqlite-split-"))
    procs = bench.Processes(workdir)
    try:
        rig = bench.CpuRig(procs, workdir, env, "split")
        sidecar = rig.pids["sidecar"]
        others = {name: pid for name, pid in rig.pids.items() if name != "sidecar"}
        for r in range(args.runs):
            load_average = os.getloadavg()[0]
            last = r == args.runs - 1
            s0 = split_tools.threads(sidecar)
            o0 = {name: split_tools.threads(pid) for name, pid in others.items()}
            prof = split_tools.Profiler(sidecar, args.perf if last else None,
                                        args.strace if last else None)
            stats = {}
            if args.perf_stat:
                for name in ("sidecar", "gateway"):
                    out = workdir / ("perf-stat-%s-%d.csv" % (name, r))
                    stats[name] = (out, subprocess.Popen(
                        ["perf", "stat", "-x", ",", "-e",
                         "instructions:u,instructions:k,context-switches",
                         "-p", str(rig.pids[name]), "-o", str(out)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                time.sleep(0.3)
            figures = rig.measure(args.rate, args.seconds)
            prof.stop()
            for name, (out, process) in stats.items():
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
            s1 = split_tools.threads(sidecar)
            n = figures["sent"]
            line = {"load": round(load_average, 2),
                    "per_msg_us": {k: round(v, 1) for k, v in figures["per_msg_us"].items()},
                    "gateway_requests_per_msg": round(figures["gateway_requests_per_msg"], 2),
                    "sidecar": split_tools.split(s0, s1, n)}
            for name, (out, _) in stats.items():
                counts = {}
                for row in out.read_text().splitlines():
                    fields = row.split(",")
                    if len(fields) > 2 and fields[0].replace(".", "").isdigit():  # counted
                        counts[fields[2]] = float(fields[0])
                line["perf_stat_" + name] = {event: round(value / n, 2 if "switch" in event else 0)
                                             for event, value in counts.items()}
            for name, pid in others.items():
                count = n
                line[name + "_switches"] = split_tools.split(
                    o0[name], split_tools.threads(pid), count)["TOTAL"]
            print(json.dumps(line), flush=True)
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
