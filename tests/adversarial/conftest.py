"""The adversarial suites reuse the sidecar harness (tests/sidecar/sidecar_harness.py): processes,
queues, and the logs of a failed test."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "sidecar"))

from sidecar_harness import pytest_runtest_makereport  # noqa: E402,F401
