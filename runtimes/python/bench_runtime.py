#!/usr/bin/env python3
"""Requests per second of asya_runtime.py on an echo handler, next to the published runtime's.

    python3 runtimes/python/bench_runtime.py [--seconds 3] [--sizes 64,1048576]

Starts the runtime on a temp socket with an echo handler, then for each payload size measures
with a Python client (the way the published runtime's figures were taken, ARCHITECTURE.md
"Performance goals"): one connection per request, and one reused connection (how our sidecar
talks to it). The machine is shared, so each figure is the best of several short windows.
The published runtime did 8.3k req/s at 64 B and 59 req/s at 1 MB on this machine kind (one
connection per request); the goal is at least 2x and 3x of that.
"""
import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PUBLISHED_REQUESTS_PER_SECOND = {64: 8300.0, 1024 * 1024: 59.0}
GOAL_FACTOR = {64: 2.0, 1024 * 1024: 3.0}

ECHO_HANDLER = '''
def echo(payload):
    if isinstance(payload, dict) and "message" in payload:
        return {"echoed": payload["message"]}
    return payload
'''


def frame_for(size):
    body = json.dumps({"id": "bench", "route": {"actors": ["echo"], "current": 0},
                       "payload": {"message": "x" * size}}).encode()
    return struct.pack(">I", len(body)) + body


def call(sock, frame):
    sock.sendall(frame)
    (length,) = struct.unpack(">I", sock.recv(4, socket.MSG_WAITALL))
    received = sock.recv(length, socket.MSG_WAITALL)
    if len(received) != length:
        raise RuntimeError("short response")


def window(path, frame, seconds, per_request):
    count = 0
    started = time.perf_counter()
    end = started + seconds
    if per_request:
        while time.perf_counter() < end:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(path)
            call(sock, frame)
            sock.close()
            count += 1
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(path)
        while time.perf_counter() < end:
            call(sock, frame)
            count += 1
        sock.close()
    return count / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure (default 3)")
    parser.add_argument("--sizes", default="64,1048576", help="payload sizes in bytes (default 64,1048576)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    workdir = tempfile.mkdtemp(prefix="asya-bench-", dir="/tmp")
    with open(os.path.join(workdir, "bench_echo.py"), "w") as handler_file:
        handler_file.write(ECHO_HANDLER)
    socket_path = os.path.join(workdir, "rt.sock")
    env = dict(os.environ, ASYA_HANDLER="bench_echo.echo", ASYA_SOCKET_PATH=socket_path, PYTHONPATH=workdir,
               ASYA_LOG_LEVEL="warn")
    runtime = subprocess.Popen([sys.executable, os.path.join(HERE, "asya_runtime.py")], env=env)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(workdir, "runtime-ready")):
            if runtime.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("runtime did not start")
            time.sleep(0.01)
        windows = max(1, int(args.seconds / 0.25))
        print("%-10s %-22s %12s %12s %10s" % ("payload", "connections", "req/s", "published", "ratio"))
        for size in sizes:
            frame = frame_for(size)
            for per_request in (True, False):
                best = max(window(socket_path, frame, args.seconds / windows, per_request) for _ in range(windows))
                published = PUBLISHED_REQUESTS_PER_SECOND.get(size)
                ratio = "%.1fx" % (best / published) if published and per_request else "-"
                goal = " (goal %.0fx)" % GOAL_FACTOR[size] if published and per_request else ""
                print("%-10s %-22s %12.0f %12s %10s%s" % (
                    "%d B" % size, "one per request" if per_request else "one reused", best,
                    "%.0f" % published if published and per_request else "-", ratio, goal))
    finally:
        runtime.terminate()
        runtime.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
