"""Handlers of the tests/local suite (plain functions, no Asya import)."""
import json
import os
import sys
import time


def slow_echo(payload):
    time.sleep(float(os.environ.get("SLOW_SECONDS", "0.05")))
    return payload


def fail(payload):
    raise ValueError(f"refused {payload!r}")


def _record(event, payload):
    line = json.dumps({"event": event, "n": payload.get("n"), "pid": os.getpid(),
                       "t": time.time()}) + "\n"
    fd = os.open(os.environ["RECORD_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one small O_APPEND write: atomic between processes
    finally:
        os.close(fd)


def recorded(payload):
    """Appends a start and an end line ({event, n, pid, t}) to $RECORD_FILE around a sleep of
    payload["seconds"] (default $SLOW_SECONDS): which runtime handled what, and when."""
    _record("start", payload)
    time.sleep(float(payload.get("seconds", os.environ.get("SLOW_SECONDS", "0.05"))))
    _record("end", payload)
    return payload


def chatty(payload):
    """Prints a line to stdout (the runtime's log) and returns the payload."""
    print(f"chatty handled {json.dumps(payload)}", flush=True)
    sys.stdout.flush()
    return payload


def hold_first(payload):
    """The first call (no file payload["marker"] yet) creates the marker and sleeps
    payload["seconds"]: a message in progress when its sidecar is killed. Later calls return the
    payload at once."""
    marker = payload["marker"]
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(float(payload.get("seconds", 600)))
    return payload


class NeedsGpu:
    """A class handler whose __init__ fails: `asya up`'s pre-flight imports the module and checks
    the class without creating it, so the actor starts and then crash-loops."""

    def __init__(self):
        raise RuntimeError("no GPU on this machine")

    def run(self, payload):
        return payload
