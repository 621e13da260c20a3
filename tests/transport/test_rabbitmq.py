"""Runs the RabbitMQ transport's GoogleTest binary against a real broker started here.

The broker (tests/services/rabbitmq.py) gets its own data directory, node name and ports, and is
stopped and deleted at the end, also when a test fails. The gtest binary reads the broker URL
from ASYA_TEST_RABBITMQ_URL and restarts the broker for the restart test through
ASYA_TEST_RABBITMQ_RESTART_COMMAND.
"""
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "tests"))
from services import rabbitmq  # noqa: E402

pytestmark = pytest.mark.skipif(not rabbitmq.available(),
                                reason="rabbitmq-server is not installed (run scripts/setup)")


@pytest.fixture(scope="module")
def broker():
    with rabbitmq.broker() as b:
        yield b


def gtest_binary(build_path):
    path = build_path / "src" / "transport" / "rabbitmq" / "transport_rabbitmq_test"
    if not path.exists():
        pytest.fail("%s is missing: build it first (ninja transport_rabbitmq_test)" % path)
    return path


def run_gtest(build_path, broker, test_filter, timeout):
    env = dict(os.environ)
    env["ASYA_TEST_RABBITMQ_URL"] = broker.url
    env["ASYA_TEST_RABBITMQ_RESTART_COMMAND"] = "%s %s restart %s" % (
        sys.executable, REPO / "tests" / "services" / "rabbitmq.py", broker.dir)
    proc = subprocess.run([str(gtest_binary(build_path)), "--gtest_filter=" + test_filter,
                           "--gtest_brief=0"], env=env, capture_output=True, text=True,
                          timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, "gtest %s failed (exit %d):\n%s" % (test_filter, proc.returncode,
                                                                     output[-20000:])
    assert "[  PASSED  ]" in output and "SKIPPED" not in output.split("[  PASSED  ]")[-1], output
    return output


def test_transport_against_a_real_broker(build_path, broker):
    # SilentDnsTest needs a namespace of its own: test_rabbitmq_stuck_lookup.py runs it.
    run_gtest(build_path, broker, "-*BrokerRestart*:SilentDnsTest.*", timeout=600)


def test_broker_restart_loses_nothing_in_a_two_queue_chain(build_path, broker):
    out = run_gtest(build_path, broker, "*BrokerRestart*", timeout=600)
    assert "arrived 1000/1000 unique" in out, out[-5000:]
