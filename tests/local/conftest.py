"""Fixtures of the tests/local suite; the harness is local_harness.py."""
from local_harness import asya, asya_on, repo  # noqa: F401
from local_harness import local_moto, local_rabbitmq  # noqa: F401  (session brokers for asya_on)
