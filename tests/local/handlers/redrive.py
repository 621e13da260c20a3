"""Handlers of the failure tests (tests/local/test_failures.py): plain functions, no Asya import."""
import json
import os


def fail_until_flag(payload):
    """Raises KeyError until the file $FLAG_FILE exists; then appends one line {"n": payload["n"]}
    to $PROCESSED_FILE (one small O_APPEND write) and returns the payload with "ok": true."""
    if not os.path.exists(os.environ["FLAG_FILE"]):
        raise KeyError(f"flag {os.environ['FLAG_FILE']} is missing")
    line = json.dumps({"n": payload.get("n"), "prepared": payload.get("prepared", 0)}) + "\n"
    fd = os.open(os.environ["PROCESSED_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return dict(payload, ok=True)


def prepare(payload):
    """Counts its calls in payload["prepared"]."""
    return dict(payload, prepared=payload.get("prepared", 0) + 1)
