"""Handlers of the end-to-end gateway suite (loaded by runtimes/python/asya_runtime.py). Plain
functions of the payload: nothing here imports Asya."""
import os
import pathlib
import time


def echo(payload):
    return {"echoed": payload["message"]}


# The pipeline handlers take a little time, like real work: progress reports are asynchronous by
# contract (PROTOCOL §7), so a job that finishes in microseconds may reach its final status before
# its progress reports arrive, and the gateway ignores progress after the end. 0.3 s per hop
# leaves the reports ample time, which the progress-stream test relies on.
WORK_SECONDS = 0.3


def doubler(payload):
    time.sleep(WORK_SECONDS)
    return {"value": payload["value"] * 2}


def incrementer(payload):
    time.sleep(WORK_SECONDS)
    return {"value": payload["value"] + 5}


def fail(payload):
    raise ValueError("asked to fail: should_fail=%s" % payload.get("should_fail"))


def fanout(payload):
    count = payload["count"]
    return [{"index": i, "count": count, "message": "branch %d of %d" % (i, count)} for i in range(count)]


def branch(payload):
    """Later branches take longer, so branch 0 (which keeps the job's id) ends first."""
    time.sleep(0.4 * payload["index"])
    return dict(payload, done=True)


def paced(payload):
    """A branch that takes a little time, the same for every index: with one replica the
    branches reach their join one by one, so the join's running count has time to be seen."""
    time.sleep(0.3)
    return dict(payload, done=True)


def batched(payloads):
    """A batch handler (ASYA_HANDLER_BATCH=true): each payload marked with the batch's size."""
    time.sleep(0.05)
    return [dict(p, batch_size=len(payloads)) for p in payloads]


def empty(payload):
    return None


def joiner(parts):
    """A join (ASYA_JOIN): the branches' payloads in fan-out order."""
    return {"joined": [p["index"] for p in parts], "all_done": all(p.get("done") for p in parts)}


def sleeper(payload):
    time.sleep(float(payload["sleep_seconds"]))
    return {"slept": payload["sleep_seconds"]}


def _mark(actor, payload):
    """The handler's own record that it ran for this payload (TEST_MARKER_DIR/<tag>.<actor>)."""
    pathlib.Path(os.environ["TEST_MARKER_DIR"], "%s.%s" % (payload["tag"], actor)).write_text("ran")


def slow_first(payload):
    _mark("slow-first", payload)
    time.sleep(float(payload["sleep"]))
    return payload


def slow_second(payload):
    _mark("slow-second", payload)
    return dict(payload, second=True)
