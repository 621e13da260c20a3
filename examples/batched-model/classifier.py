"""classify: a small torch model served as a batch handler (a list of payloads in, a list out).

The network is a 4-layer MLP (256 → 1024 → 1024 → 1024 → 16, ReLU), randomly initialised from a
fixed seed: no download, the same weights in every process. Each payload is turned into 256
features by hashing its character trigrams (its "text" field, or its JSON text), the model
scores 16 classes, and each result is the payload with "label" (the best class) and "score" (its
probability) added, so the payload's other fields (e.g. a benchmark's send time) pass through.

    classify_batch([{"text": "a"}, {"text": "b"}])   # the batch handler: list in, list out
    classify({"text": "a"})                         # the same model, one payload at a time

Both give the same answer for the same payload. The model is built once, on import.

Warm-up: oneDNN prepares its kernels for each batch shape the first time it meets it, which costs
a few milliseconds; at a light load the sidecar sends batches of 1, 2, 3 ... and each new size
would pay it on a live message. So the module runs one forward pass for every batch size from 1
to 32 on import, before the runtime says it is ready (as a model server's warm-up does).
ASYA_MODEL_WARMUP_MAX_BATCH sets the largest size warmed (0: none); set it to maxSize.

Threads: torch.set_num_threads(1) (and one inter-op thread). Asya scales a model by replicas,
each a process; torch's default of one thread per core would have every replica, and the sidecar
beside it, fight over the same cores, and on a 2-core machine its timings would swing with
whatever else runs. One thread gives a stable cost per item and lets the benchmark compare
batching, not thread counts. ASYA_MODEL_THREADS overrides it.

The setting is applied again in every thread that runs the model (predict(), once per thread):
torch.set_num_threads() sets OpenMP's thread count for the calling thread only, and asya's Python
runtime calls the handler on its connection thread, not on the thread that imported this module.
Without it, oneDNN's reorders (to_mkldnn, to_dense) run there with an OpenMP team of one thread
per core, whose second thread spins on the other core after each of them.

Debian's python3-torch is built against the generic (reference) BLAS, whose matrix products do
not get faster per item on batches. The model therefore runs on oneDNN (torch.utils.mkldnn, which
the same package includes): there, as on a GPU or with an optimised BLAS, a batch of 32 costs far
less than 32 single items (about 15× less per item on the 2-core machine of docs/performance.md).
"""
import json
import os
import threading
import zlib

import torch
from torch.utils import mkldnn

FEATURES = 256
HIDDEN = 1024
CLASSES = 16
SEED = 14

THREADS = int(os.environ.get("ASYA_MODEL_THREADS", "1"))
torch.set_num_threads(THREADS)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:  # already set (a second import in the same process after work started)
    pass


def _build():
    torch.manual_seed(SEED)
    layers = []
    width = FEATURES
    for _ in range(3):
        layers += [torch.nn.Linear(width, HIDDEN), torch.nn.ReLU()]
        width = HIDDEN
    layers.append(torch.nn.Linear(width, CLASSES))
    return mkldnn.to_mkldnn(torch.nn.Sequential(*layers).eval())


MODEL = _build()


def _warm_up(largest):
    """predict() once per batch size 1..largest, so no live batch pays oneDNN's first-shape cost."""
    for size in range(1, largest + 1):
        predict([{"text": "warm-up"}] * size)




def features(payload):
    """256 hashed character-trigram counts of the payload's text, scaled to unit length."""
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        text = payload["text"]
    else:
        text = json.dumps(payload, sort_keys=True)
    row = [0.0] * FEATURES
    data = text.encode()
    for i in range(max(1, len(data) - 2)):
        row[zlib.crc32(data[i:i + 3]) % FEATURES] += 1.0
    norm = sum(v * v for v in row) ** 0.5 or 1.0
    return [v / norm for v in row]


_configured = threading.local()


def _configure_thread():
    """torch's thread count for the calling thread's OpenMP (set once per thread, see above)."""
    if not getattr(_configured, "done", False):
        torch.set_num_threads(THREADS)
        _configured.done = True


def predict(payloads):
    """(label, probability) for each payload, in one forward pass over all of them."""
    if not payloads:
        return []
    _configure_thread()
    x = torch.tensor([features(p) for p in payloads], dtype=torch.float32)
    with torch.inference_mode():
        logits = MODEL(x.to_mkldnn()).to_dense()
    best = torch.softmax(logits, dim=1).max(dim=1)
    return list(zip(best.indices.tolist(), best.values.tolist()))


def _result(payload, label, score):
    answer = dict(payload) if isinstance(payload, dict) else {"input": payload}
    answer.update(label=label, score=round(score, 6))
    return answer


def classify_batch(payloads):
    """The batch handler (ASYA_HANDLER_BATCH=true): one result per payload, in order."""
    return [_result(p, label, score) for p, (label, score) in zip(payloads, predict(payloads))]


def classify(payload):
    """The same model as a plain handler: one payload, one result (a batch of one)."""
    return classify_batch([payload])[0]


_warm_up(int(os.environ.get("ASYA_MODEL_WARMUP_MAX_BATCH", "32")))
