"""What `asya up` gives a runtime: its socket in both forms (issue 11 item 10) and, with
spec.isolation.network none, a network namespace of its own (item 14). Real supervisor, sidecars
and runtimes on SQLite."""
import json
import os
import subprocess
import socket
import sys
import threading

import pytest

from local_harness import HANDLERS, manifest, process_environment, wait_for

SCALING = {"enabled": False}


def isolated(text):
    """The manifest text with spec.isolation.network none."""
    return text.replace("spec:\n", "spec:\n  isolation: {network: none}\n", 1)


def test_a_runtime_reading_only_socket_dir_and_name_serves_messages_to_happy_end(asya, tmp_path):
    """The published runtime's way: ASYA_SOCKET_DIR/ASYA_SOCKET_NAME, runtime-ready in that
    directory. The test-only runtime ignores ASYA_SOCKET_PATH entirely."""
    runtime = HANDLERS / "dir_name_runtime.py"
    (tmp_path / "dn.yaml").write_text(
        manifest("dir-name", "unused.handler", scaling=SCALING,
                 command=[sys.executable, str(runtime)]))
    asya.up_detached(tmp_path / "dn.yaml")
    out = asya.send("dir-name", "--payload", '{"n": 1}', "--id", "dn-1", "--wait", "--timeout",
                    60, check=0)
    envelope = json.loads(out.stdout)
    assert envelope["payload"] == {"n": 1, "runtime": "dir-name"}
    assert asya.results()["dn-1"]["payload"] == {"n": 1, "runtime": "dir-name"}

    # Both forms name one file: the socket the sidecar connects to.
    replica = asya.actor("dir-name")["processes"][0]
    runtime_env = process_environment(replica["runtime"])
    sidecar_env = process_environment(replica["sidecar"])
    joined = os.path.join(runtime_env["ASYA_SOCKET_DIR"], runtime_env["ASYA_SOCKET_NAME"])
    assert joined == runtime_env["ASYA_SOCKET_PATH"] == sidecar_env["ASYA_SOCKET_PATH"]
    assert os.path.exists(os.path.join(runtime_env["ASYA_SOCKET_DIR"], "runtime-ready"))


def test_socket_variables_of_the_manifest_do_not_move_the_socket(asya, tmp_path):
    """The supervisor owns the socket's place; a manifest value would split runtime and sidecar."""
    runtime = HANDLERS / "dir_name_runtime.py"
    (tmp_path / "dn.yaml").write_text(
        manifest("dir-name", "unused.handler", scaling=SCALING,
                 command=[sys.executable, str(runtime)],
                 env={"ASYA_SOCKET_DIR": str(tmp_path / "elsewhere"), "ASYA_SOCKET_NAME": "x.sock"}))
    asya.up_detached(tmp_path / "dn.yaml")
    out = asya.send("dir-name", "--payload", '{"n": 2}', "--id", "dn-2", "--wait", "--timeout",
                    60, check=0)
    assert json.loads(out.stdout)["payload"] == {"n": 2, "runtime": "dir-name"}
    assert not (tmp_path / "elsewhere").exists()


class Listener:
    """A TCP listener on 127.0.0.1 of the test's (the host's) network namespace that records
    what each accepted connection sent."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.received.append(conn.recv(100).decode())
                except OSError:
                    self.received.append("")

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    item = Listener()
    yield item
    item.close()


def probe(asya, tmp_path, listener, isolation, message_id):
    text = manifest("probe", "network_probe.connect", scaling=SCALING)
    (tmp_path / "probe.yaml").write_text(isolated(text) if isolation else text)
    asya.up_detached(tmp_path / "probe.yaml")
    payload = json.dumps({"port": listener.port, "token": message_id})
    out = asya.send("probe", "--payload", payload, "--id", message_id, "--wait", "--timeout", 60,
                    check=0)
    return json.loads(out.stdout)["payload"]


def test_without_isolation_the_handler_reaches_a_host_listener(asya, tmp_path, listener):
    answer = probe(asya, tmp_path, listener, False, "open-1")
    assert answer == {"connected": True}
    wait_for(lambda: "open-1" in listener.received, 10, "the listener to get the handler's bytes")


def test_isolation_network_none_leaves_the_runtime_only_its_own_loopback(asya, tmp_path,
                                                                          listener):
    answer = probe(asya, tmp_path, listener, True, "closed-1")
    # 127.0.0.1 inside the runtime's namespace is its own (up) loopback with nothing listening.
    assert answer["connected"] is False
    assert "ConnectionRefused" in answer["error"], answer
    assert listener.received == []
    # The runtime is in another network namespace than the supervisor; the sidecar is not.
    replica = asya.actor("probe")["processes"][0]
    runtime_ns = os.readlink(f"/proc/{replica['runtime']}/ns/net")
    sidecar_ns = os.readlink(f"/proc/{replica['sidecar']}/ns/net")
    assert runtime_ns != sidecar_ns == os.readlink("/proc/self/ns/net")
    # Only loopback there.
    with open(f"/proc/{replica['runtime']}/net/dev") as f:
        interfaces = [line.split(":")[0].strip() for line in f.readlines()[2:]]
    assert interfaces == ["lo"]


def test_isolation_where_namespaces_are_refused_stops_asya_up_with_a_clear_error(asya, tmp_path):
    """A user namespace whose limits allow no new network or user namespace stands in for a host
    that forbids them: `asya up` refuses to start, naming the manifest, the actor and the remedy."""
    if not os.path.exists("/usr/bin/unshare"):
        pytest.skip("util-linux unshare is not installed")
    (tmp_path / "probe.yaml").write_text(
        isolated(manifest("probe", "network_probe.connect", scaling=SCALING)))
    script = ("echo 0 > /proc/sys/user/max_net_namespaces && "
              "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"")
    result = subprocess.run(
        ["/usr/bin/unshare", "--user", "--map-root-user", "sh", "-c", script, "sh",
         str(asya.binary), "up", "--detach", str(tmp_path / "probe.yaml")],
        cwd=tmp_path, env=asya.env, capture_output=True, text=True, timeout=90)
    if "unshare failed" in result.stderr:
        pytest.skip(f"cannot create the test's user namespace here: {result.stderr.strip()}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{tmp_path / 'probe.yaml'}:1: actor probe: spec.isolation.network none" in result.stderr
    assert "unshare(CLONE_NEWUSER|CLONE_NEWNET)" in result.stderr
    assert "No space left on device" in result.stderr
    assert "remove spec.isolation" in result.stderr
