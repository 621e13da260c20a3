"""Fixtures of the runtime conformance suite.

Every test that takes `start_runtime` runs once per runtime:
  python  python3 runtimes/python/asya_runtime.py, PYTHONPATH=tests/runtime_conformance
  cpp     $ASYA_BUILD_DIR/tests/runtime_conformance/asya-conformance-runtime
  cpp_raw the same binary with ASYA_CONFORMANCE_RAW=1: its payload handlers served by serve_raw
Both load the handlers of conformance_handlers.py by the same ASYA_HANDLER names. A missing C++
binary fails the cpp tests (it is never skipped silently). Each runtime gets its own short temp
dir (/tmp/asya-XXXX/) for its socket, so the suite is safe under pytest-xdist.
"""
import pytest

from conformance_client import RUNTIMES, RuntimeProcess


@pytest.fixture(params=RUNTIMES)
def runtime_kind(request):
    return request.param


@pytest.fixture
def start_runtime(runtime_kind):
    """start_runtime(name, mode=None, env=None, ready=True, raw=False) -> RuntimeProcess, stopped
    after the test. `name` is a conformance_handlers name ("echo", "Counter.process"); with raw=True
    it is the whole ASYA_HANDLER value; None leaves ASYA_HANDLER unset. ready=False returns without
    waiting for the ready file (for start-up failures)."""
    started = []

    def start(name, mode=None, env=None, ready=True, socket_dir=None, raw=False):
        handler = name if raw or name is None else "conformance_handlers." + name
        runtime = RuntimeProcess(runtime_kind, handler, mode, env, socket_dir)
        started.append(runtime)
        runtime.start()
        if ready:
            runtime.wait_ready()
        return runtime

    yield start
    for runtime in started:
        runtime.cleanup()


@pytest.fixture
def python_runtime():
    """Like start_runtime, for Python-only checks (handler loading rules of the Python runtime)."""
    started = []

    def start(handler, mode=None, env=None, ready=True, socket_dir=None):
        runtime = RuntimeProcess("python", handler, mode, env, socket_dir)
        started.append(runtime)
        runtime.start()
        if ready:
            runtime.wait_ready()
        return runtime

    yield start
    for runtime in started:
        runtime.cleanup()


