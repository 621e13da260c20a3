"""Handlers of tests/local/test_batching.py: a fan-out source and batch handlers (ASYA_HANDLER_BATCH
=true, set by spec.batching) that record the size of every batch they get."""
import json
import os
import time


def spray(payload):
    """Fans out payload["count"] items {"n": i, "log": ..., "hold": ...} to the batch actor."""
    return [{"n": n, "log": payload["log"], "hold": payload.get("hold")} for n in range(payload["count"])]


def _record(payloads):
    with open(payloads[0]["log"], "a") as log:
        log.write(json.dumps({"pid": os.getpid(), "ns": [p["n"] for p in payloads]}) + "\n")


def mixed(payloads):
    """Per item n: n % 10 == 3 fails (a ValueError instance), n % 10 == 7 aborts (None), others
    give {"n", "doubled"}. Sleeps 20 ms per call, so items pile up while a batch is processed."""
    _record(payloads)
    time.sleep(0.02)
    results = []
    for p in payloads:
        n = p["n"]
        if n % 10 == 3:
            results.append(ValueError("item %d is bad" % n))
        elif n % 10 == 7:
            results.append(None)
        else:
            results.append({"n": n, "doubled": 2 * n})
    return results


def hold_big_batch(payloads):
    """The first batch of two or more items while payload["hold"] (a marker file) does not exist
    creates the marker (the pid and the items' n) and sleeps 600 s: a batch in progress when its
    sidecar or runtime is killed. Other batches sleep 0.3 s (items pile up meanwhile) and give
    {"n"} per item."""
    marker = payloads[0]["hold"]
    if len(payloads) >= 2 and not os.path.exists(marker):
        with open(marker + ".tmp", "w") as f:
            f.write(json.dumps({"pid": os.getpid(), "ns": [p["n"] for p in payloads]}))
        os.rename(marker + ".tmp", marker)
        time.sleep(600)
    _record(payloads)
    time.sleep(0.3)
    return [{"n": p["n"]} for p in payloads]
