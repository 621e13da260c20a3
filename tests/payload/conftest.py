"""Fixtures of the payload-store suite (large payloads by reference, docs/protocol.md §10): the
sidecar suite's harness (real sidecars, real Python runtimes, real transports) with a payload
store; nothing is copied from it."""
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
TESTS = HERE.parent
if str(TESTS / "sidecar") not in sys.path:
    sys.path.insert(0, str(TESTS / "sidecar"))

from sidecar_harness import cluster, gateway, pytest_runtest_makereport  # noqa: E402,F401
