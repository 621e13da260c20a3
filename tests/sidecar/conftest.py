"""Fixtures of the sidecar suite; the harness itself is sidecar_harness.py (a unique module name,
so suites with their own conftest.py never shadow it)."""
from sidecar_harness import cluster, gateway, pytest_runtest_makereport  # noqa: F401
from sidecar_harness import rabbitmq_broker  # noqa: F401  (session broker for the rabbitmq runs)
from sidecar_harness import moto_server  # noqa: F401  (session moto server for the sqs runs)
