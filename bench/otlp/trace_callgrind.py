#!/usr/bin/env python3
"""User-space instructions per message of the middle sidecar of the `trace` section's pipeline
(bench/run section trace), with tracing on (exporting to bench_otlp_sink) or off: counts that the
machine's load does not change (valgrind callgrind), for before/after comparisons of tracing's
own code.

    bench/otlp/trace_callgrind.py [--messages N] [--warmup N] [--side on|off|both] [--top N]

Three actors (C++ echo runtime + sidecar, SQLite transport) as in the row; the middle sidecar runs
under callgrind with collection off until the warm-up has passed through, then on for N
messages, then dumped. Prints, per side, the instructions per message of the whole sidecar (every
thread) and of the tracing functions (inclusive, per message), and the top functions (exclusive).
ASYA_BUILD_DIR selects the build, as for bench/run."""
import argparse
import importlib.machinery
import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
loader = importlib.machinery.SourceFileLoader("bench_run", str(HERE.parent / "run"))
spec = importlib.util.spec_from_loader("bench_run", loader)
bench = importlib.util.module_from_spec(spec)
loader.exec_module(bench)

# Tracing's own code (on the worker and the export thread), shown inclusive per message.
TRACING = (r"asya::sidecar::(Hop|BatchHops|Tracing|record_|current_output_trace)|asya::otlp::"
           r"|asya::log::TraceScope")


def run_side(side, messages, warmup, workdir, top):
    queue = bench.binary("bench/queue/bench_queue")
    sink = subprocess.Popen([str(bench.binary("bench/otlp/bench_otlp_sink"))],
                            stdout=subprocess.PIPE, text=True)
    procs = bench.Processes(workdir)
    out = workdir / ("callgrind-%s.out" % side)
    try:
        port = int(sink.stdout.readline())
        extra = {"ASYA_OTLP_ENDPOINT": "http://127.0.0.1:%d" % port} if side == "on" else {}
        db = workdir / ("cg-%s.db" % side)
        original = procs.start

        def start(name, argv, env=None, serves=False):
            if name.startswith("sidecar-t-two"):
                argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                        "--callgrind-out-file=%s" % out] + list(argv)
            return original(name, argv, env, serves)
        procs.start = start
        actors = bench.Actor.start(procs, db, ("t-one", "t-two", "t-three"), metrics=True,
                                   extra_env=extra)
        middle = actors[1].sidecar.pid

        def burst(count):
            return bench.driver(queue, "pipeline", "--in", "asya-t-one", "--out",
                                "asya-happy-end", "--actors", "t-one,t-two,t-three", "--rate",
                                100, "--seconds", 0, "--count", count,
                                env=bench.queue_env(db), timeout=600)
        burst(warmup)
        subprocess.run(["callgrind_control", "-i", "on", str(middle)], check=True,
                       capture_output=True)
        burst(messages)
        if side == "on":
            time.sleep(1.5)  # the exporter's last partial batch (schedule delay 1 s)
        subprocess.run(["callgrind_control", "-i", "off", str(middle)], check=True,
                       capture_output=True)
    finally:
        procs.stop_all(timeout=60)
        sink.terminate()
        sink.wait(10)
        sink.stdout.close()
    # The driver's own 10 warm-up messages of the measured run pass through too.
    per = messages + 10
    files = sorted(workdir.glob("callgrind-%s.out*" % side))
    report = {}
    for inclusive in (True, False):
        text = subprocess.run(["callgrind_annotate", "--inclusive=%s" % ("yes" if inclusive
                                                                          else "no"),
                               "--threshold=100"] + [str(f) for f in files],
                              capture_output=True, text=True, check=True).stdout
        report[inclusive] = text
    total = None
    for line in report[True].splitlines():
        m = re.match(r"\s*([\d,]+)\s.*PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
    print("== tracing %s: %d messages; whole sidecar %.1f k instructions per message" %
          (side, per, total / per / 1000))
    print("  tracing's functions (inclusive, k instructions per message; they nest):")
    shown = 0
    for line in report[True].splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(.*)", line)
        if not m or not re.search(TRACING, m.group(2)) or shown >= top:
            continue
        shown += 1
        name = re.sub(r"^[^:]*:(?!:)", "", m.group(2))
        print("  %8.2f k  %s" % (int(m.group(1).replace(",", "")) / per / 1000, name[:110]))
    print("  top functions (exclusive, k instructions per message):")
    shown = 0
    for line in report[False].splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(.*)", line)
        if not m or shown >= top:
            continue
        shown += 1
        print("  %8.2f k  %s" % (int(m.group(1).replace(",", "")) / per / 1000,
                                 re.sub(r"^[^:]*:(?!:)", "", m.group(2))[:110]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--side", default="both", choices=("on", "off", "both"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return "trace_callgrind: %s not found: install valgrind (scripts/setup --bench)" % tool
    tmp = tempfile.mkdtemp(prefix="trace-callgrind-")
    print("callgrind files in", tmp)
    for side in (("on", "off") if args.side == "both" else (args.side,)):
        run_side(side, args.messages, args.warmup, pathlib.Path(tmp), args.top)


if __name__ == "__main__":
    sys.exit(main())
