"""Process-level checks of asya_runtime that the shared conformance suite (tests/runtime_conformance)
does not make: what the runtime logs (never a payload at info or above, for the Python and the
C++ runtime), running as `python3 -m asya_runtime` with ASYA_SOCKET_DIR, start-up failures caused by
bad environment values, and Python 3.8 compatibility (the source parses with the 3.8 grammar, and
the runtime serves requests under a real Python 3.8 when one is installed)."""
import ast
import glob
import json
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
RUNTIME_DIR = HERE.parent
RUNTIME_FILE = RUNTIME_DIR / "asya_runtime.py"
REPO = RUNTIME_DIR.parent.parent
CONFORMANCE_DIR = REPO / "tests" / "runtime_conformance"
START_TIMEOUT = 20.0
# Marks every payload byte sent in the logging tests; it must never appear in a log line at info+.
SECRET = "s3cr3t-payload-7f3a9c"


def build_dir():
    return pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build")).resolve()


class Runtime:
    """One runtime process on a socket in its own short temp dir; stderr captured to a file."""

    def __init__(self, command, env, socket_name="rt.sock", use_socket_dir=False):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="asya-", dir="/tmp"))
        self.socket_path = self.dir / socket_name
        self.ready_path = self.dir / "runtime-ready"
        self.stderr_path = self.dir / "stderr.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_")}
        full_env["PYTHONDONTWRITEBYTECODE"] = "1"
        if use_socket_dir:
            full_env["ASYA_SOCKET_DIR"] = str(self.dir)
        else:
            full_env["ASYA_SOCKET_PATH"] = str(self.socket_path)
        full_env.update(env)
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(command, env=full_env, cwd=str(self.dir), stdin=subprocess.DEVNULL,
                                            stdout=stderr, stderr=stderr)

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail("runtime exited with %s before becoming ready:\n%s" % (self.process.returncode, self.stderr()))
            if self.ready_path.exists() and self.socket_path.exists():
                return self
            time.sleep(0.01)
        pytest.fail("runtime not ready within %.0f s:\n%s" % (START_TIMEOUT, self.stderr()))

    def wait_exit(self):
        try:
            return self.process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("runtime still running %.0f s later:\n%s" % (START_TIMEOUT, self.stderr()))

    def connect(self):
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(30)
        connection.connect(str(self.socket_path))
        return connection

    def call(self, body):
        """Sends one raw request body on a fresh connection; returns the decoded response."""
        with self.connect() as connection:
            connection.sendall(struct.pack(">I", len(body)) + body)
            return json.loads(recv_frame(connection))

    def stop(self):
        """SIGTERM, expect exit 0 with the socket and ready file removed."""
        self.process.send_signal(signal.SIGTERM)
        assert self.wait_exit() == 0, self.stderr()
        assert not self.socket_path.exists() and not self.ready_path.exists()

    def cleanup(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def recv_exact(connection, size):
    data = bytearray()
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def recv_frame(connection):
    header = recv_exact(connection, 4)
    assert header is not None, "runtime closed the connection instead of answering"
    body = recv_exact(connection, struct.unpack(">I", header)[0])
    assert body is not None, "runtime closed the connection inside a frame"
    return body


def read_until_closed(connection, timeout=10.0):
    connection.settimeout(timeout)
    try:
        while connection.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass


@pytest.fixture
def runtimes():
    started = []

    def start(command, env, **kwargs):
        runtime = Runtime(command, env, **kwargs)
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.cleanup()


def envelope_body(payload, actors=("echo",), **fields):
    body = {"id": fields.pop("id", "log-1"), "route": {"actors": list(actors), "current": 0}, "payload": payload}
    body.update(fields)
    return json.dumps(body).encode()


# ------------------------------------------------------------------------------------------
# Logging: payload contents never at info or above.


def runtime_command(kind):
    if kind == "python":
        return [sys.executable, str(RUNTIME_FILE)]
    binary = build_dir() / "tests" / "runtime_conformance" / "asya-conformance-runtime"
    if not binary.is_file():
        pytest.fail("C++ conformance runtime not built: expected %s (ASYA_BUILD_DIR=%s)" % (binary, build_dir()))
    return [str(binary)]


def handler_env(kind, name, mode=None):
    env = {"ASYA_HANDLER": "conformance_handlers." + name, "ASYA_LOG_LEVEL": "debug",
           "ASYA_MAX_MESSAGE_BYTES": "64KiB", "PYTHONPATH": str(CONFORMANCE_DIR)}
    if mode:
        env["ASYA_HANDLER_MODE"] = mode
    return env


def assert_secret_only_at_debug(stderr):
    """Every stderr line is a JSON log record; any that mentions SECRET must be at debug level."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "runtime logged nothing at all (expected at least the ready line)"
    for line in lines:
        record = json.loads(line)
        assert {"ts", "level", "msg"} <= set(record), line
        if SECRET in line:
            assert record["level"] == "debug", "payload contents logged at %s: %s" % (record["level"], line)


@pytest.mark.parametrize("kind", ["python", "cpp"])
def test_payload_contents_are_never_logged_at_info_or_above(runtimes, kind):
    """Every path that could put a request's bytes in a log: normal result, fan-out, handler
    exception whose message quotes the payload, invalid JSON / UTF-8 / envelope around the payload,
    a truncated frame and an oversize frame. Logged at debug (the most verbose level)."""
    runtime = runtimes(runtime_command(kind), handler_env(kind, "echo")).wait_ready()
    assert runtime.call(envelope_body({"message": SECRET}))[0]["payload"] == {"echoed": SECRET}
    invalid = [
        b'{"id":"x","route":{"actors":["a"]},"payload":"' + SECRET.encode() + b'"',  # not JSON
        b'{"id":"x","route":{"actors":["a"]},"payload":"' + SECRET.encode() + b'\xff"}',  # not UTF-8
        b'{"id":"x","payload":"' + SECRET.encode() + b'"}',  # no route
        b'{"id":"x","route":{"actors":["a"],"current":"' + SECRET.encode() + b'"},"payload":1}',
    ]
    for body in invalid:
        response = runtime.call(body)
        assert response[0]["error"] == "msg_parsing_error", response
    with runtime.connect() as connection:  # truncated frame
        connection.sendall(struct.pack(">I", 1000) + b'{"payload":"' + SECRET.encode())
        connection.shutdown(socket.SHUT_WR)
        read_until_closed(connection)
    with runtime.connect() as connection:  # oversize frame
        try:
            connection.sendall(struct.pack(">I", 1 << 20) + SECRET.encode() * 100)
        except (BrokenPipeError, ConnectionResetError):
            pass
        read_until_closed(connection)
    runtime.stop()

    failing = runtimes(runtime_command(kind), handler_env(kind, "fail")).wait_ready()
    assert failing.call(envelope_body({"message": SECRET}))[0]["error"] == "processing_error"
    enveloped = runtimes(runtime_command(kind), handler_env(kind, "envelope_edit", mode="envelope")).wait_ready()
    response = enveloped.call(envelope_body({"edit": "change_past", "secret": SECRET}, actors=("a", "b")))
    assert response[0]["error"] == "processing_error", response
    failing.stop()
    enveloped.stop()
    for process in (runtime, failing, enveloped):
        assert_secret_only_at_debug(process.stderr())


def test_python_handler_exception_message_is_logged_at_debug_only(runtimes):
    """An exception message often quotes the input (ValueError("bad value: ...")): at warn the
    runtime logs the envelope id and exception type; the message only at debug."""
    handler_dir = pathlib.Path(tempfile.mkdtemp(prefix="asya-h-", dir="/tmp"))
    try:
        (handler_dir / "quoting_handler.py").write_text(
            "def process(payload):\n    raise ValueError('cannot use %r' % (payload,))\n")
        for level, expect_message in (("info", False), ("debug", True)):
            env = {"ASYA_HANDLER": "quoting_handler.process", "ASYA_LOG_LEVEL": level, "PYTHONPATH": str(handler_dir)}
            runtime = runtimes([sys.executable, str(RUNTIME_FILE)], env).wait_ready()
            response = runtime.call(envelope_body({"k": SECRET}, id="quoting-1"))
            details = response[0]["details"]
            assert SECRET in details["message"] and details["type"] == "ValueError", response
            runtime.stop()
            records = [json.loads(line) for line in runtime.stderr().splitlines() if line.strip()]
            raised = [r for r in records if r["msg"] == "handler raised"]
            assert raised and raised[0]["level"] == "warn" and raised[0]["id"] == "quoting-1", records
            assert raised[0]["type"] == "ValueError", records
            assert_secret_only_at_debug(runtime.stderr())
            assert any(SECRET in json.dumps(r) for r in records) == expect_message, records
    finally:
        shutil.rmtree(handler_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# Running as a module, socket from ASYA_SOCKET_DIR, start-up failures from the environment.


def test_runs_as_module_with_socket_dir_and_default_name(runtimes):
    env = {"ASYA_HANDLER": "conformance_handlers.Counter.process",
           "PYTHONPATH": os.pathsep.join([str(RUNTIME_DIR), str(CONFORMANCE_DIR)])}
    runtime = runtimes([sys.executable, "-m", "asya_runtime"], env, socket_name="asya-runtime.sock",
                       use_socket_dir=True).wait_ready()
    assert runtime.call(envelope_body({}))[0]["payload"] == {"count": 1}
    assert runtime.call(envelope_body({}))[0]["payload"] == {"count": 2}
    runtime.stop()


@pytest.mark.parametrize("kind", ["python", "cpp"])
def test_socket_name_joins_socket_dir(runtimes, kind):
    env = {"ASYA_HANDLER": "conformance_handlers.echo", "ASYA_SOCKET_NAME": "custom.sock",
           "PYTHONPATH": str(CONFORMANCE_DIR)}
    runtime = runtimes(runtime_command(kind), env, socket_name="custom.sock", use_socket_dir=True).wait_ready()
    assert runtime.call(envelope_body({"message": "m"}))[0]["payload"] == {"echoed": "m"}
    runtime.stop()


@pytest.mark.parametrize("kind", ["python", "cpp"])
@pytest.mark.parametrize("chmod,expected", [(None, 0o666), ("0o600", 0o600), ("640", 0o640)])
def test_socket_chmod(runtimes, kind, chmod, expected):
    env = {"ASYA_HANDLER": "conformance_handlers.echo", "PYTHONPATH": str(CONFORMANCE_DIR)}
    if chmod is not None:
        env["ASYA_SOCKET_CHMOD"] = chmod
    runtime = runtimes(runtime_command(kind), env).wait_ready()
    assert os.stat(runtime.socket_path).st_mode & 0o777 == expected
    runtime.stop()


BAD_ENVIRONMENT = {
    "mode": ({"ASYA_HANDLER_MODE": "dom"}, ["ASYA_HANDLER_MODE", "dom", "payload or envelope"]),
    "max_bytes": ({"ASYA_MAX_MESSAGE_BYTES": "lots"}, ["ASYA_MAX_MESSAGE_BYTES", "lots"]),
    "max_bytes_zero": ({"ASYA_MAX_MESSAGE_BYTES": "0"}, ["ASYA_MAX_MESSAGE_BYTES", "0"]),
    "validation": ({"ASYA_ENABLE_VALIDATION": "maybe"}, ["ASYA_ENABLE_VALIDATION", "maybe"]),
    "log_level": ({"ASYA_LOG_LEVEL": "loud"}, ["ASYA_LOG_LEVEL", "loud"]),
    "chmod": ({"ASYA_SOCKET_CHMOD": "rwx"}, ["ASYA_SOCKET_CHMOD", "rwx"]),
    "long_socket_path": ({"ASYA_SOCKET_PATH": "/tmp/" + "s" * 120}, ["socket path", "107 bytes"]),
}


@pytest.mark.parametrize("kind", ["python", "cpp"])
@pytest.mark.parametrize("case", sorted(BAD_ENVIRONMENT))
def test_bad_environment_exits_1_with_one_line_naming_variable_and_value(runtimes, case, kind):
    extra, named = BAD_ENVIRONMENT[case]
    env = dict({"ASYA_HANDLER": "conformance_handlers.echo", "PYTHONPATH": str(CONFORMANCE_DIR)}, **extra)
    runtime = runtimes(runtime_command(kind), env)
    assert runtime.wait_exit() == 1
    lines = [line for line in runtime.stderr().splitlines() if line.strip()]
    assert len(lines) == 1, runtime.stderr()
    record = json.loads(lines[0])
    assert record["level"] == "error", record
    for fragment in named:
        assert fragment in record["msg"], record
    assert not runtime.ready_path.exists() and not runtime.socket_path.exists()


# ------------------------------------------------------------------------------------------
# Python 3.8 compatibility.


def test_source_parses_with_the_python_3_8_grammar():
    source = RUNTIME_FILE.read_text(encoding="utf-8")
    ast.parse(source, filename=str(RUNTIME_FILE), feature_version=(3, 8))


def find_python38():
    """A Python 3.8 interpreter: $ASYA_PYTHON38, python3.8 on PATH, or a pyenv 3.8 install."""
    candidates = [os.environ.get("ASYA_PYTHON38"), shutil.which("python3.8")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            version = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 8))"],
                                     capture_output=True, text=True, timeout=30)
            if version.stdout.strip() == "True":
                return candidate
    return None


def test_serves_requests_under_python_3_8(runtimes):
    python38 = find_python38()
    if python38 is None:
        pytest.skip("no Python 3.8 interpreter (set ASYA_PYTHON38, or install python3.8); the grammar check ran")
    env = {"ASYA_HANDLER": "conformance_handlers.fanout", "PYTHONPATH": str(CONFORMANCE_DIR)}
    runtime = runtimes([python38, str(RUNTIME_FILE)], env).wait_ready()
    response = runtime.call(envelope_body({"count": 2}, actors=("fan", "sink")))
    assert [output["payload"]["index"] for output in response] == [0, 1], response
    assert runtime.call(b"{")[0]["error"] == "msg_parsing_error"
    runtime.stop()

    env = {"ASYA_HANDLER": "conformance_handlers.envelope_edit", "ASYA_HANDLER_MODE": "envelope",
           "PYTHONPATH": str(CONFORMANCE_DIR)}
    runtime = runtimes([python38, str(RUNTIME_FILE)], env).wait_ready()
    response = runtime.call(envelope_body({"edit": "append"}, actors=("a", "b")))
    assert response[0]["route"] == {"actors": ["a", "b", "extra"], "current": 1}, response
    runtime.stop()


# ------------------------------------------------------------------------------------------
# Batch mode: waiting for the next batch without sleeping (ASYA_RUNTIME_SPIN_US).


def process_voluntary_switches(pid):
    """Voluntary context switches of every thread of `pid` (a thread that blocks, e.g. in poll(),
    makes one; one that polls without sleeping and yields does not)."""
    total = 0
    for task in pathlib.Path("/proc/%d/task" % pid).iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def process_cpu_seconds(pid):
    total = 0
    for task in pathlib.Path("/proc/%d/task" % pid).iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def wait_until_every_thread_sleeps(pid, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for task in pathlib.Path("/proc/%d/task" % pid).iterdir():
            stat = (task / "stat").read_text()
            states.append(stat[stat.rindex(")") + 2])
        if all(state == "S" for state in states):
            return
        time.sleep(0.001)
    pytest.fail("runtime %d still had a running thread after %.0f s: %s" % (pid, timeout, states))


def batch_body(count, first=0):
    return json.dumps([{"id": "b-%d" % (first + i), "route": {"actors": ["echo"], "current": 0},
                        "payload": {"n": first + i}} for i in range(count)]).encode()


def batch_call(connection, body):
    connection.sendall(struct.pack(">I", len(body)) + body)
    answers = json.loads(recv_frame(connection))
    assert isinstance(answers, list) and all(isinstance(answer, list) for answer in answers), answers
    return answers


def switches_across_a_gap(runtimes, spin_us, gap_seconds):
    """Voluntary context switches of a batch runtime (ASYA_RUNTIME_SPIN_US=spin_us) while it waits
    `gap_seconds` for the next request of a connection whose requests came back to back before."""
    env = {"ASYA_HANDLER": "conformance_handlers.batch_mixed", "ASYA_HANDLER_BATCH": "true",
           "ASYA_RUNTIME_SPIN_US": str(spin_us), "PYTHONPATH": str(CONFORMANCE_DIR)}
    runtime = runtimes([sys.executable, str(RUNTIME_FILE)], env).wait_ready()
    pid = runtime.process.pid
    with runtime.connect() as connection:
        batch_call(connection, batch_body(3))
        # Counted once the runtime sleeps after the first answer (a first request never spins),
        # from before the second request: whether it blocks after the second answer is then
        # inside the window, whatever the timing.
        wait_until_every_thread_sleeps(pid)
        before = process_voluntary_switches(pid)
        batch_call(connection, batch_body(3, 3))  # back to back: the next wait may spin
        time.sleep(gap_seconds)
        answers = batch_call(connection, batch_body(3, 6))
        after = process_voluntary_switches(pid)
    assert len(answers) == 3
    return after - before, runtime


def test_batch_runtime_waits_for_a_back_to_back_request_without_sleeping(runtimes):
    # Within the spin budget (generous here: a loaded machine may take a while to schedule the
    # client), the runtime's thread never blocks between the two requests...
    spinning, _ = switches_across_a_gap(runtimes, 1_000_000, 0.05)
    assert spinning == 0, "the runtime blocked %d times while waiting for a back-to-back request" % spinning
    # ... and with ASYA_RUNTIME_SPIN_US=0 it sleeps in poll() and is woken by the request.
    sleeping, _ = switches_across_a_gap(runtimes, 0, 0.05)
    assert sleeping >= 1


def test_batch_runtime_stops_spinning_when_requests_are_not_back_to_back(runtimes):
    # The budget (0.2 s) is spent once after the last back-to-back request; a request that comes
    # later than that (0.5 s) turns spinning off: the runtime then sleeps while idle.
    env = {"ASYA_HANDLER": "conformance_handlers.batch_mixed", "ASYA_HANDLER_BATCH": "true",
           "ASYA_RUNTIME_SPIN_US": "200000", "PYTHONPATH": str(CONFORMANCE_DIR)}
    runtime = runtimes([sys.executable, str(RUNTIME_FILE)], env).wait_ready()
    pid = runtime.process.pid
    with runtime.connect() as connection:
        batch_call(connection, batch_body(2))
        batch_call(connection, batch_body(2, 2))
        time.sleep(0.5)
        batch_call(connection, batch_body(2, 4))
        cpu_before = process_cpu_seconds(pid)
        time.sleep(1.0)
        idle_cpu = process_cpu_seconds(pid) - cpu_before
        # Still serving, with an answer per envelope.
        assert len(batch_call(connection, batch_body(2, 6))) == 2
    assert idle_cpu < 0.05, "the runtime used %.3f s of CPU in 1 s idle: it kept spinning" % idle_cpu


def test_spin_does_not_delay_a_new_connection(runtimes):
    # While the leader spins for the next request of its connection, a new client is served at
    # once (the spin also watches the listener), not after the spin budget (1 s here).
    env = {"ASYA_HANDLER": "conformance_handlers.batch_mixed", "ASYA_HANDLER_BATCH": "true",
           "ASYA_RUNTIME_SPIN_US": "1000000", "PYTHONPATH": str(CONFORMANCE_DIR)}
    runtime = runtimes([sys.executable, str(RUNTIME_FILE)], env).wait_ready()
    with runtime.connect() as first:
        batch_call(first, batch_body(2))
        batch_call(first, batch_body(2, 2))  # the leader now spins up to 1 s for `first`
        started = time.monotonic()
        with runtime.connect() as second:
            assert len(batch_call(second, batch_body(2, 4))) == 2
        waited = time.monotonic() - started
        assert len(batch_call(first, batch_body(2, 6))) == 2
    assert waited < 0.9, "a new connection waited %.2f s, the leader's whole spin" % waited


def test_a_connection_that_always_has_a_request_waiting_does_not_starve_a_new_one(runtimes):
    # Client A sends six 0.3 s requests at once, so its socket always holds its next request when
    # the leader answers one (as a sidecar's worker that leases its next batch ahead does). Client
    # B connects after A's first answer: it is served beside A, not after A ran out of requests.
    env = dict(handler_env("python", "sleep"), ASYA_HANDLER_THREAD_SAFE="true")
    runtime = runtimes([sys.executable, str(RUNTIME_FILE)], env).wait_ready()
    a_answers = []  # (arrival, id) of A's answers, read as they come by a thread of their own

    def read_a(connection):
        for _ in range(5):
            a_answers.append((time.monotonic(), json.loads(recv_frame(connection))[0]["payload"]["i"]))

    with runtime.connect() as a:
        for i in range(6):
            body = envelope_body({"sleep_seconds": 0.3, "i": i}, id="a-%d" % i)
            a.sendall(struct.pack(">I", len(body)) + body)
        recv_frame(a)
        reader = threading.Thread(target=read_a, args=(a,), daemon=True)
        reader.start()
        with runtime.connect() as b:
            body = envelope_body({"i": "b"}, id="b")
            b.sendall(struct.pack(">I", len(body)) + body)
            assert json.loads(recv_frame(b))[0]["payload"] == {"i": "b"}
            b_answered = time.monotonic()
        reader.join(30)
    assert [i for _, i in a_answers] == [1, 2, 3, 4, 5]
    assert b_answered < a_answers[-1][0], "B was answered only after A's last request: it waited for A"


@pytest.mark.parametrize("value", ["-1", "abc", "1000001", "1.5"])
def test_bad_spin_value_exits_1_naming_it(runtimes, value):
    env = {"ASYA_HANDLER": "conformance_handlers.echo", "ASYA_RUNTIME_SPIN_US": value,
           "PYTHONPATH": str(CONFORMANCE_DIR)}
    runtime = runtimes([sys.executable, str(RUNTIME_FILE)], env)
    assert runtime.wait_exit() == 1
    lines = [line for line in runtime.stderr().splitlines() if line.strip()]
    assert len(lines) == 1, runtime.stderr()
    record = json.loads(lines[0])
    assert "ASYA_RUNTIME_SPIN_US" in record["msg"] and value in record["msg"], record
