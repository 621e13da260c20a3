"""MCP sessions behind several gateway replicas: a session lives in the job store, so a replica
accepts a session another one created, sees it ended by DELETE on another, and expires it by the
use made of it on any replica. Two replicas on one PostgreSQL database, and two on one SQLite
file; the official MCP TypeScript SDK talks to them through a round-robin HTTP proxy (every
request to the other replica than the one before)."""
import http.client as http_client
import http.server as http_server
import itertools
import json
import subprocess
import threading
import time
import urllib.parse

import pytest

from gateway_harness import ROUTES, FakeActor, Gateway, http, http_json
from test_mcp import MCP_CLIENT, initialize, npm_ready, rpc
from test_postgres_replicas import fresh_database


@pytest.fixture(params=["postgres", "sqlite"])
def replicas(request, gateway_binary, tmp_path, queue_tool):
    """Two gateways on one job store and one queue file; yields (a, b)."""
    env = {"ASYA_SQLITE_PATH": str(tmp_path / "queues.db"), "ASYA_GATEWAY_MCP_SESSION_TIMEOUT": "3s",
           "ASYA_GATEWAY_POLL_INTERVAL": "200ms"}
    if request.param == "postgres":
        env["ASYA_DATABASE_URL"] = fresh_database(request.getfixturevalue("postgres_url"))[1]
    else:
        env["ASYA_GATEWAY_DB"] = str(tmp_path / "gateway.db")
    gateways = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            gateways.append(Gateway(gateway_binary, tmp_path / name, ROUTES, env).start())
        yield gateways
    finally:
        for gw in gateways:
            gw.stop()


def ping(gateway, session):
    return rpc(gateway, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, session)


def test_a_session_created_on_one_replica_works_on_the_other(replicas, queue_tool):
    a, b = replicas
    session, answer = initialize(a, "2025-03-26")
    assert answer["result"]["protocolVersion"] == "2025-03-26"
    assert ping(b, session)[0] == 200
    status, _, body = rpc(b, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
    assert status == 200 and {t["name"] for t in json.loads(body)["result"]["tools"]} == {"echo", "pipeline", "quick"}
    # B knows the session's protocol version: batches are only for 2025-03-26 sessions.
    status, _, body = rpc(b, [{"jsonrpc": "2.0", "id": 3, "method": "ping"}], session)
    assert status == 200 and json.loads(body) == [{"jsonrpc": "2.0", "id": 3, "result": {}}]

    # A tool call with progress on B, the sidecar reports on A.
    call = {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "rep"}, "_meta": {"progressToken": "t"}}}
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("answer", rpc(b, call, session)))
    thread.start()
    FakeActor(queue_tool, a).run_pipeline(FakeActor(queue_tool, a).receive("echo"))
    thread.join(60)
    status, _, body = box["answer"]
    messages = [json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")]
    assert any(m.get("method") == "notifications/progress" for m in messages)
    assert messages[-1]["result"]["structuredContent"] == {"echo": {"text": "rep", "count": 2, "mode": "fast"}}

    # DELETE on B ends it for A too.
    assert http("DELETE", b.url + "/mcp", headers={"Mcp-Session-Id": session})[0] == 200
    status, _, body = ping(a, session)
    assert status == 404 and "Session not found" in json.loads(body)["error"]["message"]
    assert http("DELETE", a.url + "/mcp", headers={"Mcp-Session-Id": session})[0] == 404


def test_use_on_either_replica_keeps_a_session_and_disuse_expires_it(replicas):
    a, b = replicas
    session, _ = initialize(a)
    idle, _ = initialize(b)
    # Used only on B, every 0.3 s for 4.5 s (longer than the 3 s timeout): A still accepts it.
    end = time.monotonic() + 4.5
    while time.monotonic() < end:
        assert ping(b, session)[0] == 200
        time.sleep(0.3)
    assert ping(a, session)[0] == 200
    status, _, body = ping(a, idle)
    assert status == 404 and "expired" in json.loads(body)["error"]["message"]
    time.sleep(3.5)  # the behaviour under test is inactivity
    assert ping(b, session)[0] == 404
    assert ping(a, session)[0] == 404
    metrics = http("GET", a.url + "/metrics")[2].decode()
    assert "asya_gateway_mcp_sessions 0" in metrics


class RoundRobinProxy:
    """An HTTP proxy that sends each request to the next backend in turn (a load balancer without
    sticky sessions); responses, SSE included, are relayed as they arrive."""

    def __init__(self, backends):
        self.backends = itertools.cycle(backends)
        self.lock = threading.Lock()
        self.served = {b: 0 for b in backends}
        proxy = self

        class Handler(http_server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def relay(self):
                with proxy.lock:
                    backend = next(proxy.backends)
                    proxy.served[backend] += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = urllib.parse.urlparse(backend)
                connection = http_client.HTTPConnection(target.hostname, target.port, timeout=120)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection", "content-length", "transfer-encoding")}
                connection.request(self.command, self.path, body or None, headers)
                response = connection.getresponse()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("connection", "content-length", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Connection", "close")
                self.end_headers()
                while chunk := response.read1(65536):
                    self.wfile.write(chunk)
                    self.wfile.flush()
                connection.close()
                self.close_connection = True

            do_GET = do_POST = do_DELETE = relay

        self.server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_official_sdk_behind_a_round_robin_load_balancer(replicas, queue_tool):
    npm_ready()
    a, b = replicas
    proxy = RoundRobinProxy([a.url, b.url])
    try:
        process = subprocess.Popen(["node", str(MCP_CLIENT / "client.mjs"), proxy.url], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        actor = FakeActor(queue_tool, a)
        actor.run_pipeline(actor.receive("echo", wait="30s"))
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        out = json.loads(stdout.strip().splitlines()[-1])
        assert out["sessionId"]
        assert {t["name"] for t in out["tools"]} == {"echo", "pipeline", "quick"}
        assert out["call"]["isError"] is False
        assert out["call"]["structuredContent"] == {"echo": {"text": "from-sdk", "count": 2, "mode": "fast"}}
        assert out["progress"], "no progress notifications reached the SDK"
        assert out["invalid"]["isError"] is True
        assert out["unknown"]["code"] == -32602
        assert out["afterEnd"] != "no error" and "Session not found" in out["afterEnd"]["message"]
        assert min(proxy.served.values()) >= 3, proxy.served  # both replicas answered the session
    finally:
        proxy.close()
    assert http_json("GET", a.url + "/readyz")[0] == 200
