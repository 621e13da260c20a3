"""Harness for the sidecar integration tests (fixtures are exported by conftest.py): real asya-sidecar processes, real Python runtimes,
a real queue transport (parameterised over TRANSPORTS: sqlite, plus rabbitmq and sqs when their
servers can be started here), and the asya-queue tool to put messages in and take them out.

Every test gets its own temporary directory (queue database, sockets, results, markers), so the
suite is parallel-safe under pytest-xdist. Nothing sleeps to hope: every wait polls a condition
with a deadline and fails with what it was waiting for.
"""
import contextlib
import http.server
import json
import os
import pathlib
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import time
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
HERE = pathlib.Path(__file__).resolve().parent
RUNTIME = REPO / "runtimes" / "python" / "asya_runtime.py"

TRANSPORTS = ["sqlite"]

# --- network transports: servers started by tests/services/ (one per session, one vhost per test) ---
sys.path.insert(0, str(REPO / "tests"))
from services import rabbitmq as rabbitmq_service  # noqa: E402

if rabbitmq_service.available():
    TRANSPORTS.append("rabbitmq")


# The session's broker and moto server are tests/conftest.py's rabbitmq_broker and moto_server.
# sqs: moto is reset before each test so every test starts with no queues; moto does not check
# credentials.
from services import moto as moto_service  # noqa: E402

if moto_service.available():
    TRANSPORTS.append("sqs")


def transport_env(request, transport):
    """Environment variables pointing a test's processes at a fresh instance of `transport`."""
    if transport == "rabbitmq":
        return {"ASYA_RABBITMQ_URL": request.getfixturevalue("rabbitmq_broker").new_vhost()}
    if transport == "sqs":
        m = request.getfixturevalue("moto_server")
        m.reset()
        return dict(m.env(), ASYA_SQS_WAIT_TIME_SECONDS="1")
    return {}
# --- end of network transports ---


def wait_for(condition, timeout, what, interval=0.02):
    """Polls condition() until it returns a truthy value; fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)



def body_files(cluster):
    """The SQLite transport's body files of `cluster` (paths, sorted), in `<db>.bodies/`."""
    directory = pathlib.Path(cluster.env["ASYA_SQLITE_PATH"] + ".bodies")
    return sorted(p for p in directory.iterdir()) if directory.exists() else []


