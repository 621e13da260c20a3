"""Handlers for the sidecar integration tests (loaded by runtimes/python/asya_runtime.py).

Some handlers leave marker files in $TEST_MARKER_DIR so a test can wait for "the handler has
started" instead of sleeping, or check that a handler was never called.
"""
import os
import time


def _mark(name, content=""):
    directory = os.environ.get("TEST_MARKER_DIR")
    if directory:
        path = os.path.join(directory, name)
        # A temporary of this process and thread: replicas of one actor (separate runtimes) may
        # mark the same name (a time_ns() they share), and one's rename would take the other's
        # temporary away (the handler then raised FileNotFoundError and its message went to
        # error-end).
        import threading
        temporary = "%s.%d-%d.tmp" % (path, os.getpid(), threading.get_ident())
        with open(temporary, "w") as f:
            f.write(content)
        os.rename(temporary, path)


def echo(payload):
    return payload


def enrich(payload):
    """Appends this actor's name to payload["visited"]."""
    payload.setdefault("visited", []).append(os.environ["ASYA_ACTOR_NAME"])
    return payload


def enrich_slow(payload):
    """Sleeps payload["sleep"] seconds (default 0), then enriches like enrich()."""
    time.sleep(float(payload.get("sleep", 0)))
    return enrich(payload)


def fanout(payload):
    """Returns payload["n"] outputs (default 3): {"i": i, "from": <input payload>}."""
    return [{"i": i, "tag": payload.get("tag")} for i in range(payload.get("n", 3))]


def echo_or_fail(payload):
    """Raises when payload["fail"] is true, else echoes."""
    if payload.get("fail"):
        raise ValueError("asked to fail")
    return payload


def abort(payload):
    return None


def fail(payload):
    raise ValueError("boom: %s" % payload.get("why", "no reason"))


def die(payload):
    """Kills the runtime process on every call."""
    _mark("died-%d" % time.time_ns())
    os._exit(17)


def count_call(payload):
    """Marks call-<payload["i"]>-<pid>-<ns> (one marker per call), then echoes."""
    _mark("call-%s-%d-%d" % (payload.get("i"), os.getpid(), time.time_ns()))
    return payload


def called(payload):
    """Marks that it was called, then echoes."""
    _mark("called-%s" % payload.get("tag", "x"))
    return payload


def slow(payload):
    """Marks start (payload["tag"]), sleeps payload["sleep"] seconds, marks end, echoes."""
    tag = str(payload.get("tag", "x"))
    _mark("start-%s" % tag, repr(time.time()))
    time.sleep(float(payload.get("sleep", 0.2)))
    _mark("end-%s" % tag, repr(time.time()))
    return payload


def slow_counted(payload):
    """Marks every call (call-<tag>-<ns>), sleeps payload["sleep"] seconds, echoes."""
    _mark("call-%s-%d" % (payload.get("tag", "x"), time.time_ns()))
    time.sleep(float(payload.get("sleep", 0.2)))
    return payload


def big(payload):
    return payload


def fanout_two(payload):
    """Two outputs recording which input they came from (for nested fan-out)."""
    return [{"i": i, "from": payload.get("i")} for i in range(2)]


def fail_counted(payload):
    """Marks each call, then raises."""
    _mark("fail-%d" % time.time_ns())
    raise RuntimeError("still failing")


# --- transport size limit test ---

def grow(payload):
    """Returns payload["data"] twice: an output twice the size of the input."""
    return {"data": payload["data"] * 2}


# --- duplicate counting (redelivery_scenario.py) ---

def enrich_counted(payload):
    """Records the call as one line "<actor> <payload["i"]>" in $TEST_MARKER_DIR/calls-<actor>.log
    (one O_APPEND write, so concurrent calls never interleave), sleeps payload["sleep"] seconds,
    then enriches like enrich()."""
    actor = os.environ["ASYA_ACTOR_NAME"]
    path = os.path.join(os.environ["TEST_MARKER_DIR"], "calls-%s.log" % actor)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("%s %s\n" % (actor, payload.get("i"))).encode())
    finally:
        os.close(fd)
    time.sleep(float(payload.get("sleep", 0)))
    return enrich(payload)


# --- joins (test_join.py) ---

def score(payload):
    """A branch: {"i": i, "score": i * i}; raises for the indexes listed in payload["fail"]."""
    if payload.get("i") in (payload.get("fail") or []):
        raise ValueError("branch %d asked to fail" % payload["i"])
    return {"i": payload["i"], "score": payload["i"] * payload["i"]}


def split(payload):
    """Fans out payload["n"] branches, each carrying the failing/dropped index lists along."""
    return [{"i": i, "fail": payload.get("fail"), "drop": payload.get("drop"), "n2": payload.get("n2")}
            for i in range(payload["n"])]


def drop_some(payload):
    """Ends (abort) the branches whose index is in payload["drop"]; passes the others on."""
    if payload.get("i") in (payload.get("drop") or []):
        return None
    return payload


def split_again(payload):
    """Nested fan-out: payload["n2"] branches of each branch."""
    return [{"outer": payload["i"], "i": j} for j in range(payload.get("n2") or 2)]


def combine(parts):
    """A pure join: the list of branch payloads, in fan-out order."""
    _mark("combine-%d" % time.time_ns())
    return {"parts": parts}


def combine_raises(parts):
    """A join handler that always fails the whole group."""
    _mark("combine-raises-%d" % time.time_ns())
    raise ValueError("combine_raises refuses %d parts" % len(parts))


def combine_dies(parts):
    """A join handler whose runtime dies on every group (as after an out-of-memory kill)."""
    _mark("combine-dies-%d" % time.time_ns())
    os._exit(1)


def combine_inner(parts):
    return {"outer": parts[0]["outer"], "inner": [p["i"] for p in parts]}


def score_slow(payload):
    """score() after 10 ms, so a test can kill processes while groups are half stored."""
    time.sleep(0.01)
    return score(payload)


def batch_echo(payloads):
    """A batch handler (ASYA_HANDLER_BATCH=true): records each batch as a marker
    batch-<ns>-<thread> holding {"ids", "start", "end"} after sleeping payload["sleep"] (of the
    first item, default 0); an item with "fail" fails alone (a ValueError instance), others echo."""
    import json
    import threading

    start = time.monotonic()
    time.sleep(float(payloads[0].get("sleep", 0)))
    _mark("batch-%d-%d" % (time.time_ns(), threading.get_ident()),
          json.dumps({"ids": [p.get("i") for p in payloads], "start": start, "end": time.monotonic(),
                      "thread": threading.get_ident()}))
    return [ValueError("item %s failed" % p.get("i")) if p.get("fail") else p for p in payloads]


def count_parts(parts):
    """A join answering small however large its branch list is (the memory test of
    test_join_memory.py): how many parts, and their total length."""
    return {"n": len(parts), "chars": sum(len(p) for p in parts), "last": parts[-1][:8]}


def gated(payload):
    """Marks start-<tag>, waits (up to 120 s) until the test creates gate-<tag> in
    $TEST_MARKER_DIR, marks end-<tag>, enriches like enrich(). Lets a test hold a message in the
    handler while it breaks something, without guessing durations."""
    tag = str(payload.get("tag", "x"))
    _mark("start-%s-%d" % (tag, time.time_ns()))
    gate = os.path.join(os.environ["TEST_MARKER_DIR"], "gate-%s" % tag)
    deadline = time.monotonic() + 120
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    _mark("end-%s-%d" % (tag, time.time_ns()))
    return enrich(payload)
