"""ASYA_GATEWAY_SOCKET: the gateway also serves on a Unix socket (docs/gateway.md "Unix socket"):
the same endpoints and token checks as over TCP, an owner-only socket file, a file left by a dead
gateway replaced, anything else at the path refused, the file removed at stop."""
import http.client
import json
import os
import socket
import stat
import subprocess
import tempfile

import pytest

from gateway_harness import ROUTES, Gateway, http_json


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def unix_request(path, method, target, body=None, headers=None):
    connection = UnixConnection(str(path))
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(headers or {})
        if data is not None:
            headers["Content-Type"] = "application/json"
        connection.request(method, target, body=data, headers=headers)
        response = connection.getresponse()
        text = response.read()
        return response.status, (json.loads(text) if text else None)
    finally:
        connection.close()


@pytest.fixture
def short_dir():
    # Unix socket paths are limited to 107 bytes: pytest's tmp_path may be longer.
    with tempfile.TemporaryDirectory(prefix="asya-gwsock-", dir="/tmp") as path:
        yield path


def socket_gateway(gateway_binary, workdir, **env):
    os.makedirs(workdir, exist_ok=True)
    return Gateway(gateway_binary, workdir, ROUTES,
                   dict({"ASYA_GATEWAY_SOCKET": os.path.join(workdir, "gw.sock")}, **env))


def test_the_socket_serves_the_same_api_with_the_same_tokens(gateway_binary, short_dir):
    gateway = socket_gateway(gateway_binary, os.path.join(short_dir, "g"),
                             ASYA_GATEWAY_TOKEN="client-token",
                             ASYA_GATEWAY_INTERNAL_TOKEN="sidecar-token").start()
    path = gateway.workdir / "gw.sock"
    try:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert unix_request(path, "GET", "/healthz")[0] == 200
        # A job started over TCP, reported on over the socket: no token, the client's token (wrong
        # kind) and the sidecars' token.
        status, answer, _ = http_json("POST", gateway.url + "/tools/call",
                                      {"name": "pipeline", "arguments": {"text": "x"}},
                                      gateway.client_headers())
        assert status == 200, answer
        job = answer["structuredContent"]["job_id"]
        report = {"actors": ["first", "second"], "current_actor_idx": 0, "status": "processing"}
        target = "/envelopes/%s/progress" % job
        assert unix_request(path, "POST", target, report)[0] == 401
        assert unix_request(path, "POST", target, report,
                            {"Authorization": "Bearer client-token"})[0] == 401
        status, answer = unix_request(path, "POST", target, report,
                                      {"Authorization": "Bearer sidecar-token"})
        assert status == 200 and answer["status"] == "ok", answer
        # Client endpoints still want the client token there.
        assert unix_request(path, "GET", "/envelopes/" + job)[0] == 401
        status, answer = unix_request(path, "GET", "/envelopes/" + job,
                                      headers={"Authorization": "Bearer client-token"})
        assert status == 200 and answer["status"] == "running", answer
    finally:
        assert gateway.stop() == 0
    assert not path.exists()  # removed at stop


def test_a_socket_file_left_by_a_dead_gateway_is_replaced(gateway_binary, short_dir):
    workdir = os.path.join(short_dir, "g")
    os.makedirs(workdir)
    path = os.path.join(workdir, "gw.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    gateway = socket_gateway(gateway_binary, workdir).start()
    try:
        assert unix_request(path, "GET", "/healthz")[0] == 200
    finally:
        gateway.stop()


@pytest.mark.parametrize("occupant", ["regular file", "live listener"])
def test_anything_else_at_the_path_stops_the_gateway_and_is_left_alone(gateway_binary, short_dir,
                                                                      occupant):
    workdir = os.path.join(short_dir, "g")
    os.makedirs(workdir)
    path = os.path.join(workdir, "gw.sock")
    listener = None
    if occupant == "regular file":
        with open(path, "w") as f:
            f.write("keep me")
    else:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
    gateway = socket_gateway(gateway_binary, workdir)
    try:
        process = subprocess.run([str(gateway_binary)], env=gateway.env, capture_output=True,
                                 text=True, timeout=60)
        assert process.returncode != 0
        expected = ("exists and is not a socket" if occupant == "regular file"
                    else "another process listens there")
        assert path in process.stderr + process.stdout and expected in process.stderr + process.stdout
        if occupant == "regular file":
            assert open(path).read() == "keep me"
        else:
            assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        if listener:
            listener.close()


def test_the_cli_reaches_the_gateway_by_its_socket(gateway_binary, build_path, short_dir):
    """`asya call --gateway unix:PATH` (and ASYA_GATEWAY_URL=unix:PATH, as a sidecar has it)."""
    asya = build_path / "src" / "cli" / "asya"
    if not asya.exists():
        pytest.fail(f"{asya} not built: ninja -C {build_path} asya")
    gateway = socket_gateway(gateway_binary, os.path.join(short_dir, "g")).start()
    path = str(gateway.workdir / "gw.sock")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASYA_GATEWAY")}
        listed = subprocess.run([str(asya), "call", "--list", "--gateway", "unix:" + path],
                                env=env, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert "pipeline" in listed.stdout
        listed = subprocess.run([str(asya), "call", "--list"],
                                env=dict(env, ASYA_GATEWAY_URL="unix:" + path),
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert "pipeline" in listed.stdout
    finally:
        gateway.stop()
