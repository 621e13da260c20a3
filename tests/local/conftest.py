"""Fixtures of the tests/local suite; the harness is local_harness.py."""
from local_harness import asya, repo  # noqa: F401
