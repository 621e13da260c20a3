"""Answers without the payload (PROTOCOL.md section 3, "payload_unchanged"): the runtime answers
"payload_unchanged": true only when it is certain (the handler returned the very object it got and
that object is immutable) and only to a sidecar that declared it takes that answer in its
sidecar-features file (checked against the connection's peer). Unit tests of the pure parts, then
real runtime processes (the Python runtime and the C++ raw runtime) on a socket, with this test
process as the peer."""
import json
import os
import pathlib
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import asya_runtime as rt  # noqa: E402

REPO = HERE.parent.parent.parent


class Peer(object):
    """A _SidecarPeer stand-in: takes "payload_unchanged" or not, and counts the questions."""

    def __init__(self, takes):
        self.takes = takes
        self.asked = 0

    def takes_unchanged(self):
        self.asked += 1
        return self.takes


def request(payload, headers=None):
    envelope = {"id": "u1", "route": {"actors": ["a", "b"], "current": 0}, "payload": payload}
    if headers is not None:
        envelope["headers"] = headers
    return json.dumps(envelope).encode()


def identity(payload):
    return payload


@pytest.mark.parametrize("payload", ["text", "x" * 100000, 7, 2.5, True, False])
def test_immutable_payload_returned_as_is_is_answered_unchanged(payload):
    runtime = rt.Runtime(identity)
    answer = runtime.respond(request(payload, {"h": 1}), Peer(True))
    assert answer == [{"route": {"actors": ["a", "b"], "current": 1}, "headers": {"h": 1},
                       "payload_unchanged": True}]
    # Encoded as the sidecar reads it.
    assert json.loads(runtime.handle(request(payload))) == json.loads(
        b'[{"payload":%s,"route":{"actors":["a","b"],"current":1}}]' % json.dumps(payload).encode())


def test_mutated_dict_or_list_is_sent_whole():
    def mutate(payload):
        payload["seen"] = True
        return payload

    peer = Peer(True)
    answer = rt.Runtime(mutate).respond(request({"n": 1}), peer)
    assert answer[0]["payload"] == {"n": 1, "seen": True}
    assert "payload_unchanged" not in answer[0]
    answer = rt.Runtime(identity).respond(request({"n": [1, 2]}), peer)
    assert answer[0]["payload"] == {"n": [1, 2]}
    assert peer.asked == 0  # never a question for a mutable payload


def test_equal_but_new_value_or_no_peer_is_sent_whole():
    # An equal string that is another object: sent whole (only identity is certain).
    copy = rt.Runtime(lambda payload: "".join(list(payload))).respond(request("a" * 1000), Peer(True))
    assert copy[0]["payload"] == "a" * 1000
    assert rt.Runtime(identity).respond(request("text"), None)[0]["payload"] == "text"
    assert rt.Runtime(identity).respond(request("text"), Peer(False))[0]["payload"] == "text"


def test_null_payload_returned_is_abort_not_unchanged():
    assert rt.Runtime(identity).respond(request(None), Peer(True)) == []


def test_fanout_marks_each_item_that_is_the_payload():
    answer = rt.Runtime(lambda payload: [payload, "other", payload]).respond(request("p"), Peer(True))
    assert [sorted(output) for output in answer] == [["payload_unchanged", "route"], ["payload", "route"],
                                                     ["payload_unchanged", "route"]]
    single = rt.Runtime(lambda payload: [payload]).respond(request("p"), Peer(True))
    assert single == [{"route": {"actors": ["a", "b"], "current": 1}, "fanout": True, "payload_unchanged": True}]


def test_batch_marks_each_item_against_its_own_envelope():
    def handler(payloads):
        return [payloads[0], payloads[0], dict(payloads[2])]

    runtime = rt.Runtime(handler, batch=True)
    body = b"[" + b",".join([request("first"), request("second"), request({"k": 1})]) + b"]"
    answers = runtime.respond(body, Peer(True))
    assert answers[0][0]["payload_unchanged"] is True and "payload" not in answers[0][0]
    # Item 1 returned item 0's payload: not its own, so sent whole.
    assert answers[1][0]["payload"] == "first"
    assert answers[2][0]["payload"] == {"k": 1}


def test_envelope_mode_is_never_answered_unchanged():
    runtime = rt.Runtime(lambda envelope: envelope, mode="envelope")
    answer = runtime.respond(request("text"), Peer(True))
    assert answer[0]["payload"] == "text"


def test_sidecar_declares_checks_the_writers_pid():
    assert rt.sidecar_declares("42\npayload-unchanged\n", 42, "payload-unchanged")
    assert not rt.sidecar_declares("42\npayload-unchanged\n", 43, "payload-unchanged")
    assert rt.sidecar_declares("42\n payload-unchanged \n", 0, "payload-unchanged")  # another pid namespace
    assert not rt.sidecar_declares("42\n", 42, "payload-unchanged")
    assert not rt.sidecar_declares("payload-unchanged\n", 0, "payload-unchanged")
    assert not rt.sidecar_declares("", 0, "payload-unchanged")


