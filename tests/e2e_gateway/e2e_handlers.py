"""Handlers of the end-to-end gateway suite (loaded by runtimes/python/asya_runtime.py). Plain
functions of the payload: nothing here imports Asya."""
import time


def echo(payload):
    return {"echoed": payload["message"]}


def doubler(payload):
    return {"value": payload["value"] * 2}


def incrementer(payload):
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


def empty(payload):
    return None


def sleeper(payload):
    time.sleep(float(payload["sleep_seconds"]))
    return {"slept": payload["sleep_seconds"]}
