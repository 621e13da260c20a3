"""Handlers of bench/run's `batch` section, served by runtimes/python/asya_runtime.py.

    model_batch      examples/batched-model's classifier.classify_batch (ASYA_HANDLER_BATCH=true)
    model_single     classifier.classify, one payload per call (the unbatched actor)

Each call appends its number of items to the file named by BENCH_BATCH_LOG (one line per call),
so bench/run knows how many batches the sidecar sent and how large they were. The model is
imported (and built) when this module is, before the runtime says it is ready.
"""
import os

import classifier

_LOG = open(os.environ["BENCH_BATCH_LOG"], "a", buffering=1) if os.environ.get("BENCH_BATCH_LOG") else None


def note(items):
    if _LOG is not None:
        _LOG.write("%d\n" % items)


def model_batch(payloads):
    if not isinstance(payloads, list):
        raise TypeError("model_batch needs a list of payloads (batch mode, ASYA_HANDLER_BATCH=true), "
                        "got %s" % type(payloads).__name__)
    note(len(payloads))
    return classifier.classify_batch(payloads)


def model_single(payload):
    note(1)
    return classifier.classify(payload)
