"""A handler module whose import fails (a missing dependency): the runtime must exit 1 naming it."""
import asya_conformance_missing_dependency  # noqa: F401  (does not exist on purpose)


def process(payload):
    return payload
