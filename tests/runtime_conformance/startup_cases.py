"""Python-only handlers of the conformance suite: ones the runtime must refuse at start-up, and one
that shows when it has started (for the shutdown test)."""
import pathlib
import time

NOT_CALLABLE = 42


class NeedsArgument:
    """__init__ has a parameter without a default: the runtime cannot instantiate it."""

    def __init__(self, model_path):
        self.model_path = model_path

    def process(self, payload):
        return payload


class RaisingInit:
    """__init__ raises: the runtime must exit 1 naming the error."""

    def __init__(self):
        raise RuntimeError("model file not found")

    def process(self, payload):
        return payload


class Fine:
    """All-default __init__, used to check a missing or non-callable method."""

    attribute = "not a method"

    def __init__(self, threshold=0.5):
        self.threshold = threshold

    def process(self, payload):
        return payload


def announce_then_sleep(payload):
    """Creates the file payload.marker, sleeps payload.sleep_seconds, returns the payload."""
    pathlib.Path(payload["marker"]).touch()
    time.sleep(payload["sleep_seconds"])
    return payload