def named_body_files(cluster):
    """The body files rows of the queue database name."""
    db = sqlite3.connect(cluster.env["ASYA_SQLITE_PATH"], timeout=10)
    try:
        return {row[0] for row in db.execute("SELECT body_file FROM messages WHERE body_file IS NOT NULL")}
    finally:
        db.close()

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Queues:
    """asya-queue on the test's transport."""

    def __init__(self, tool, env):
        self.tool = str(tool)
        self.env = env

    def _run(self, *args, check=True, input_bytes=None):
        proc = subprocess.run([self.tool, *args], env=self.env, capture_output=True, timeout=60,
                              input=input_bytes)
        if check and proc.returncode != 0:
            raise AssertionError("asya-queue %s failed (%d): %s" % (" ".join(args[:2]), proc.returncode,
                                                                    proc.stderr.decode(errors="replace")))
        return proc

    def ensure(self, queue):
        self._run("ensure", queue)

    def send(self, queue, body, delay=None):
        """Sends a str/bytes body, or a dict/list serialised compactly."""
        if not isinstance(body, (str, bytes)):
            body = json.dumps(body, separators=(",", ":"))
        if isinstance(body, str):
            body = body.encode()
        if len(body) > 100_000 or body.startswith(b"@"):
            fd, path = tempfile.mkstemp(dir=self.env["TEST_TMP"], suffix=".body")
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            args = ["send", queue, "@" + path]
        else:
            args = ["send", queue, body.decode()]
        if delay:
            args += ["--delay", delay]
        self._run(*args)

    def send_many(self, queue, bodies):
        """Sends every body (as send() would, in order, each durable before the next) with one
        `asya-queue send --lines` process. One process per message cost 0.1-0.3 s each on a
        loaded machine (start-up and a broker connection): minutes for a backlog of hundreds."""
        lines = []
        for body in bodies:
            if not isinstance(body, (str, bytes)):
                body = json.dumps(body, separators=(",", ":"))
            if isinstance(body, bytes):
                body = body.decode()
            if "\n" in body or not body:
                raise ValueError("send_many sends one message per line: a body is empty or has a line break")
            lines.append(body)
        if not lines:
            return
        fd, path = tempfile.mkstemp(dir=self.env["TEST_TMP"], suffix=".lines")
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        self._run("send", queue, "@" + path, "--lines")
        os.unlink(path)

    def recv(self, queue, max_messages=100, wait=0.0, ack=True):
        args = ["recv", queue, "--max", str(max_messages), "--wait", "%dms" % int(wait * 1000)]
        if ack:
            args.append("--ack")
        out = self._run(*args).stdout.decode()
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def collect(self, queue, count, timeout=30.0):
        """Receives (and acks) until `count` messages came from `queue`; returns them, bodies parsed
        when they are JSON. Fails after `timeout` seconds with what arrived so far."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("timed out waiting for %d messages on %s; got %d: %s" %
                            (count, queue, len(got), [m["body"][:200] for m in got]))
            got += self.recv(queue, count - len(got), wait=min(left, 2.0))
        for m in got:
            try:
                m["json"] = json.loads(m["body"])
            except ValueError:
                m["json"] = None
        return got

    def stats(self, queue):
        return json.loads(self._run("stats", queue).stdout)

    def empty(self, queue):
        s = self.stats(queue)
        return s["ready"] == 0 and s["in_flight"] == 0 and s["delayed"] == 0


class Process:
    def __init__(self, args, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.popen = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("process %s did not exit within %.1fs; log:\n%s" %
                        (self.popen.args[-1], timeout, self.text()[-3000:]))

    def stop(self):
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)
        self.log.close()

    def text(self):
        if not self.log.closed:  # closed by stop(): the file is complete
            self.log.flush()
        return pathlib.Path(self.log_path).read_text(errors="replace")


class Actor:
    """One actor replica: a Python runtime (optionally restarted whenever it dies) and a sidecar."""

    def __init__(self, cluster, name, handler=None, env=None, runtime=True, supervise=False, start_sidecar=True,
                 runtime_cmd=None):
        self.cluster = cluster
        self.name = name
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="a-", dir=cluster.tmp))
        self.socket = str(self.dir / "rt.sock")
        self.metrics_port = free_port()
        self.env = dict(cluster.env)
        self.env.update({
            "ASYA_ACTOR_NAME": name,
            "ASYA_SOCKET_PATH": self.socket,
            "ASYA_METRICS_ADDR": "127.0.0.1:%d" % self.metrics_port,
            "ASYA_RUNTIME_READY_TIMEOUT": "30s",
            "ASYA_RETRY_BACKOFF": "50ms",
            "ASYA_RETRY_BACKOFF_MAX": "200ms",
            "ASYA_RESULT_STORE": "file://" + str(cluster.results),
        })
        if handler:
            self.env["ASYA_HANDLER"] = cluster.handler_module + "." + handler
        self.env.update(env or {})
        self.runtime_cmd = runtime_cmd or [sys.executable, str(RUNTIME)]
        self.runtime = None
        self.sidecar = None
        self.runtime_starts = 0
        self._supervise = supervise
        self._stopping = False
        self._supervisor = None
        if runtime:
            self.start_runtime()
            if supervise:
                self._supervisor = threading.Thread(target=self._supervise_loop, daemon=True)
                self._supervisor.start()
        if start_sidecar:
            self.start_sidecar()

    def start_runtime(self):
        self.runtime_starts += 1
        self.runtime = Process(self.runtime_cmd, self.env, str(self.dir / "runtime.log"))

    def _supervise_loop(self):
        while not self._stopping:
            if self.runtime is not None and not self.runtime.alive() and not self._stopping:
                self.start_runtime()
            time.sleep(0.05)

    def start_sidecar(self, wait_ready=True):
        self.sidecar = Process([str(self.cluster.sidecar_bin)], self.env, str(self.dir / "sidecar.log"))
        if wait_ready:
            self.wait_ready()
        return self.sidecar

    def readyz(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.metrics_port, timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout=30):
        port_retries = [3]

        def ready():
            if not self.sidecar.alive():
                log = self.sidecar.text()
                if "cannot listen: Address already in use" in log and port_retries[0] > 0:
                    # free_port() only found a port free: another process of a parallel test
                    # took it before the sidecar bound it. Another port, the same sidecar.
                    port_retries[0] -= 1
                    self.sidecar.stop()  # exited already: closes its log
                    self.metrics_port = free_port()
                    self.env["ASYA_METRICS_ADDR"] = "127.0.0.1:%d" % self.metrics_port
                    self.sidecar = Process([str(self.cluster.sidecar_bin)], self.env,
                                           str(self.dir / "sidecar.log"))
                    return False
                pytest.fail("sidecar %s exited with %s before it was ready; log:\n%s" %
                            (self.name, self.sidecar.popen.returncode, log[-3000:]))
            return self.readyz()
        wait_for(ready, timeout, "sidecar %s to be ready (/readyz)" % self.name)

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=5) as r:
            return r.read().decode()

    def stop(self):
        self._stopping = True
        if self._supervisor:
            self._supervisor.join(timeout=5)
        for p in (self.sidecar, self.runtime):
            if p:
                p.stop()

    def logs(self):
        out = ""
        for p in (self.sidecar, self.runtime):
            if p:
                out += "--- %s\n%s\n" % (p.log_path, p.text()[-4000:])
        return out


class Cluster:
    """The processes of one test on one transport. Handlers are `handler_module`.<name>, imported
    from `handlers_dir` (default: this suite's handlers.py); other suites (tests/e2e_gateway) pass
    their own."""

    def __init__(self, transport, build, tmp, extra_env=None, handlers_dir=HERE, handler_module="handlers"):
        self.transport = transport
        self.handler_module = handler_module
        self.tmp = tmp
        self.results = pathlib.Path(tmp) / "results"
        self.markers = pathlib.Path(tmp) / "markers"
        self.markers.mkdir()
        self.sidecar_bin = build / "src" / "sidecar" / "asya-sidecar"
        tool = build / "tests" / "tools" / "asya-queue"
        for binary in (self.sidecar_bin, tool):
            if not binary.exists():
                pytest.fail("%s is missing: build it first (ninja asya-sidecar asya-queue)" % binary)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_")}
        self.env.update({
            "ASYA_TRANSPORT": transport,
            "ASYA_LOG_LEVEL": "info",
            "PYTHONPATH": str(handlers_dir),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TEST_MARKER_DIR": str(self.markers),
            "TEST_TMP": str(tmp),
        })
        if transport == "sqlite":
            self.env["ASYA_SQLITE_PATH"] = str(pathlib.Path(tmp) / "queues.db")
        elif extra_env:
            self.env.update(extra_env)
        else:
            raise ValueError("no test setup for transport %s" % transport)
        self.queues = Queues(tool, self.env)
        self.actors = []

    def actor(self, name, handler=None, **kwargs):
        actor = Actor(self, name, handler, **kwargs)
        self.actors.append(actor)
        return actor

    def markers_named(self, prefix):
        return sorted(p.name for p in self.markers.iterdir()
                      if p.name.startswith(prefix) and not p.name.endswith(".tmp"))

    def stop(self):
        for a in self.actors:
            a.stop()

    def logs(self):
        return "\n".join(a.logs() for a in self.actors)


@contextlib.contextmanager
def running_cluster(request, build_path, transport, env=None, prefix="asya-sc-"):
    """A Cluster for one test in its own short temp dir (Unix socket paths are limited): its
    actors' logs go to stderr when the test failed; stopped and removed afterwards."""
    tmp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    c = Cluster(transport, build_path, tmp, env or {})
    try:
        yield c
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            sys.stderr.write(c.logs())
        c.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(params=TRANSPORTS)
def cluster(request, build_path):
    with running_cluster(request, build_path, request.param, transport_env(request, request.param)) as c:
        yield c


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


class RecordingGateway:
    """A tiny HTTP server recording every POST (path, parsed JSON body). `on_post(path, body)`, when
    set, runs before the request is recorded and answered (e.g. to play a slow gateway and look at
    the queues meanwhile). `accept_progress_in_checks`: answer a cancellation check that carries a
    progress report as the real gateway does (`"progress": "accepted"`); otherwise as an older
    gateway that ignores it. A batch of reports (POST /envelopes/reports, PROTOCOL §7) is recorded
    as the single reports it holds, in order (`batches` counts the batch requests), and answered
    as the real gateway does. So are the earlier reports a check carries ("reports", PROTOCOL §7),
    recorded before the check itself (`carried` counts the checks that carried some), when
    `accept_progress_in_checks` is set; then a check of an id in `cancelled_jobs` answers
    "cancelled": true. `http_requests` counts the requests."""

    def __init__(self):
        self.requests = []
        self.batches = 0
        self.lock = threading.Lock()
        self.on_post = None
        self.accept_progress_in_checks = False
        self.carried = 0
        self.http_requests = 0
        self.cancelled_jobs = set()  # ids whose checks answer "cancelled": true
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if outer.on_post:
                    outer.on_post(self.path, json.loads(body))
                with outer.lock:
                    outer.http_requests += 1
                if self.path == "/envelopes/reports":
                    items = json.loads(body)
                    with outer.lock:
                        outer.batches += 1
                        for item in items:
                            outer.requests.append(("/envelopes/%s/%s" % (
                                urllib.parse.quote(item["id"], safe="-_.~"), item["kind"]), item["report"]))
                    reply = json.dumps({"results": [{"status": 200, "answer": {"status": "ok"}}
                                                    for _ in items]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    return
                parsed = json.loads(body)
                is_check = self.path.endswith("/check")
                take = outer.accept_progress_in_checks and is_check
                with outer.lock:
                    if take and "reports" in parsed:
                        outer.carried += 1
                        for item in parsed["reports"]:
                            outer.requests.append(("/envelopes/%s/%s" % (
                                urllib.parse.quote(item["id"], safe="-_.~"), item["kind"]), item["report"]))
                    outer.requests.append((self.path, parsed))
                reply = b'{"status":"ok"}'
                if take:
                    job = urllib.parse.unquote(self.path.split("/")[2])
                    cancelled = job in outer.cancelled_jobs
                    answer = {"job_status": "cancelled" if cancelled else "running", "cancelled": cancelled}
                    if "progress" in parsed:
                        answer["progress"] = "accepted"
                    if "reports" in parsed:
                        answer["reports"] = "accepted"
                    reply = json.dumps(answer).encode()
                self.send_response(201 if self.path == "/envelopes" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    g = RecordingGateway()
    yield g
    g.close()
