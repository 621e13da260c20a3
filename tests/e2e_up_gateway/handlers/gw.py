"""Handlers of the e2e_up_gateway suite."""
import time


def echo(payload):
    return payload


def doubler(payload):
    return dict(payload, value=payload["value"] * 2)


def incrementer(payload):
    return dict(payload, value=payload["value"] + 1)


def fanout(payload):
    return [{"part": i} for i in range(payload.get("n", 3))]


def fail(payload):
    raise ValueError("boom: " + str(payload.get("why", "")))


def slow(payload):
    time.sleep(30)
    return payload
