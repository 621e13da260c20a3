"""Shared pytest fixtures: where the build is and where the repository is, and the session's
RabbitMQ broker and moto server.

Suites live in subfolders (tests/<suite>/) with their own conftest.py. Every suite that needs a
binary takes it from the build directory: $ASYA_BUILD_DIR, or <repo>/build.

`rabbitmq_broker` and `moto_server` are one per session (per xdist worker) for every suite (the
sidecar, payload and local suites): a broker took 15-25 s to start on a loaded machine, and each
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
