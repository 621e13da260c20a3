"""The SQS transport and the S3 client/result store against moto's server, started here.

moto (tests/services/moto.py) runs from the python3 on PATH, one server for this module, stopped
at the end also when a test fails. The GoogleTest binaries read the endpoint from
ASYA_TEST_AWS_ENDPOINT (they skip without it, so plain ctest passes without moto). The other tests
drive the real programs (asya-queue, asya-sidecar) with the variables a user would set; the test
itself creates and reads buckets with moto.s3_request (a standard-library SigV4 signer, so no
boto3 is needed in this interpreter).
"""
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "tests"))
from services import moto  # noqa: E402

pytestmark = pytest.mark.skipif(not moto.available(),
                                reason="no python3 with moto on PATH (moto_server)")


@pytest.fixture(scope="module")
def aws():
    with moto.server() as m:
        yield m


def binary(build_path, *parts):
    path = build_path.joinpath(*parts)
    if not path.exists():
        pytest.fail("%s is missing: build it first (ninja %s)" % (path, parts[-1]))
    return str(path)


def run_gtest(path, endpoint, timeout=300, args=()):
    env = dict(os.environ)
    env["ASYA_TEST_AWS_ENDPOINT"] = endpoint
    proc = subprocess.run([path, "--gtest_brief=0", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, "%s failed (exit %d):\n%s" % (path, proc.returncode,
                                                                 output[-20000:])
    summary = output.split("[  PASSED  ]")[-1]
    assert "SKIPPED" not in summary, "tests were skipped although moto runs:\n" + output[-5000:]
    return output


def test_sqs_transport_gtest_against_moto(build_path, aws):
    run_gtest(binary(build_path, "src", "transport", "sqs", "transport_sqs_test"), aws.endpoint)


def test_sigv4_vectors_and_s3_client_gtest_against_moto(build_path, aws):
    out = run_gtest(binary(build_path, "src", "common", "aws", "aws_test"), aws.endpoint)
    assert "SigV4.EveryPublishedVectorMatchesAtEachStep" in out


def test_s3_result_store_gtest_against_moto(build_path, aws):
    """The S3 result store reads back what it stored (an end actor reads a stored result before it
    would store a worse copy: docs/protocol.md §6 "Duplicates")."""
    out = run_gtest(binary(build_path, "src", "sidecar", "sidecar_test"), aws.endpoint,
                    args=["--gtest_filter=S3ResultStore.*"])
    assert "S3ResultStore.GetReadsWhatPutStoredAndNothingWhenAbsent" in out


# --- the programs, configured only through the environment ---------------------------------

def sqs_env(aws, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ASYA_") and not k.startswith("AWS_")}
    env.update(aws.env())
    env["ASYA_TRANSPORT"] = "sqs"
    env["ASYA_SQS_WAIT_TIME_SECONDS"] = "1"
    env.update(extra)
    return env


def queue_tool(build_path, env, *args, check=True):
    proc = subprocess.run([binary(build_path, "tests", "tools", "asya-queue"), *args], env=env,
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, "asya-queue %s failed (%d): %s" % (
            " ".join(args[:2]), proc.returncode, proc.stderr)
    return proc


def unique(name):
    return "asya-%s-%s" % (name, uuid.uuid4().hex[:8])


def test_queue_tool_sends_receives_and_counts_on_sqs(build_path, aws):
    env = sqs_env(aws)
    q = unique("tool")
    queue_tool(build_path, env, "ensure", q)
    queue_tool(build_path, env, "send", q, '{"id":"a","n":1}')
    queue_tool(build_path, env, "send", q, '{"id":"b","n":2}')
    stats = json.loads(queue_tool(build_path, env, "stats", q).stdout)
    assert stats == {"ready": 2, "in_flight": 0, "delayed": 0}

    # Without --ack a message is nacked: it comes back with a higher delivery count.
    first = [json.loads(l) for l in queue_tool(build_path, env, "recv", q, "--max", "1",
                                               "--wait", "2s").stdout.splitlines()]
    assert len(first) == 1 and first[0]["delivery_count"] == 1
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 2 and time.monotonic() < deadline:
        out = queue_tool(build_path, env, "recv", q, "--max", "10", "--wait", "2s", "--ack").stdout
        got += [json.loads(l) for l in out.splitlines()]
    assert sorted(json.loads(m["body"])["id"] for m in got) == ["a", "b"]
    redelivered = [m for m in got if m["body"] == first[0]["body"]]
    assert redelivered[0]["delivery_count"] == 2
    assert json.loads(queue_tool(build_path, env, "stats", q).stdout)["ready"] == 0


def test_queue_tool_refuses_a_body_over_the_sqs_limit(build_path, aws, tmp_path):
    env = sqs_env(aws)
    q = unique("big")
    body = tmp_path / "big.json"
    body.write_text('"' + "x" * (256 * 1024) + '"')
    proc = queue_tool(build_path, env, "send", q, "@" + str(body), check=False)
    assert proc.returncode == 1
    assert "message_too_large:" in proc.stderr and "262144" in proc.stderr, proc.stderr


def test_missing_credentials_are_named(build_path, aws):
    env = sqs_env(aws)
    del env["AWS_ACCESS_KEY_ID"]
    proc = queue_tool(build_path, env, "ensure", unique("x"), check=False)
    assert proc.returncode != 0
    assert "AWS_ACCESS_KEY_ID" in proc.stderr, proc.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_end_actor_writes_the_envelope_to_s3(build_path, aws):
    bucket = "results-" + uuid.uuid4().hex[:8]
    status, _ = moto.s3_request("PUT", "%s/%s" % (aws.endpoint, bucket))
    assert status == 200
    prefix = "q" + uuid.uuid4().hex[:6] + "-"
    env = sqs_env(aws, ASYA_ACTOR_NAME="happy-end", ASYA_QUEUE_PREFIX=prefix,
                  ASYA_RESULT_STORE="s3://%s/runs/2026" % bucket,
                  ASYA_METRICS_ADDR="127.0.0.1:%d" % free_port(), ASYA_LOG_LEVEL="info")
    with tempfile.TemporaryDirectory(prefix="asya-s3-") as tmp:
        env["ASYA_SOCKET_PATH"] = os.path.join(tmp, "unused.sock")
        log_path = os.path.join(tmp, "sidecar.log")
        with open(log_path, "wb") as log:
            sidecar = subprocess.Popen([binary(build_path, "src", "sidecar", "asya-sidecar")],
                                       env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            envelope = {"id": "job 1/a", "route": {"actors": ["echo"], "current": 1},
                        "payload": {"answer": 42, "text": "h\u00e9llo"}}
            body = json.dumps(envelope, separators=(",", ":"))
            queue_tool(build_path, env, "send", prefix + "happy-end", body)
            # result_file_name("job 1/a") == "job%201%2Fa.json"; the S3 key is used literally,
            # so the URL encodes its '%' once more.
            url = "%s/%s/runs/2026/job%%25201%%252Fa.json" % (aws.endpoint, bucket)
            deadline = time.monotonic() + 60
            while True:
                status, data = moto.s3_request("GET", url)
                if status == 200:
                    break
                assert sidecar.poll() is None, "sidecar exited %s:\n%s" % (
                    sidecar.returncode, open(log_path, errors="replace").read()[-3000:])
                assert time.monotonic() < deadline, "no object at %s after 60s; sidecar log:\n%s" % (
                    url, open(log_path, errors="replace").read()[-3000:])
                time.sleep(0.2)
            assert json.loads(data) == envelope
            # The input was acked only after the object was written.
            deadline = time.monotonic() + 30
            while json.loads(queue_tool(build_path, env, "stats", prefix + "happy-end").stdout) != \
                    {"ready": 0, "in_flight": 0, "delayed": 0}:
                assert time.monotonic() < deadline, "happy-end queue not drained"
                time.sleep(0.2)
        finally:
            sidecar.kill()
            sidecar.wait(timeout=10)
