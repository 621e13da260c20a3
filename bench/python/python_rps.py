#!/usr/bin/env python3
"""python_runtime_rps: requests/s of runtimes/python/asya_runtime.py next to the published
runtime's loop (published_loop.py), same echo handler, same Python client, same run.

Measured the way the published figures were taken (ARCHITECTURE.md "Performance goals"): one
connection per request, a Python client, payload sizes 64 B and 1 MiB. The client code is
runtimes/python/bench_runtime.py's. Each figure is the best of several short windows, taken in
alternation (ours, published, ours, ...) so that load from other processes hits both alike.
"floor" is socket_floor.py: the same client against a server that does no JSON at all, at 64 B
only. Prints one JSON object: {"64": {"asya": rps, "baseline": rps, "floor": rps},
"1048576": {"asya": rps, "baseline": rps}}.

    python3 bench/python/python_rps.py [--seconds 4]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "runtimes", "python"))
import bench_runtime  # noqa: E402  (frame_for, window, ECHO_HANDLER)

SIZES = (64, 1024 * 1024)


def start(script, workdir, name, log_level):
    directory = os.path.join(workdir, name)
    os.makedirs(directory)
    socket_path = os.path.join(directory, "rt.sock")
    env = dict(os.environ, ASYA_HANDLER="bench_echo.echo", ASYA_SOCKET_PATH=socket_path,
               PYTHONPATH=workdir, ASYA_LOG_LEVEL=log_level)
    process = subprocess.Popen([sys.executable, script], env=env)
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(directory, "runtime-ready")):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("%s did not start" % script)
        time.sleep(0.01)
    return process, socket_path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per size and runtime")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="asya-bench-py-", dir="/tmp")
    with open(os.path.join(workdir, "bench_echo.py"), "w") as handler_file:
        handler_file.write(bench_runtime.ECHO_HANDLER)
    processes = []
    try:
        ours, ours_socket = start(os.path.join(REPO, "runtimes", "python", "asya_runtime.py"), workdir, "asya", "warn")
        processes.append(ours)
        theirs, theirs_socket = start(os.path.join(HERE, "published_loop.py"), workdir, "published", "WARNING")
        processes.append(theirs)
        floor, floor_socket = start(os.path.join(HERE, "socket_floor.py"), workdir, "floor", "WARNING")
        processes.append(floor)
        result = {}
        for size in SIZES:
            frame = bench_runtime.frame_for(size)
            windows = max(2, int(args.seconds / 0.25))
            # The floor only at the smallest size: bench/run's note quotes it there alone.
            sides = [("asya", ours_socket), ("baseline", theirs_socket)]
            if size == SIZES[0]:
                sides.append(("floor", floor_socket))
            best = {key: 0.0 for key, _ in sides}
            for _ in range(windows):
                for key, path in sides:
                    rps = bench_runtime.window(path, frame, args.seconds / windows / 2, True)
                    best[key] = max(best[key], rps)
            result[str(size)] = best
        print(json.dumps(result))
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
