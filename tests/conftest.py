"""Shared pytest fixtures: where the build is and where the repository is, and the session's
RabbitMQ broker and moto server.

Suites live in subfolders (tests/<suite>/) with their own conftest.py. Every suite that needs a
binary takes it from the build directory: $ASYA_BUILD_DIR, or <repo>/build.

`rabbitmq_broker`, `moto_server` and `postgres_url` are one per session (per xdist worker) for
every suite (the sidecar, payload, local and gateway suites): a broker took 15-25 s to start on a loaded machine, and each
suite used to start its own. Tests never share their state on them: each takes a fresh vhost of
the broker (Broker.new_vhost) or resets moto before it starts (moto.reset, as tests of one worker
run one after another). Tests that restart or kill a broker start their own.
"""
import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))
from services import moto as moto_service  # noqa: E402
from services import postgres as postgres_service  # noqa: E402
from services import rabbitmq as rabbitmq_service  # noqa: E402


def build_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build")).resolve()


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="session")
def build_path() -> pathlib.Path:
    path = build_dir()
    if not path.is_dir():
        pytest.fail(f"build directory {path} does not exist: run `make build` first")
    return path


@pytest.fixture(scope="session")
def rabbitmq_broker():
    if not rabbitmq_service.available():
        pytest.skip("rabbitmq-server is not installed (scripts/setup installs it)")
    with rabbitmq_service.broker() as b:
        yield b


@pytest.fixture(scope="session")
def moto_server():
    if not moto_service.available():
        pytest.skip("no python3 with moto found (see tests/services/moto.py)")
    with moto_service.server() as m:
        yield m


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL 15 on a free port in a temp data dir, stopped at the end of the session
    (the gateway's job-store suites and the join store's; each test makes its own database or
    names its rows uniquely)."""
    if not postgres_service.available():
        pytest.fail(f"PostgreSQL 15 not installed at {postgres_service.PG_BIN}")
    with postgres_service.server() as url:
        yield url


# --- order and grouping of the tests for pytest-xdist (scripts/test-all: -n 2 --dist loadgroup) ---
#
# With --dist loadgroup each test is its own unit of work and a worker takes the next unit when
# it has at most two left, in collection order: the run ends when the longest tail ends. So the
# longest tests go first (measured with --durations, docs/testing.md "Keeping the suite fast"):
# a prefix of a node id per line, longest first; every other test keeps its place after them.
# A test over about 10 s on a loaded machine belongs here.
LONG_FIRST = [
    "tests/sidecar/test_join.py::test_two_join_replicas_and_sigkill",
    "tests/sidecar/test_rabbitmq_duplicates.py",
    "tests/sidecar/test_sidecar.py::test_thousand_way_fan_out",
    "tests/transport/test_rabbitmq.py",
    "tests/bench/test_bench_stats.py",
    "tests/sidecar/test_rabbitmq_restart.py",
    "tests/sidecar/test_join_postgres.py",
    "tests/local/test_recovery.py",
    "tests/sidecar/test_sidecar.py::test_messages_leased_ahead",
    "tests/local/test_cli.py::test_send_during_a_broker_outage",
    "tests/local/test_logs.py",
    "tests/sidecar/test_join.py",
    "tests/bench/",
    "tests/local/test_supervisor.py",
    "tests/e2e_up_gateway/",
    "tests/local/test_shared_broker.py",
    "tests/local/test_batched_model_example.py",
    "tests/local/test_payload_store.py",
    "tests/transport/test_sqs.py",
    "tests/e2e_gateway/",
    "tests/install/test_deb.py",
    "tests/local/test_runtime_imports.py",
    "tests/sidecar/test_join_memory.py",
    "tests/local/test_batching.py",
]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Tests that share a module-scoped fixture (an end-to-end stack, a module's own broker) form
    one xdist group, so that --dist loadgroup runs them on one worker and the fixture is set up
    once, not once per worker. (tryfirst: xdist reads the groups in its own hook.)"""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        if any(defs and defs[-1].scope == "module" for defs in info.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


class _LongFirst:
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        """Puts the LONG_FIRST tests first (a stable sort: after pytest's own grouping of
        parametrized fixtures, which it keeps within each rank)."""
        def rank(item):
            return next((i for i, prefix in enumerate(LONG_FIRST) if item.nodeid.startswith(prefix)),
                        len(LONG_FIRST))
        items.sort(key=rank)


def pytest_configure(config):
    config.pluginmanager.register(_LongFirst(), "asya-long-first")
