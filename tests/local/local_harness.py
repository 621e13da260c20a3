"""Harness of the tests/local suite: end-to-end tests of `asya up` and the `asya` CLI with a real
supervisor, sidecars and runtimes. (A unique module name, so other suites' conftest.py never
shadow it.) Each test gets its own state directory (tmp_path/.asya): tests run in parallel.

The `asya` fixture runs on SQLite (the manifests' transport). The `asya_on` fixture is
parameterised over TRANSPORTS (sqlite, rabbitmq, sqs) and runs `asya up --transport T`: the
session's RabbitMQ broker (per xdist worker, shared with the other suites: tests/conftest.py) with
a fresh vhost per test, the session's moto server reset before each test (tests of one worker run
one after another). A transport whose
server cannot be started here is skipped with the reason.
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
HANDLERS = pathlib.Path(__file__).resolve().parent / "handlers"

sys.path.insert(0, str(REPO / "tests"))
from services import rabbitmq as rabbitmq_service  # noqa: E402

TRANSPORTS = ["sqlite", "rabbitmq", "sqs"]
# Variables only sidecars (and the gateway) may see: the runtime of a handler never gets them.
BROKER_SECRETS = ["ASYA_RABBITMQ_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]


def wait_for(condition, timeout, what, interval=0.05):
    """Polls `condition` until it returns a truthy value; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def manifest(name, handler, workdir=HANDLERS, scaling=None, env=None, timeout=None,
             command=None, sidecar=None, batching=None):
    scaling = scaling or {}
    lines = [
        "apiVersion: asya.sh/v1alpha1",
        "kind: AsyncActor",
        f"metadata: {{name: {name}}}",
        "spec:",
        "  scaling: " + json.dumps(scaling),
    ]
    if timeout:
        lines.append("  timeout: " + json.dumps(timeout))
    if sidecar:
        lines.append("  sidecar: " + json.dumps(sidecar))
    if batching:
        lines.append("  batching: " + json.dumps(batching))
    lines += [
        "  workload:",
        "    template:",
        "      spec:",
        "        containers:",
        "        - name: asya-runtime",
        f"          workingDir: {workdir}",
    ]
    if command:
        lines.append("          command: " + json.dumps(command))
    lines.append("          env:")
    lines.append(f"          - {{name: ASYA_HANDLER, value: {handler}}}")
    for key, value in (env or {}).items():
        lines.append(f"          - {{name: {key}, value: {json.dumps(value)}}}")
    return "\n".join(lines) + "\n"


def build_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build")).resolve()


