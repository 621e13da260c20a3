"""Handlers of bench/run's `batch` section, served by runtimes/python/asya_runtime.py.

    model_batch      examples/batched-model's classifier.classify_batch (ASYA_HANDLER_BATCH=true)
    model_single     classifier.classify, one payload per call (the unbatched actor)

Each call appends a line "<items> <start> <end>" (time.monotonic() seconds around the model call)
to the file named by BENCH_BATCH_LOG, so bench/run knows how many batches the sidecar sent, how
large they were, and how long the runtime's handler sat idle between two calls. The model is
imported (and built) when this module is, before the runtime says it is ready.
"""
import os
import time

import classifier

_LOG = open(os.environ["BENCH_BATCH_LOG"], "a", buffering=1) if os.environ.get("BENCH_BATCH_LOG") else None


def note(items, start):
    if _LOG is not None:
        _LOG.write("%d %.6f %.6f\n" % (items, start, time.monotonic()))


def model_batch(payloads):
    if not isinstance(payloads, list):
        raise TypeError("model_batch needs a list of payloads (batch mode, ASYA_HANDLER_BATCH=true), "
                        "got %s" % type(payloads).__name__)
    start = time.monotonic()
    result = classifier.classify_batch(payloads)
    note(len(payloads), start)
    return result


def model_single(payload):
    start = time.monotonic()
    result = classifier.classify(payload)
    note(1, start)
    return result
