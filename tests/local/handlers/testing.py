"""Handlers of the tests/local suite (plain functions, no Asya import)."""
import os
import time


def slow_echo(payload):
    time.sleep(float(os.environ.get("SLOW_SECONDS", "0.05")))
    return payload


def fail(payload):
    raise ValueError(f"refused {payload!r}")
