"""Fixtures of the gateway suite. The helpers live in gateway_harness.py (a unique module name:
several suites have a conftest.py, so `from conftest import ...` would pick the wrong one)."""
from gateway_harness import *  # noqa: F401,F403  (fixtures are discovered by name)
