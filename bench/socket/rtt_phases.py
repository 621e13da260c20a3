#!/usr/bin/env python3
"""Splits the round trips of a `perf record` of bench_rtt_probe (rtt_probe.cpp) into phases:
the request (client's first send -> the peer's last read of it), the peer's own work (its last
read -> its first send of the answer) and the answer (-> the client's next request), as medians,
with the context switches and system calls of each side per round trip.

    perf record -o rtt.data -e sched:sched_switch,sched:sched_wakeup,raw_syscalls:sys_enter,\\
        raw_syscalls:sys_exit -a -- bench_rtt_probe client SOCKET 1048576 300
    python3 bench/socket/rtt_phases.py rtt.data

Processes whose name starts with "bench_" are the two sides; the client is bench_rtt_probe.
"""
import re
import statistics
import subprocess
import sys

SENDS = (20, 46)      # writev, sendmsg (x86-64 syscall numbers)
READS = (0, 45, 47)   # read, recvfrom, recvmsg
CLIENT = "bench_rtt_probe"


def events(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,tid,cpu,time,event,trace"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)", line)
        if not m or not m.group(1).startswith("bench_"):
            continue
        comm, _, _, time, event, trace = m.groups()
        number = re.search(r"NR (-?\d+)", trace)
        result = re.search(r"= (-?\d+)", trace)
        yield (float(time), comm, event, int(number.group(1)) if number else -1,
               int(result.group(1)) if result else 0)


def main():
    trips, current, sending = [], None, False
    for time, comm, event, number, result in events(sys.argv[1]):
        client = comm.startswith(CLIENT[:15])
        if client and event == "raw_syscalls:sys_enter" and number in SENDS and not sending:
            current = {"start": time, "peer_send": None, "peer_read": None, "switch": [0, 0],
                       "calls": [0, 0]}
            trips.append(current)
            sending = True
        if current is None:
            continue
        # The client's request is sent (a poll while the socket is full does not end it) once
        # it reads bytes of the answer.
        if client and event == "raw_syscalls:sys_exit" and number in READS and result > 0:
            sending = False
        if not client and event == "raw_syscalls:sys_enter" and number in SENDS and current["peer_send"] is None:
            current["peer_send"] = time
        if not client and event == "raw_syscalls:sys_exit" and number in READS and result > 0 \
                and current["peer_send"] is None:
            current["peer_read"] = time
        if event == "sched:sched_switch":
            current["switch"][0 if client else 1] += 1
        if event == "raw_syscalls:sys_enter":
            current["calls"][0 if client else 1] += 1
    for trip, following in zip(trips, trips[1:]):
        trip["end"] = following["start"]
    done = [t for t in trips[5:-1] if t["peer_send"] and t["peer_read"]]
    if not done:
        raise SystemExit("no complete round trips in " + sys.argv[1])

    def median_us(f):
        return statistics.median(f(t) for t in done) * 1e6
    print("%d round trips (medians, µs): total %.0f, request %.0f, peer's work %.0f, answer %.0f"
          % (len(done), median_us(lambda t: t["end"] - t["start"]),
             median_us(lambda t: t["peer_read"] - t["start"]),
             median_us(lambda t: t["peer_send"] - t["peer_read"]),
             median_us(lambda t: t["end"] - t["peer_send"])))
    print("per round trip: context switches client %.1f, peer %.1f; system calls client %.1f, peer %.1f"
          % tuple(statistics.mean(t[k][i] for t in done) for k, i in
                  (("switch", 0), ("switch", 1), ("calls", 0), ("calls", 1))))


if __name__ == "__main__":
    main()
