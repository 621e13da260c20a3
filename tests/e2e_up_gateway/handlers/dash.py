"""Handlers of the dashboard's browser test: two slow-enough steps, so the job page sees the job
running before it ends."""
import time


def prepare(payload):
    time.sleep(1.5)
    return dict(payload, prepared=True)


def finish(payload):
    time.sleep(1.5)
    if payload["name"] == "crash":
        raise ValueError("cannot greet " + payload["name"])
    return {"greeting": "hello " + payload["name"], "times": payload.get("times", 1)}