def test_config_reads_asya_payload_unchanged():
    assert rt.load_config({"ASYA_HANDLER": "m.f"}).payload_unchanged is True
    assert rt.load_config({"ASYA_HANDLER": "m.f", "ASYA_PAYLOAD_UNCHANGED": "false"}).payload_unchanged is False
    with pytest.raises(rt.ConfigError, match="ASYA_PAYLOAD_UNCHANGED"):
        rt.load_config({"ASYA_HANDLER": "m.f", "ASYA_PAYLOAD_UNCHANGED": "maybe"})


# ------------------------------------------------------------------------------------------
# Real runtime processes; this test process is the peer (SO_PEERCRED) of every connection.


def build_dir():
    return pathlib.Path(os.environ.get("ASYA_BUILD_DIR", REPO / "build")).resolve()


@pytest.fixture
def runtime_dir():
    directory = pathlib.Path(tempfile.mkdtemp(prefix="asya-unch-", dir="/tmp"))
    (directory / "handlers.py").write_text(textwrap.dedent("""
        def passthrough(payload):
            return payload

        def mutate(payload):
            payload["seen"] = True
            return payload
    """))
    processes = []
    yield directory, processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    shutil.rmtree(directory, ignore_errors=True)


def start_runtime(runtime_dir, kind, handler="passthrough", env=None):
    directory, processes = runtime_dir
    socket_path = directory / "rt.sock"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_")}
    full_env.update({"ASYA_SOCKET_PATH": str(socket_path), "ASYA_LOG_LEVEL": "warn",
                     "PYTHONPATH": str(directory), "PYTHONDONTWRITEBYTECODE": "1"})
    full_env.update(env or {})
    if kind == "python":
        command = [sys.executable, str(HERE.parent / "asya_runtime.py")]
        full_env["ASYA_HANDLER"] = "handlers." + handler
    else:
        binary = build_dir() / "bench" / "socket" / "bench_noop_runtime"  # serve_raw, a view
        if not binary.is_file():
            pytest.fail("C++ raw runtime not built: expected %s" % binary)
        command = [str(binary)]
    process = subprocess.Popen(command, env=full_env, cwd=str(directory), stdin=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    processes.append(process)
    deadline = time.monotonic() + 20
    while not ((directory / "runtime-ready").exists() and socket_path.exists()):
        if process.poll() is not None:
            pytest.fail("runtime exited: %s" % process.stderr.read().decode(errors="replace"))
        if time.monotonic() > deadline:
            pytest.fail("runtime not ready within 20 s")
        time.sleep(0.01)
    return socket_path


def call(socket_path, body):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(30)
        connection.connect(str(socket_path))
        connection.sendall(struct.pack(">I", len(body)) + body)
        header = b""
        while len(header) < 4:
            header += connection.recv(4 - len(header))
        (length,) = struct.unpack(">I", header)
        data = bytearray()
        while len(data) < length:
            chunk = connection.recv(length - len(data))
            assert chunk, "runtime closed the connection inside a frame"
            data += chunk
        return json.loads(bytes(data))


def declare(directory, pid, *features):
    (directory / "sidecar-features").write_text("%d\n%s" % (pid, "".join(f + "\n" for f in features)))


@pytest.mark.parametrize("kind", ["python", "cpp"])
def test_runtime_answers_unchanged_only_to_the_sidecar_that_declared_it(runtime_dir, kind):
    directory, _ = runtime_dir
    socket_path = start_runtime(runtime_dir, kind)
    big = "y" * (1 << 20)
    # No features file: the payload comes back whole.
    assert call(socket_path, request(big))[0]["payload"] == big
    # Declared by this process (the connection's peer): unchanged, no payload bytes.
    declare(directory, os.getpid(), "payload-unchanged")
    answer = call(socket_path, request(big, {"h": "v"}))
    assert answer == [{"payload_unchanged": True, "route": {"actors": ["a", "b"], "current": 1},
                       "headers": {"h": "v"}}]
    # A stale file (another sidecar's pid) or one without the line: whole again.
    declare(directory, os.getpid() + 100000, "payload-unchanged")
    assert call(socket_path, request(big))[0]["payload"] == big
    declare(directory, os.getpid())
    assert call(socket_path, request(big))[0]["payload"] == big


@pytest.mark.parametrize("kind", ["python", "cpp"])
def test_asya_payload_unchanged_false_always_sends_the_payload(runtime_dir, kind):
    directory, _ = runtime_dir
    declare(directory, os.getpid(), "payload-unchanged")
    socket_path = start_runtime(runtime_dir, kind, env={"ASYA_PAYLOAD_UNCHANGED": "false"})
    assert call(socket_path, request("text"))[0]["payload"] == "text"


def test_python_runtime_sends_a_mutated_dict_whole_to_a_declaring_sidecar(runtime_dir):
    directory, _ = runtime_dir
    declare(directory, os.getpid(), "payload-unchanged")
    socket_path = start_runtime(runtime_dir, "python", handler="mutate")
    assert call(socket_path, request({"n": 1}))[0]["payload"] == {"n": 1, "seen": True}
