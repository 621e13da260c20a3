"""Handlers of the payload-store suite (loaded by runtimes/python/asya_runtime.py). Each one
records in $TEST_MARKER_DIR whether it ever saw a payload reference, so a test can assert that
handlers never do."""
import hashlib
import os
import time


def _seen(payload):
    directory = os.environ.get("TEST_MARKER_DIR")
    if not directory:
        return
    actor = os.environ["ASYA_ACTOR_NAME"]
    if isinstance(payload, dict) and "asya-payload-ref" in payload:
        with open(os.path.join(directory, "saw-reference-" + actor), "w") as f:
            f.write(repr(payload))
    tag = payload.get("tag", "x") if isinstance(payload, dict) else "x"
    with open(os.path.join(directory, "called-%s-%s" % (actor, tag)), "a") as f:
        f.write("call\n")


def make_big(payload):
    """{"bytes": N, "tag": t} -> {"data": N letters, "tag": t}: a payload of about N bytes."""
    _seen(payload)
    n = int(payload["bytes"])
    return {"tag": payload.get("tag", ""), "data": ("abcdefghijklmnopqrstuvwxyz" * (n // 26 + 1))[:n]}


def make_big_unique(payload):
    """As make_big, with this call's own stamp: a redelivery produces a different object."""
    out = make_big(payload)
    out["stamp"] = time.time_ns()
    return out


def passthrough(payload):
    """Returns exactly what it got (a pass-through actor)."""
    _seen(payload)
    return payload


def digest(payload):
    """A small summary of a large payload: its length and SHA-256."""
    _seen(payload)
    data = payload["data"]
    return {"tag": payload.get("tag", ""), "length": len(data),
            "sha256": hashlib.sha256(data.encode()).hexdigest()}


def fanout_big(payload):
    """Three children: two equal large payloads and a third, different one."""
    _seen(payload)
    n = int(payload["bytes"])
    same = {"data": "s" * n}
    return [same, dict(same), {"data": "o" * n}]


def join_lengths(parts):
    """A join of fanout_big's branches: each branch's length and SHA-256, and all their data
    joined into one large payload."""
    for part in parts:
        _seen(part)
    data = [part["data"] for part in parts]
    return {"tag": "joined", "lengths": [len(d) for d in data],
            "sha256": [hashlib.sha256(d.encode()).hexdigest() for d in data], "data": "".join(data)}


def join_kinds(parts):
    """A join that reports each branch's kind ("ok" or its error), its data length, and the
    branches that failed as they are."""
    for part in parts:
        _seen(part)
    kinds = [part.get("error", "ok") for part in parts]
    return {"tag": "kinds", "kinds": kinds,
            "lengths": [len(p["data"]) if k == "ok" else None for p, k in zip(parts, kinds)],
            "slots": [p if k != "ok" else None for p, k in zip(parts, kinds)]}


def _mark_batch(payloads):
    """Records one batch as the marker batch-<actor>-<ns> holding the JSON list of its tags."""
    import json
    import time
    directory = os.environ.get("TEST_MARKER_DIR")
    if directory:
        name = "batch-%s-%d" % (os.environ["ASYA_ACTOR_NAME"], time.time_ns())
        with open(os.path.join(directory, name), "w") as f:
            json.dump([p.get("tag") if isinstance(p, dict) else None for p in payloads], f)


def batch_passthrough(payloads):
    """A batch handler (ASYA_HANDLER_BATCH=true): returns what it got, item by item."""
    for p in payloads:
        _seen(p)
    _mark_batch(payloads)
    return list(payloads)


def batch_make_big(payloads):
    """A batch handler: make_big of each item."""
    _mark_batch(payloads)
    return [make_big(p) for p in payloads]


def make_big_string(payload):
    """{"bytes": N} -> a JSON string of N letters (an immutable payload a pass-through returns as
    it got it, so the runtime answers "payload_unchanged")."""
    _seen(payload)
    n = int(payload["bytes"])
    return ("abcdefghijklmnopqrstuvwxyz" * (n // 26 + 1))[:n]


def vanish_then_pass(payload):
    """Removes every object of the file store (what a hostile sweep or a person could do while the
    handler runs), then returns the very string it got: the Python runtime answers
    "payload_unchanged"."""
    _seen(payload)
    root = os.path.join(os.environ["ASYA_PAYLOAD_STORE"][len("file://"):], "objects")
    for name in os.listdir(root):
        os.unlink(os.path.join(root, name))
    return payload


def pass_unless_asked(payload):
    """Returns what it got (a pass-through: "payload_unchanged"), except for a payload
    {"change": true, "data": ...}, answered with a small summary instead."""
    _seen(payload)
    if isinstance(payload, dict) and payload.get("change"):
        return {"changed": len(payload["data"])}
    return payload


def first_passes_the_others_wait(payload):
    """A pass-through for duplicates processed at once: the first call of a payload answers at
    once; every later call of it creates the marker waiting-<tag>-<pid> and answers (the same
    payload) only once the test created the marker gate-<tag>. The tag is the payload's "tag", or
    "s<length>" for a string (which the Python runtime answers "payload_unchanged")."""
    _seen(payload)
    directory = os.environ["TEST_MARKER_DIR"]
    tag = payload.get("tag", "x") if isinstance(payload, dict) else "s%d" % len(payload)
    try:
        os.close(os.open(os.path.join(directory, "first-" + tag), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return payload
    except FileExistsError:
        pass
    open(os.path.join(directory, "waiting-%s-%d" % (tag, os.getpid())), "w").close()
    deadline = time.monotonic() + 300
    while not os.path.exists(os.path.join(directory, "gate-" + tag)):
        if time.monotonic() > deadline:
            raise RuntimeError("gate-%s never opened" % tag)
        time.sleep(0.05)
    return payload


def fanout_three_distinct(payload):
    """Three children of {"bytes": N}, each N letters of its own: tagged "b0", "b1" and "slow"
    (held back by pass_after_gate), so each branch has an object of its own."""
    _seen(payload)
    n = int(payload["bytes"])
    return [{"tag": tag, "data": letter * n} for tag, letter in (("b0", "p"), ("b1", "q"), ("slow", "r"))]


def pass_after_gate(payload):
    """Returns what it got; a payload tagged "slow" first creates the marker waiting-slow and
    waits until the test created the marker gate-slow."""
    _seen(payload)
    if isinstance(payload, dict) and payload.get("tag") == "slow":
        directory = os.environ["TEST_MARKER_DIR"]
        open(os.path.join(directory, "waiting-slow"), "w").close()
        deadline = time.monotonic() + 300
        while not os.path.exists(os.path.join(directory, "gate-slow")):
            if time.monotonic() > deadline:
                raise RuntimeError("gate-slow never opened")
            time.sleep(0.05)
    return payload


def join_digests(parts):
    """A join that reports each branch's kind ("ok" or its error), tag, data length and SHA-256."""
    for part in parts:
        _seen(part)
    kinds = [part.get("error", "ok") if isinstance(part, dict) else "missing" for part in parts]
    return {"tag": "digests", "kinds": kinds,
            "tags": [p.get("tag") if k == "ok" else None for p, k in zip(parts, kinds)],
            "lengths": [len(p["data"]) if k == "ok" else None for p, k in zip(parts, kinds)],
            "sha256": [hashlib.sha256(p["data"].encode()).hexdigest() if k == "ok" else None
                       for p, k in zip(parts, kinds)]}
