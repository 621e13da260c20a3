#!/usr/bin/env python3
"""The runtime_rtt rows of two builds side by side: runs each build's bench_runtime_rtt in turn
(before, after, before, ...) and prints every run's p50s, then the spread of the asya/raw ratio.

    python3 bench/socket/compare_builds.py BEFORE_BUILD_DIR AFTER_BUILD_DIR [ROUNDS]

A before build: `git worktree add --detach /tmp/before <commit>`, then
`cmake -S /tmp/before -B /tmp/before/build -G Ninja -DCMAKE_BUILD_TYPE=Release` and
`ninja -C /tmp/before/build bench_runtime_rtt`.
"""
import json
import os
import subprocess
import sys


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    builds = {"before": sys.argv[1], "after": sys.argv[2]}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    runs = {name: [] for name in builds}
    for _ in range(rounds):
        for name, build in builds.items():
            load = os.getloadavg()[0]
            done = subprocess.run([os.path.join(build, "bench/socket/bench_runtime_rtt"),
                                   "--benchmark_format=json",
                                   "--benchmark_filter=(RawPingPong|RuntimeClient|HandleRawRequest)/"],
                                  capture_output=True, text=True, timeout=900, check=True)
            row = {"load": round(load, 1)}
            for bench in json.loads(done.stdout)["benchmarks"]:
                kind, size = bench["name"].split("/")[:2]
                row["%s/%s" % (kind, size)] = round(bench["p50_us"], 1)
            runs[name].append(row)
            print(name, json.dumps(row), flush=True)
    for name, rows in runs.items():
        for size in ("64", "1024", "1048576"):
            ratios = sorted(r["BM_RuntimeClient/" + size] / r["BM_RawPingPong/" + size] for r in rows)
            print("%-6s %8s B: RuntimeClient/raw p50 ratio min %.2f median %.2f max %.2f"
                  % (name, size, ratios[0], ratios[len(ratios) // 2], ratios[-1]))


if __name__ == "__main__":
    main()
