"""Client side of the runtime conformance suite: start a runtime process, speak the socket protocol
(PROTOCOL section 3: 4-byte big-endian length + UTF-8 JSON). Used by conftest.py and the tests.
"""
import fcntl
import json
import os
import pathlib
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYTHON_RUNTIME = REPO / "runtimes" / "python" / "asya_runtime.py"
CPP_RUNTIME_NAME = "asya-conformance-runtime"
START_TIMEOUT_SECONDS = 20.0
IO_TIMEOUT_SECONDS = 60.0

# cpp_raw: the C++ runtime serving the same handlers as raw handlers (asya::serve_raw).
RUNTIMES = ("python", "cpp", "cpp_raw")

def build_dir():
    return pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build")).resolve()


def cpp_runtime_binary():
    """The C++ conformance runtime, or pytest.fail naming where it was looked for."""
    candidates = [
        build_dir() / "tests" / "runtime_conformance" / CPP_RUNTIME_NAME,
        build_dir() / "tests" / "runtime_conformance" / "cpp_runtime" / CPP_RUNTIME_NAME,
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "C++ conformance runtime not built: expected %s (ASYA_BUILD_DIR=%s); build it with "
        "`ninja -C %s %s`" % (candidates[0], build_dir(), build_dir(), CPP_RUNTIME_NAME)
    )


def runtime_command(kind):
    if kind == "python":
        return [sys.executable, str(PYTHON_RUNTIME)]
    return [str(cpp_runtime_binary())]


def runtime_env(kind, handler, socket_path, mode=None, extra=None):
    env = {key: value for key, value in os.environ.items() if not key.startswith("ASYA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if handler is not None:
        env["ASYA_HANDLER"] = handler
    env["ASYA_SOCKET_PATH"] = str(socket_path)
    if mode:
        env["ASYA_HANDLER_MODE"] = mode
    if kind == "cpp_raw":
        env["ASYA_CONFORMANCE_RAW"] = "1"
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


# ------------------------------------------------------------------------------------------
# Socket protocol client.


class Connection:
    """One client connection: 4-byte big-endian length + JSON frames."""

    def __init__(self, path, timeout=IO_TIMEOUT_SECONDS):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_frame(self, body):
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def unread_bytes(self):
        """What this side wrote that the runtime has not read yet (SIOCOUTQ: socket memory, so
        only zero or not matters)."""
        return struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]

    def wait_read(self, timeout=IO_TIMEOUT_SECONDS):
        """Waits until the runtime has read everything written so far, as a sidecar does before it
        writes a batch ahead on its other connection (PROTOCOL section 3, "Order")."""
        deadline = time.monotonic() + timeout
        while self.unread_bytes() > 0:
            if time.monotonic() > deadline:
                pytest.fail("the runtime did not read what was written within %.0f s" % timeout)
            time.sleep(0.001)

    def _recv_exact(self, size):
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            received = self.sock.recv_into(view[got:], size - got)
            if received == 0:
                raise EOFError("connection closed after %d of %d bytes" % (got, size))
            got += received
        return bytes(buffer)

    def recv_frame(self):
        """The next frame's body, or None when the runtime closed the connection cleanly."""
        header = b""
        while len(header) < 4:
            chunk = self.sock.recv(4 - len(header))
            if not chunk:
                if header:
                    raise EOFError("connection closed inside a frame header")
                return None
            header += chunk
        (length,) = struct.unpack(">I", header)
        return self._recv_exact(length)

    def call_raw(self, body):
        """Sends one request body (bytes); returns the decoded response."""
        self.send_frame(body)
        response = self.recv_frame()
        assert response is not None, "runtime closed the connection instead of answering"
        return json.loads(response)

    def call(self, envelope):
        return self.call_raw(json.dumps(envelope).encode("utf-8"))

    def wait_closed(self, timeout=10.0):
        """Reads until EOF; returns the frames received before it (decoded). Fails on timeout."""
        self.sock.settimeout(timeout)
        frames = []
        try:
            while True:
                frame = self.recv_frame()
                if frame is None:
                    return frames
                frames.append(json.loads(frame))
        except (ConnectionResetError, BrokenPipeError, EOFError):
            return frames
        except socket.timeout:
            pytest.fail("runtime did not close the connection within %.0f s" % timeout)


def envelope(payload, actors=("echo",), current=0, **fields):
    result = {"id": fields.pop("id", "conformance-1"), "route": {"actors": list(actors), "current": current}}
    result.update(fields)
    result["payload"] = payload
    return result


# ------------------------------------------------------------------------------------------
# Runtime processes.


class RuntimeProcess:
    """A runtime process serving one handler on a socket in its own temp dir."""

    def __init__(self, kind, handler, mode=None, env=None, socket_dir=None):
        self.kind = kind
        self.handler = handler
        self.dir = pathlib.Path(socket_dir or tempfile.mkdtemp(prefix="asya-", dir="/tmp"))
        self.socket_path = self.dir / "rt.sock"
        self.ready_path = self.dir / "runtime-ready"
        self.stderr_path = self.dir / "stderr.log"
        self.command = runtime_command(kind)
        self.env = runtime_env(kind, handler, self.socket_path, mode, env)
        self.process = None

    def start(self):
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
            )
        return self

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout=START_TIMEOUT_SECONDS):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                pytest.fail(
                    "%s runtime exited with %s before becoming ready; stderr:\n%s" % (self.kind, code, self.stderr())
                )
            if self.ready_path.exists() and self.socket_path.exists():
                try:
                    Connection(self.socket_path, timeout=5).close()
                    return self
                except OSError:
                    pass
            time.sleep(0.01)
        pytest.fail("%s runtime not ready within %.0f s; stderr:\n%s" % (self.kind, timeout, self.stderr()))

    def connect(self):
        return Connection(self.socket_path)

    def call(self, body_envelope):
        with self.connect() as connection:
            return connection.call(body_envelope)

    def wait_exit(self, timeout=START_TIMEOUT_SECONDS):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("%s runtime still running %.0f s later; stderr:\n%s" % (self.kind, timeout, self.stderr()))

    def signal(self, signum):
        self.process.send_signal(signum)

    def cleanup(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


