"""Fixtures for the gateway suite: a real PostgreSQL 15 server, free ports, a running
`asya-gateway` process with the SQLite transport, and small HTTP helpers (standard library only)."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from services import postgres as postgres_service  # noqa: E402
from services.postgres import PG_BIN  # noqa: E402,F401  (the gateway tests import it from here)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http(method, url, body=None, headers=None, timeout=30):
    """Returns (status, headers, body bytes); never raises for HTTP error statuses."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        data = data.encode() if isinstance(data, str) else data
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def http_json(method, url, body=None, headers=None, timeout=30):
    status, response_headers, data = http(method, url, body, headers, timeout)
    return status, (json.loads(data) if data else None), response_headers


class Gateway:
    """A running asya-gateway process."""

    def __init__(self, binary, workdir, routes_yaml, extra_env=None):
        self.binary = binary
        self.workdir = pathlib.Path(workdir)
        self.routes = self.workdir / "routes.yaml"
        self.routes.write_text(routes_yaml)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.queues_db = self.workdir / "queues.db"
        self.env = dict(os.environ)
        self.env.update({
            "ASYA_CONFIG_PATH": str(self.routes),
            "ASYA_GATEWAY_PORT": str(self.port),
            "ASYA_GATEWAY_HOST": "127.0.0.1",
            "ASYA_GATEWAY_DB": str(self.workdir / "gateway.db"),
            "ASYA_TRANSPORT": "sqlite",
            "ASYA_SQLITE_PATH": str(self.queues_db),
            "ASYA_LOG_LEVEL": "info",
        })
        self.env.update(extra_env or {})
        self.process = None
        self.log = self.workdir / "gateway.log"

    def internal_headers(self):
        token = self.env.get("ASYA_GATEWAY_INTERNAL_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def client_headers(self):
        token = self.env.get("ASYA_GATEWAY_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def start(self):
        self.process = subprocess.Popen([str(self.binary)], env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=open(self.log, "ab"))

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                return http("GET", self.url + "/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_until(ready, what="gateway /healthz")
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else None


@pytest.fixture(scope="session")
def gateway_binary(build_path):
    path = build_path / "src" / "gateway" / "asya-gateway"
    if not path.exists():
        pytest.fail(f"{path} not built: ninja -C {build_path} asya-gateway")
    return path


@pytest.fixture(scope="session")
def queue_tool(build_path):
    """The asya-queue test tool (tests/tools): send/receive through the Transport interface."""
    path = build_path / "tests" / "tools" / "asya-queue"
    if not path.exists():
        pytest.fail(f"{path} not built: ninja -C {build_path} asya-queue")
    return path


class FakeActor:
    """Plays the sidecars of a pipeline: takes envelopes from the actor queue with asya-queue and
    reports progress and the final status to the gateway as PROTOCOL §7 says."""

    def __init__(self, queue_tool, gateway):
        self.queue_tool = queue_tool
        self.gateway = gateway

    def receive(self, actor, wait="10s"):
        result = subprocess.run([str(self.queue_tool), "recv", "asya-" + actor, "--max", "1", "--wait", wait,
                                 "--ack"], env=self.gateway.env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        assert lines, f"no envelope arrived on asya-{actor} within {wait}"
        return json.loads(json.loads(lines[0])["body"])

    def progress(self, envelope_id, actors, index, status, message=""):
        body = {"actors": actors, "current_actor_idx": index, "status": status}
        if message:
            body["message"] = message
        return http_json("POST", f"{self.gateway.url}/envelopes/{envelope_id}/progress", body,
                         self.gateway.internal_headers())

    def final(self, envelope_id, status, result=None, error=None):
        body = {"id": envelope_id, "status": status}
        if result is not None:
            body["result"] = result
        if error is not None:
            body["error"] = error
        return http_json("POST", f"{self.gateway.url}/envelopes/{envelope_id}/final", body,
                         self.gateway.internal_headers())

    def run_pipeline(self, envelope):
        """Reports every actor of the route as done and the final success with the payload."""
        actors = envelope["route"]["actors"]
        for index in range(len(actors)):
            for status in ("received", "processing", "completed"):
                self.progress(envelope["id"], actors, index, status)
        return self.final(envelope["id"], "succeeded", {"echo": envelope["payload"]})


ROUTES = """
defaults:
  timeout: 60
routes:
  pipe: [first, second]
tools:
  - name: echo
    description: Echo the arguments
    parameters:
      text: {type: string, required: true, description: Text to echo}
      count: {type: integer, default: 2}
      mode: {type: string, options: [fast, slow], default: fast}
    route: [echo]
    progress: true
  - name: pipeline
    description: Two actors
    parameters:
      text: {type: string, required: true}
    route: pipe
    async: true
    progress: true
  - name: quick
    description: Times out fast
    parameters: {}
    route: [never]
    timeout: 1
"""


@pytest.fixture
def gateway(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES).start()
    yield gw
    gw.stop()


@pytest.fixture
def actor(queue_tool, gateway):
    return FakeActor(queue_tool, gateway)
