"""End to end through `asya up`: the supervisor starts asya-gateway from the routes.yaml beside the
manifests, the sidecars report to it (ASYA_GATEWAY_URL), the runtimes run e2e_handlers.py, and
clients call tools over REST. One stack per module (per xdist worker); `asya down` at the end."""
import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from gateway_harness import http, http_json, wait_until
from sse import SseStream

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent

ROUTES = """
defaults:
  timeout: 60
tools:
  - name: echo
    parameters:
      message: {type: string, required: true}
    route: [echo]
  - name: pipeline
    parameters:
      value: {type: integer, required: true}
    route: [doubler, incrementer]
  - name: fanout
    parameters:
      count: {type: integer, required: true}
    route: [fanout, branch]
    async: true
    progress: true
  - name: error
    parameters:
      should_fail: {type: boolean, default: true}
    route: [fail]
  - name: timeout
    parameters:
      sleep_seconds: {type: number, required: true}
    route: [sleeper]
    timeout: 2
"""

# actor -> (handler, replicas, sidecar concurrency)
ACTORS = {
    "echo": ("echo", 2, 16),
    "doubler": ("doubler", 1, 1),
    "incrementer": ("incrementer", 1, 1),
    "fanout": ("fanout", 1, 1),
    "branch": ("branch", 1, 4),
    "fail": ("fail", 1, 1),
    "sleeper": ("sleeper", 1, 1),
}


def manifest(name, handler, replicas, concurrency):
    return f"""apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  scaling: {{enabled: false}}
  sidecar: {{concurrency: {concurrency}}}
  timeout: {{processing: 30, gracefulShutdown: 10}}
  workload:
    template:
      spec:
        containers:
        - name: asya-runtime
          workingDir: {HERE}
          env:
          - {{name: ASYA_HANDLER, value: e2e_handlers.{handler}}}
          - {{name: ASYA_HANDLER_THREAD_SAFE, value: "true"}}
"""


class Up:
    def __init__(self, build, workdir):
        self.binary = build / "src" / "cli" / "asya"
        if not self.binary.exists():
            pytest.fail(f"{self.binary} not built: ninja -C {build} asya asya-sidecar asya-gateway")
        self.workdir = workdir
        self.state = workdir / ".asya"
        # The 1,000 concurrent client connections of the test below plus the sidecars' own report
        # connections can pass the gateway's default cap of 1,024 open connections (which has its
        # own test in tests/adversarial): the cap is raised so that test checks the answers.
        self.env = dict(os.environ, ASYA_STATE_DIR=str(self.state), ASYA_GATEWAY_MAX_CONNECTIONS="4096")
        for key in ("ASYA_TRANSPORT", "ASYA_RABBITMQ_URL", "ASYA_SQS_ENDPOINT", "ASYA_QUEUE_PREFIX"):
            self.env.pop(key, None)

    def run(self, *args, timeout=120):
        return subprocess.run([str(self.binary), *map(str, args)], cwd=self.workdir, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def result(self, status, envelope_id):
        path = self.state / "results" / status / f"{envelope_id}.json"
        wait_until(path.exists, 20, f"result file {path}")
        return json.loads(path.read_text())

    def logs(self):
        out = []
        for path in sorted((self.state / "logs").rglob("*.log")):
            out.append(f"--- {path}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(out)


@pytest.fixture(scope="module")
def up(build_path):
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="asya-up-", dir="/tmp"))
    manifests = workdir / "manifests"
    manifests.mkdir()
    (manifests / "routes.yaml").write_text(ROUTES)
    for name, (handler, replicas, concurrency) in ACTORS.items():
        (manifests / f"{name}.yaml").write_text(manifest(name, handler, replicas, concurrency))
    stack = Up(build_path, workdir)
    started = stack.run("up", "--detach", "--gateway-port", 0, manifests)
    try:
        assert started.returncode == 0, started.stderr + stack.logs()
        stack.url = started.stdout.strip()
        assert stack.url.startswith("http://127.0.0.1:"), started.stdout
        yield stack
    finally:
        down = stack.run("down", "--timeout", 60, timeout=120)
        if down.returncode != 0:
            print(down.stderr + stack.logs())
        shutil.rmtree(workdir, ignore_errors=True)


def call(up, name, arguments, timeout=120):
    status, answer, _ = http_json("POST", up.url + "/tools/call", {"name": name, "arguments": arguments},
                                  timeout=timeout)
    assert status == 200, answer
    return answer


def test_pipeline_result(up):
    answer = call(up, "pipeline", {"value": 10})
    assert answer["isError"] is False, answer
    assert answer["structuredContent"] == {"value": 25}
    assert json.loads(answer["content"][0]["text"]) == {"value": 25}


def test_fan_out_job_result(up):
    info = call(up, "fanout", {"count": 3})["structuredContent"]
    job_id = info["job_id"]
    stream = SseStream(up.url + info["stream_url"], timeout=60)
    events = [data for _, _, data in stream.events()]
    stream.close()
    assert events[-1]["status"] == "succeeded"
    status, job, _ = http_json("GET", f"{up.url}/envelopes/{job_id}")
    assert status == 200 and job["status"] == "succeeded"
    assert [r["index"] for r in job["result"]] == [0, 1, 2]
    assert all(r["done"] for r in job["result"])
    for branch in (job_id, job_id + "-1", job_id + "-2"):
        assert up.result("succeeded", branch)["payload"]["done"] is True


def test_error_job(up):
    answer = call(up, "error", {})
    assert answer["isError"] is True
    failure = answer["structuredContent"]
    assert failure["status"] == "failed" and failure["error"] == "processing_error"
    assert failure["error_details"]["message"] == "asked to fail: should_fail=True"
    assert up.result("failed", failure["job_id"])["payload"]["error"] == "processing_error"


def final_reports(up):
    text = http("GET", up.url + "/metrics")[2].decode()
    match = re.search(r'^asya_gateway_sidecar_reports_total\{kind="final"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_timeout_job(up):
    before = final_reports(up)
    started = time.monotonic()
    answer = call(up, "timeout", {"sleep_seconds": 12})
    took = time.monotonic() - started
    assert answer["isError"] is True and answer["content"][0]["text"] == "timed out"
    # The tool's 2 s timeout, not the handler's 12 s (the margin is for a loaded machine).
    assert took < 10, took
    job_id = answer["structuredContent"]["job_id"]
    status, job, _ = http_json("GET", f"{up.url}/envelopes/{job_id}")
    assert job["status"] == "failed" and job["error"] == "timed out"
    # The envelope still reaches an end actor (happy-end, or error-end as deadline_exceeded), which
    # reports it; that late final report never turns the job back.
    # (This module's tests run one after another, so the count of final reports moves only here.)
    wait_until(lambda: final_reports(up) > before, 60, "the end actor's late final report")
    assert http_json("GET", f"{up.url}/envelopes/{job_id}")[1]["status"] == "failed"


CONCURRENT_CALLS = 1000


def test_a_thousand_concurrent_calls_each_get_their_own_result(up):
    messages = [f"call-{i}" for i in range(CONCURRENT_CALLS)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(CONCURRENT_CALLS) as pool:
        answers = list(pool.map(lambda m: call(up, "echo", {"message": m}, timeout=300), messages))
    took = time.monotonic() - started
    failed = [a for a in answers if a["isError"]]
    assert not failed, failed[:3]
    assert [a["structuredContent"] for a in answers] == [{"echoed": m} for m in messages]
    print(f"{CONCURRENT_CALLS} concurrent echo calls through asya up: {took:.1f}s")
