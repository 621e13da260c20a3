"""asya-sidecar's configuration as a user meets it: an invalid value of any variable (the
sidecar's own, a transport's, the result store's) stops start-up with exit code 2 and exactly one
line naming the variable, the value and what is accepted; `--help` and docs/configuration.md list
the same variables."""
import os
import re
import subprocess

import pytest

from sidecar_harness import REPO

# (variables, the value shown in the message, a fragment of what is accepted)
CASES = [
    ({"ASYA_RUNTIME_TIMEOUT": "5 minutes"}, "5 minutes", "30s"),
    ({"ASYA_CONCURRENCY": "lots"}, "lots", "1"),
    ({"ASYA_METRICS_ADDR": "9090"}, "9090", ":port"),
    ({"ASYA_BATCH_MAX_SIZE": "5000"}, "5000", "4096"),
    ({"ASYA_BATCH_MAX_WAIT": "10m", "ASYA_RUNTIME_TIMEOUT": "1m"}, "10m", "no longer than the runtime timeout"),
    ({"ASYA_RESULT_STORE": "/tmp/results"}, "/tmp/results", "s3://bucket/prefix"),
    ({"ASYA_RESULT_STORE": "s3://"}, "s3://", "bucket"),
    ({"ASYA_TRANSPORT": "kafka"}, "kafka", "sqlite"),
    ({"ASYA_TRANSPORT": "sqlite", "ASYA_SQLITE_SYNCHRONOUS": "always"}, "always", "full"),
    ({"ASYA_TRANSPORT": "rabbitmq", "ASYA_RABBITMQ_PREFETCH": "many"}, "many", "65535"),
    ({"ASYA_TRANSPORT": "rabbitmq", "ASYA_RABBITMQ_QUEUE_TYPE": "stream"}, "stream", "quorum"),
    # The URL may hold a password, so the message shows only its scheme.
    ({"ASYA_TRANSPORT": "rabbitmq", "ASYA_RABBITMQ_URL": "http://u:secret@broker:5672"}, "http", "amqp://"),
    ({"ASYA_TRANSPORT": "sqs", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
      "AWS_REGION": "eu-west-1", "ASYA_SQS_WAIT_TIME_SECONDS": "60"}, "60", "20"),
    ({"ASYA_TRANSPORT": "sqs", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1"},
     None, "AWS_ACCESS_KEY_ID"),
    ({"ASYA_TRANSPORT": "sqs", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
      "ASYA_SQS_ENDPOINT": "sqs.local"}, "sqs.local", "http"),
]


def sidecar(build_path):
    path = build_path / "src" / "sidecar" / "asya-sidecar"
    if not path.exists():
        pytest.fail("%s is missing: build it first (ninja asya-sidecar)" % path)
    return str(path)


@pytest.mark.parametrize("variables,value,accepted", CASES, ids=[
    "-".join("%s=%s" % kv for kv in c[0].items() if kv[0] not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                                  "AWS_REGION")) or "missing-key"
    for c in CASES])
def test_invalid_value_stops_start_up_with_one_line(build_path, tmp_path, variables, value, accepted):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASYA_", "AWS_"))}
    env.update({"ASYA_ACTOR_NAME": "echo", "ASYA_SQLITE_PATH": str(tmp_path / "q.db"),
                "ASYA_SOCKET_PATH": str(tmp_path / "rt.sock"), "ASYA_RUNTIME_READY_TIMEOUT": "1s"})
    env.update(variables)
    proc = subprocess.run([sidecar(build_path)], env=env, capture_output=True, timeout=30)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, lines)
    assert len(lines) == 1, lines
    assert accepted in lines[0], lines[0]
    if value is not None:
        name = [k for k, v in variables.items() if v.startswith(value)][0]
        assert name in lines[0] and value in lines[0], lines[0]
    assert "secret" not in lines[0], lines[0]


def documented_variables():
    """Every ASYA_*/AWS_* name in docs/configuration.md's sidecar, transport and result-store
    sections (the asya-queue section after them only repeats some)."""
    text = (REPO / "docs" / "configuration.md").read_text()
    start = text.index("## Sidecar (`asya-sidecar`)")
    end = text.index("## Test tool `asya-queue`")
    return set(re.findall(r"\b(?:ASYA|AWS)_[A-Z0-9_]*[A-Z0-9]\b", text[start:end]))


def test_help_and_docs_list_the_same_variables(build_path):
    proc = subprocess.run([sidecar(build_path), "--help"], capture_output=True, timeout=10)
    assert proc.returncode == 0
    helped = set(re.findall(r"\b(?:ASYA|AWS)_[A-Z0-9_]*[A-Z0-9]\b", proc.stdout.decode()))
    documented = documented_variables()
    assert documented - helped == set(), "documented but not in --help"
    assert helped - documented == set(), "in --help but not documented"


def test_every_variable_the_code_reads_is_documented():
    read = set()
    for folder in ("src/sidecar", "src/transport", "src/common"):
        for path in (REPO / folder).rglob("*.cpp"):
            if path.name.endswith("_test.cpp"):
                continue
            read |= set(re.findall(r'"((?:ASYA|AWS)_[A-Z0-9_]*[A-Z0-9])"', path.read_text(errors="replace")))
    # ASYA_TEST_* are hooks of the C++ tests, set by the pytest wrappers.
    read = {v for v in read if not v.startswith("ASYA_TEST_")}
    missing = read - documented_variables()
    assert missing == set(), "variables read in src/ but not in docs/configuration.md"
