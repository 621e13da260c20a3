"""The synthetic batch handler of bench/run's batch_sidecar_overhead row: each call costs
20 ms + 0.5 ms per item (a sleep, so it uses no CPU) and returns its payloads unchanged.

Each call appends its number of items to the file named by BENCH_BATCH_LOG (one line per call).
"""
import os
import time

BASE_SECONDS = 0.020
PER_ITEM_SECONDS = 0.0005

_LOG = open(os.environ["BENCH_BATCH_LOG"], "a", buffering=1) if os.environ.get("BENCH_BATCH_LOG") else None


def cost_seconds(items):
    return BASE_SECONDS + PER_ITEM_SECONDS * items


def handle_batch(payloads):
    if not isinstance(payloads, list):
        raise TypeError("handle_batch needs a list of payloads (batch mode, ASYA_HANDLER_BATCH=true), "
                        "got %s" % type(payloads).__name__)
    deadline = time.monotonic() + cost_seconds(len(payloads))
    while True:  # sleep() may wake early on a signal
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(left)
    if _LOG is not None:
        _LOG.write("%d\n" % len(payloads))
    return payloads
