"""Fixtures of the sidecar suite; the harness itself is sidecar_harness.py (a unique module name,
so suites with their own conftest.py never shadow it)."""
from sidecar_harness import cluster, gateway, pytest_runtest_makereport  # noqa: F401
