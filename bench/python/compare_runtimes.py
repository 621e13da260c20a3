#!/usr/bin/env python3
"""Requests/s of several Python runtime scripts side by side, in alternating short windows (so
load from other processes hits all alike): for before/after comparisons of asya_runtime.py.

    python3 bench/python/compare_runtimes.py [--seconds 4] [--size 64] [--kept] SCRIPT...

e.g. `git show HEAD~3:runtimes/python/asya_runtime.py > /tmp/old_runtime.py`, then
`bench/python/compare_runtimes.py /tmp/old_runtime.py runtimes/python/asya_runtime.py
bench/python/published_loop.py bench/python/socket_floor.py`. One connection per request by
default (how the published figures were taken); --kept reuses one connection (how our sidecar
talks to the runtime; published_loop.py and socket_floor.py close after each request, so leave
them out). Prints the best and the median window of each script.
"""
import argparse
import os
import shutil
import tempfile

from python_rps import bench_runtime, start  # start(script, workdir, name, log_level)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per script")
    parser.add_argument("--size", type=int, default=64, help="payload bytes")
    parser.add_argument("--kept", action="store_true", help="one reused connection")
    parser.add_argument("scripts", nargs="+")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="asya-bench-cmp-", dir="/tmp")
    with open(os.path.join(workdir, "bench_echo.py"), "w") as handler_file:
        handler_file.write(bench_runtime.ECHO_HANDLER)
    processes, sockets = [], []
    try:
        for index, script in enumerate(args.scripts):
            level = "warn" if "asya" in script else "WARNING"
            process, socket_path = start(script, workdir, str(index), level)
            processes.append(process)
            sockets.append(socket_path)
        frame = bench_runtime.frame_for(args.size)
        windows = max(2, int(args.seconds / 0.25))
        results = [[] for _ in args.scripts]
        for _ in range(windows):
            for index, socket_path in enumerate(sockets):
                results[index].append(bench_runtime.window(socket_path, frame, args.seconds / windows,
                                                           not args.kept))
        for script, rates in zip(args.scripts, results):
            rates.sort()
            print("%-40s best %9.0f  median %9.0f req/s" % (script, rates[-1], rates[len(rates) // 2]))
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
