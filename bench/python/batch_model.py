#!/usr/bin/env python3
"""The in-process baseline of bench/run's batch rows: examples/batched-model's classifier called
directly, one classify_batch() call per batch, in this process (no queue, no sidecar, no socket).

Reads commands from stdin, one per line, and answers each with one JSON line on stdout:

    <batch size> <seconds>   → {"batch": n, "items_per_s": x, "calls": c, "ms_per_call": m,
                                "cpu_ms_per_item": the CPU time of this process per item}

The payloads are those bench_queue sends ({"t": 0, "message": 64 x's}), so the model does the same
work per item as behind asya. The model is built once, at start ("ready" is printed then), so
several rounds share one process and one import of torch.

    python3 bench/python/batch_model.py            # then type: 32 1.0
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "examples", "batched-model"))
import classifier  # noqa: E402

PAYLOAD = {"t": 0, "message": "x" * 64}


def measure(size, seconds):
    batch = [dict(PAYLOAD) for _ in range(size)]
    classifier.classify_batch(batch)  # warm-up: oneDNN prepares its kernels for this shape
    calls = 0
    start = time.perf_counter()
    cpu_start = time.process_time()
    while True:
        out = classifier.classify_batch([dict(p) for p in batch])
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    cpu = time.process_time() - cpu_start
    assert len(out) == size
    return {"batch": size, "items_per_s": calls * size / elapsed, "calls": calls,
            "ms_per_call": elapsed / calls * 1000.0, "cpu_ms_per_item": cpu / (calls * size) * 1000.0}


def main():
    print(json.dumps({"ready": True, "threads": classifier.torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        size, seconds = line.split()
        print(json.dumps(measure(int(size), float(seconds))), flush=True)


if __name__ == "__main__":
    main()
