"""Handlers the Python runtime must refuse at start-up (Python-only cases of the conformance suite)."""

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