class Asya:
    """Runs the `asya` binary against one state directory."""

    def __init__(self, workdir: pathlib.Path, transport=None, transport_env=None):
        self.workdir = workdir
        self.state = workdir / ".asya"
        self.binary = build_dir() / "src" / "cli" / "asya"
        if not self.binary.exists():
            pytest.fail(f"{self.binary} not built: ninja -C {build_dir()} asya asya-sidecar")
        self.env = dict(os.environ, ASYA_STATE_DIR=str(self.state))
        for key in ["ASYA_TRANSPORT", "ASYA_RABBITMQ_URL", "ASYA_SQS_ENDPOINT", "ASYA_QUEUE_PREFIX"]:
            self.env.pop(key, None)
        # None: the manifests' own transport (sqlite). Else `asya up --transport`, and the client
        # commands use it too once the supervisor is gone.
        self.transport = transport
        if transport:
            self.env["ASYA_TRANSPORT"] = transport
        self.env.update(transport_env or {})
        self.started = []

    def run(self, *args, timeout=60, check=None):
        result = subprocess.run([str(self.binary), *map(str, args)], cwd=self.workdir,
                                env=self.env, capture_output=True, text=True, timeout=timeout)
        if check is not None and result.returncode != check:
            pytest.fail(f"asya {' '.join(map(str, args))} exited {result.returncode}, "
                        f"expected {check}\nstdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def up_detached(self, *args):
        transport = ["--transport", self.transport] if self.transport else []
        result = self.run("up", "--detach", *transport, *args, check=0, timeout=90)
        self.started.append(True)
        return result

    def gateway_url(self):
        return (self.status() or {}).get("gateway", {}).get("url")

    def post(self, path, body, timeout=60):
        """POSTs JSON to the gateway; returns (status, decoded JSON answer)."""
        request = urllib.request.Request(self.gateway_url() + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"},
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def up_foreground(self, *paths):
        proc = subprocess.Popen([str(self.binary), "up", "--plain", *map(str, paths)],
                                cwd=self.workdir, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.started.append(proc)
        wait_for(lambda: self.status() is not None or proc.poll() is not None, 30,
                 "the supervisor to write status.json")
        return proc

    def status(self):
        try:
            return json.loads((self.state / "status.json").read_text())
        except (OSError, ValueError):
            return None

    def actor(self, name):
        status = self.status()
        if not status:
            return None
        return next((a for a in status["actors"] if a["name"] == name), None)

    def send(self, *args, check=0, timeout=60):
        return self.run("send", *args, check=check, timeout=timeout)

    def results(self, status="succeeded"):
        folder = self.state / "results" / status
        if not folder.is_dir():
            return {}
        out = {}
        for path in folder.glob("*.json"):
            if path.name.startswith("."):
                continue
            try:
                out[path.name[:-5]] = json.loads(path.read_text())
            except ValueError:
                pass  # being replaced; read again later
        return out

    def all_pids(self):
        status = self.status() or {"actors": []}
        pids = [status.get("pid", 0)]
        for actor in status["actors"]:
            for p in actor.get("processes", []):
                pids += [p["sidecar"], p["runtime"]]
        return [p for p in pids if p]

    def stop(self):
        for item in self.started:
            if item is True:
                self.run("down", "--timeout", 60, timeout=90)
            elif item.poll() is None:
                item.send_signal(signal.SIGTERM)
                try:
                    item.wait(60)
                except subprocess.TimeoutExpired:
                    item.kill()
        self.started.clear()


@pytest.fixture
def asya(tmp_path):
    instance = Asya(tmp_path)
    yield instance
    instance.stop()


# The session's broker and moto server are shared with the other suites (tests/conftest.py).
@pytest.fixture(scope="session")
def local_rabbitmq(rabbitmq_broker):
    return rabbitmq_broker


@pytest.fixture(scope="session")
def local_moto(moto_server):
    return moto_server


@pytest.fixture(params=TRANSPORTS)
def asya_on(request, tmp_path):
    """An Asya whose `asya up` runs on each transport in turn, against a fresh broker namespace."""
    transport = request.param
    env = {}
    if transport == "rabbitmq":
        env = {"ASYA_RABBITMQ_URL": request.getfixturevalue("local_rabbitmq").new_vhost()}
    elif transport == "sqs":
        m = request.getfixturevalue("local_moto")
        m.reset()
        env = dict(m.env(), ASYA_SQS_WAIT_TIME_SECONDS="1")
    instance = Asya(tmp_path, transport=transport, transport_env=env)
    yield instance
    instance.stop()


def _parent_and_cmdline(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return ppid, f.read()


def process_environment(pid, timeout=30):
    """The environment of a running child of the supervisor as a dict. The supervisor lists a
    child as soon as it is forked, so this first waits until the child has exec'd (its command
    line is no longer its parent's): before that, /proc/PID/environ is the supervisor's."""
    def execed():
        ppid, cmdline = _parent_and_cmdline(pid)
        return cmdline != _parent_and_cmdline(ppid)[1]
    wait_for(execed, timeout, f"process {pid} to exec its program")
    with open(f"/proc/{pid}/environ", "rb") as f:
        entries = f.read().split(b"\0")
    return dict(e.decode(errors="replace").split("=", 1) for e in entries if b"=" in e)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not a running process.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="session")
def repo():
    return REPO
