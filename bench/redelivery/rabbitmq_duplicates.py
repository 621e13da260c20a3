#!/usr/bin/env python3
"""Duplicate handler calls after a RabbitMQ broker fault, for each queue type and fault.

    ASYA_BUILD_DIR=build bench/redelivery/rabbitmq_duplicates.py [--messages 2000] [--runs 1]
        [--queue-types quorum,classic] [--faults stop,kill] [--prefetch 10,1] [--json FILE]

Each run starts a broker of its own and pushes the messages through a two-actor pipeline of real
sidecars and Python runtimes (concurrency 2 each, prefetch 10 or --prefetch); once a quarter of them reached
happy-end the broker is stopped gracefully ("stop") or SIGKILLed ("kill") and started again on
its data. Every handler call is recorded; the table counts the calls that repeated a message's
earlier call, per actor, next to the sidecars' asya_actor_redeliveries_total. No message may be
lost (the run fails otherwise). The scenario itself is tests/sidecar/redelivery_scenario.py; the
numbers in docs/transports.md come from this script.
"""
import argparse
import json
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "tests" / "sidecar"))
import redelivery_scenario  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1, help="runs per queue type and fault")
    parser.add_argument("--queue-types", default="quorum,classic")
    parser.add_argument("--faults", default="stop,kill")
    parser.add_argument("--prefetch", default="10", help="ASYA_RABBITMQ_PREFETCH values, comma-separated")
    parser.add_argument("--json", help="also write every run's result here")
    args = parser.parse_args()
    build = pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build")).resolve()

    results = []
    for queue_type in args.queue_types.split(","):
        for fault in args.faults.split(","):
            for prefetch in (int(p) for p in args.prefetch.split(",")):
                for _ in range(args.runs):
                    r = redelivery_scenario.run(build, args.messages, queue_type, fault,
                                                prefetch=prefetch)
                    r.pop("metrics")
                    results.append(r)
    print("| queue type | fault | prefetch | messages | at happy-end before the fault | duplicate calls "
          "(first + second) | per 100 messages | redeliveries counted (first + second) | lost |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        d, red = r["duplicate_calls"], r["redeliveries"]
        print("| %s | %s | %d | %d | %d | %d + %d = %d | %.1f | %s + %s | %d |" % (
            r["queue_type"], "graceful stop" if r["fault"] == "stop" else "SIGKILL",
            r["prefetch"], r["messages"], r["at_happy_end_before_fault"], d["first"], d["second"],
            r["duplicate_calls_total"], 100.0 * r["duplicate_calls_total"] / r["messages"],
            red["first"], red["second"], len(r["lost"])))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 1 if any(r["lost"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
