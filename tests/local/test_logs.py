"""Logs (issue 19): every process logs JSON; `asya logs` merges all processes by time, `--pretty`
reads well, `--follow` follows every file; a plain `asya send` while a gateway runs causes no
gateway-report warnings; a wrong RabbitMQ URL fails fast with a JSON error naming the cause."""
import json
import os
import re
import select
import socket
import subprocess
import time

from local_harness import manifest, wait_for

ROUTES = """tools:
  - name: chat
    description: Echo through chatty
    parameters:
      n: {type: string, required: true, description: anything}
    route: [chatty]
    timeout: 60
"""


def test_logs_merge_pretty_follow_and_no_gateway_warnings_for_a_plain_send(asya, tmp_path):
    (tmp_path / "chatty.yaml").write_text(
        manifest("chatty", "testing.chatty", scaling={"enabled": False}))
    (tmp_path / "routes.yaml").write_text(ROUTES)
    asya.up_detached(tmp_path / "chatty.yaml", "--routes", tmp_path / "routes.yaml",
                     "--gateway-port", 0)
    wait_for(asya.gateway_url, 30, "the gateway URL in status.json")
    # A plain send (no gateway job) and a gateway call (a job).
    for n in ("a", "b"):
        asya.send("chatty", "--payload", json.dumps({"n": n}), "--wait", check=0)
    status, answer = asya.post("/tools/call", {"name": "chat", "arguments": {"n": "via-gateway"}})
    assert status == 200, answer

    lines = asya.run("logs", check=0).stdout.splitlines()
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    processes = {r["process"] for r in records}
    assert {"chatty/0.sidecar", "chatty/0.runtime", "gateway", "supervisor",
            "happy-end/0.sidecar"} <= processes, processes
    times = [r["ts"] for r in records if "ts" in r]
    assert times == sorted(times), "merged by time"
    # Every process's own lines are JSON with a timestamp (the supervisor's events are plain
    # lines, wrapped here: they carry no ts of their own when they come first).
    for r in records:
        if r["process"] != "supervisor":
            assert r["ts"].endswith("Z"), r
    # No gateway report about the envelopes of the plain sends: not a warning, not a request.
    gateway_warnings = [r for r in records if r.get("level") in ("warn", "error")
                        and "gateway" in r["msg"]]
    assert gateway_warnings == [], gateway_warnings

    pretty = asya.run("logs", "chatty", "--pretty", check=0).stdout.splitlines()
    pattern = re.compile(r"\d\d:\d\d:\d\d\.\d{3} chatty/0\.(sidecar|runtime)\s+\S*\s+.+")
    assert pretty and all(pattern.fullmatch(line) for line in pretty), pretty[:5]
    assert any('chatty handled {"n": "a"}' in line for line in pretty)
    assert asya.run("logs", "chatty", "--pretty", "-n", 2, check=0).stdout.count("\n") == 2

    # --follow sees what any process writes afterwards (here the runtime's print).
    follow = subprocess.Popen([str(asya.binary), "logs", "-f", "--pretty"], cwd=asya.workdir,
                              env=asya.env, stdout=subprocess.PIPE, bufsize=0)
    try:
        seen = b""
        # The initial lines first, then a new message.
        asya.send("chatty", "--payload", '{"n": "followed"}', "--wait", check=0)
        deadline = time.monotonic() + 30
        while b'chatty handled {"n": "followed"}' not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([follow.stdout], [], [], 0.5)
            if ready:
                seen += os.read(follow.stdout.fileno(), 65536)
        assert b'chatty handled {"n": "followed"}' in seen, seen[-2000:]
    finally:
        follow.kill()
        follow.wait()


def dead_port():
    """A bound port nothing listens on (a connect to it is refused), and its socket."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def test_a_wrong_rabbitmq_url_fails_fast_with_a_json_error(asya, tmp_path, build_path):
    holder, port = dead_port()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ASYA_", "AWS_"))}
        env.update({"ASYA_ACTOR_NAME": "echo", "ASYA_TRANSPORT": "rabbitmq",
                    "ASYA_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{port}/",
                    "ASYA_SOCKET_PATH": str(tmp_path / "rt.sock")})
        started = time.monotonic()
        proc = subprocess.run([str(build_path / "src" / "sidecar" / "asya-sidecar")], env=env,
                              capture_output=True, text=True, timeout=120)
        took = time.monotonic() - started
        assert proc.returncode != 0
        records = [json.loads(line) for line in proc.stderr.splitlines()]  # all JSON
        assert all(r["component"] == "sidecar" and r["ts"].endswith("Z") for r in records)
        error = [r for r in records if r["level"] == "error"]
        assert len(error) == 1, records
        assert "no connection within ASYA_RABBITMQ_CONNECT_TIMEOUT=10s" in error[0]["msg"]
        assert f"127.0.0.1:{port}" in error[0]["msg"]
        assert "connection refused" in error[0]["msg"]
        # Bounded by the 10 s connect timeout, not the 30 s confirm timeout (generous margin).
        assert took < 28, took

        # A URL that is not AMQP at all: one JSON line, exit 2, no password shown.
        env["ASYA_RABBITMQ_URL"] = "http://user:secret@broker:5672"
        proc = subprocess.run([str(build_path / "src" / "sidecar" / "asya-sidecar")], env=env,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2
        [record] = [json.loads(line) for line in proc.stderr.splitlines()]
        assert record["level"] == "error" and "ASYA_RABBITMQ_URL" in record["msg"]
        assert "secret" not in proc.stderr

        # `asya up` on that broker stops after the connect timeout too, naming the cause.
        (tmp_path / "echo.yaml").write_text(
            manifest("echo", "testing.slow_echo", scaling={"enabled": False}))
        asya.env.update(ASYA_RABBITMQ_URL=f"amqp://guest:guest@127.0.0.1:{port}/")
        started = time.monotonic()
        out = asya.run("up", "--detach", "--transport", "rabbitmq", tmp_path / "echo.yaml",
                       timeout=120)
        assert out.returncode != 0
        assert time.monotonic() - started < 28
        assert "connection refused" in out.stderr and "ASYA_RABBITMQ_CONNECT_TIMEOUT" in out.stderr
    finally:
        holder.close()
