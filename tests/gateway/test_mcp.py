"""MCP Streamable HTTP at /mcp: raw protocol checks, and the official TypeScript SDK as a client."""
import json
import os
import pathlib
import shutil
import subprocess
import threading

import pytest

from gateway_harness import http, http_json

MCP_CLIENT = pathlib.Path(__file__).resolve().parent / "mcp_client"
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def rpc(gateway, message, session=None, extra=None):
    headers = dict(ACCEPT)
    if session:
        headers["Mcp-Session-Id"] = session
    headers.update(extra or {})
    status, response_headers, body = http("POST", gateway.url + "/mcp", json.dumps(message), headers)
    return status, response_headers, body


def initialize(gateway, version="2025-06-18"):
    status, headers, body = rpc(gateway, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                          "params": {"protocolVersion": version, "capabilities": {},
                                                     "clientInfo": {"name": "t", "version": "1"}}})
    assert status == 200, body
    return headers["Mcp-Session-Id"], json.loads(body)


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
def test_initialize_echoes_a_supported_version(gateway, version):
    session, answer = initialize(gateway, version)
    assert session
    assert answer["result"]["protocolVersion"] == version
    assert answer["result"]["capabilities"]["tools"] == {"listChanged": False}
    assert answer["result"]["serverInfo"]["name"] == "asya-gateway"


def test_initialize_with_an_unknown_version_gets_the_latest(gateway):
    _, answer = initialize(gateway, "1999-01-01")
    assert answer["result"]["protocolVersion"] == "2025-11-25"


def test_sessions_headers_and_origins_are_checked(gateway):
    session, _ = initialize(gateway)
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    status, _, body = rpc(gateway, ping, session)
    assert status == 200 and json.loads(body) == {"jsonrpc": "2.0", "id": 2, "result": {}}
    assert rpc(gateway, ping)[0] == 400  # no session
    assert rpc(gateway, ping, "unknown-session")[0] == 404
    status, _, body = rpc(gateway, ping, session, {"MCP-Protocol-Version": "2000-01-01"})
    assert status == 400 and "MCP-Protocol-Version" in json.loads(body)["error"]["message"]
    assert rpc(gateway, ping, session, {"MCP-Protocol-Version": "2025-06-18"})[0] == 200
    status, _, body = rpc(gateway, ping, session, {"Origin": "http://evil.example"})
    assert status == 403
    assert rpc(gateway, ping, session, {"Origin": "http://localhost:3000"})[0] == 200
    notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert rpc(gateway, notification, session)[0] == 202
    # GET opens an SSE stream (test_mcp_streams.py): without Accept: text/event-stream, 406.
    assert http("GET", gateway.url + "/mcp", headers={"Mcp-Session-Id": session})[0] == 406
    assert http("PUT", gateway.url + "/mcp", b"{}", headers={"Mcp-Session-Id": session})[0] == 405
    assert http("DELETE", gateway.url + "/mcp", headers={"Mcp-Session-Id": session})[0] == 200
    assert rpc(gateway, ping, session)[0] == 404


def test_json_rpc_errors_have_the_right_codes(gateway):
    session, _ = initialize(gateway)
    status, _, body = http("POST", gateway.url + "/mcp", b"{oops", dict(ACCEPT, **{"Mcp-Session-Id": session}))
    assert status == 400 and json.loads(body)["error"]["code"] == -32700
    status, _, body = rpc(gateway, {"jsonrpc": "1.0", "id": 3, "method": "ping"}, session)
    assert json.loads(body)["error"]["code"] == -32600
    status, _, body = rpc(gateway, {"jsonrpc": "2.0", "id": 4, "method": "no/such-method"}, session)
    assert status == 200 and json.loads(body)["error"]["code"] == -32601
    status, _, body = rpc(gateway, {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                                    "params": {"name": "nope", "arguments": {}}}, session)
    assert json.loads(body)["error"]["code"] == -32602


def test_tools_list_and_invalid_arguments(gateway):
    session, _ = initialize(gateway)
    _, _, body = rpc(gateway, {"jsonrpc": "2.0", "id": 6, "method": "tools/list"}, session)
    tools = {t["name"]: t for t in json.loads(body)["result"]["tools"]}
    assert set(tools) == {"echo", "pipeline", "quick"}
    assert tools["echo"]["inputSchema"]["properties"]["count"]["type"] == "integer"
    _, _, body = rpc(gateway, {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                               "params": {"name": "echo", "arguments": {"text": "a", "mode": "warp"}}}, session)
    result = json.loads(body)["result"]
    assert result["isError"] is True
    assert result["content"][0]["text"] == 'invalid argument mode: expected one of "fast", "slow", got "warp"'


def test_tools_call_streams_progress_over_sse(gateway, actor):
    session, _ = initialize(gateway)
    call = {"jsonrpc": "2.0", "id": 8, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "p"}, "_meta": {"progressToken": "tok"}}}
    box = {}

    def run():
        box["answer"] = rpc(gateway, call, session)

    thread = threading.Thread(target=run)
    thread.start()
    envelope = actor.receive("echo")
    actor.run_pipeline(envelope)
    thread.join(60)
    status, headers, body = box["answer"]
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    messages = [json.loads(line[len("data: "):]) for line in body.decode().splitlines() if line.startswith("data: ")]
    progress = [m["params"] for m in messages if m.get("method") == "notifications/progress"]
    assert progress and all(p["progressToken"] == "tok" and p["total"] == 100 for p in progress)
    values = [p["progress"] for p in progress]
    assert values == sorted(set(values))
    final = messages[-1]
    assert final["id"] == 8 and final["result"]["structuredContent"] == {"echo": {"text": "p", "count": 2,
                                                                                    "mode": "fast"}}
    # The result names its job (GET /envelopes/{id}, /trace).
    assert final["result"]["_meta"]["asya.sh/job_id"] == envelope["id"]


def npm_ready():
    if not (MCP_CLIENT / "node_modules" / "@modelcontextprotocol" / "sdk").exists():
        npm = shutil.which("npm")
        if not npm:
            pytest.fail("npm not installed: the MCP conformance test needs node and npm")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=MCP_CLIENT, check=True, timeout=600)


def test_official_typescript_sdk_client(gateway, actor):
    npm_ready()
    process = subprocess.Popen(["node", str(MCP_CLIENT / "client.mjs"), gateway.url], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    envelope = actor.receive("echo", wait="30s")
    actor.run_pipeline(envelope)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["sessionId"]
    assert out["serverInfo"]["name"] == "asya-gateway"
    assert {t["name"] for t in out["tools"]} == {"echo", "pipeline", "quick"}
    assert out["call"]["isError"] is False
    assert out["call"]["structuredContent"] == {"echo": {"text": "from-sdk", "count": 2, "mode": "fast"}}
    assert out["progress"], "no progress notifications reached the SDK"
    assert out["progress"][-1]["total"] == 100
    assert out["invalid"]["isError"] is True
    assert "text" in out["invalid"]["content"][0]["text"]
    assert out["unknown"]["code"] == -32602
    assert out["terminatedSessionId"] is None
    assert out["afterEnd"] != "no error" and "Session not found" in out["afterEnd"]["message"]


def test_allowed_origins_extend_the_localhost_default(gateway_binary, tmp_path):
    from gateway_harness import Gateway, ROUTES
    gw = Gateway(gateway_binary, tmp_path, ROUTES,
                 {"ASYA_GATEWAY_ALLOWED_ORIGINS": "https://app.example.com, http://tools.internal:9000"}).start()
    try:
        session, _ = initialize(gw)
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        for origin in ("https://app.example.com", "http://tools.internal:9000", "http://127.0.0.1:5173",
                       "https://[::1]:8443", "http://localhost"):
            assert rpc(gw, ping, session, {"Origin": origin})[0] == 200, origin
        for origin in ("https://app.example.com.evil.net", "http://tools.internal:9001", "http://localhost.evil.net",
                       "null", "https://evil.example"):
            status, _, body = rpc(gw, ping, session, {"Origin": origin})
            assert status == 403, origin
            assert origin in json.loads(body)["error"]["message"]
        # The check comes before the session: a forbidden origin cannot even initialize.
        status, _, _ = rpc(gw, {"jsonrpc": "2.0", "id": 2, "method": "initialize",
                                "params": {"protocolVersion": "2025-06-18"}}, extra={"Origin": "https://evil.example"})
        assert status == 403
    finally:
        gw.stop()


def test_batches_only_in_2025_03_26_sessions(gateway):
    session, _ = initialize(gateway, "2025-03-26")
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"},
             {"jsonrpc": "2.0", "method": "notifications/initialized"},
             {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
             {"jsonrpc": "2.0", "id": 3, "method": "nope"}]
    status, _, body = rpc(gateway, batch, session)
    assert status == 200
    answers = {a["id"]: a for a in json.loads(body)}
    assert set(answers) == {1, 2, 3}
    assert answers[1]["result"] == {}
    assert {t["name"] for t in answers[2]["result"]["tools"]} == {"echo", "pipeline", "quick"}
    assert answers[3]["error"]["code"] == -32601
    for version in ("2024-11-05", "2025-06-18", "2025-11-25"):
        session, _ = initialize(gateway, version)
        status, _, body = rpc(gateway, batch, session)
        error = json.loads(body)["error"]
        assert status == 400 and error["code"] == -32600 and version in error["message"], version


def test_sessions_expire_when_unused(gateway_binary, tmp_path):
    import time
    from gateway_harness import Gateway, ROUTES
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_MCP_SESSION_TIMEOUT": "2s"}).start()
    try:
        idle, _ = initialize(gw)
        busy, _ = initialize(gw)
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        # `busy` is used every 0.2 s for 3 s (longer than the timeout) and stays; `idle` is not.
        end = time.monotonic() + 3
        while time.monotonic() < end:
            assert rpc(gw, ping, busy)[0] == 200
            time.sleep(0.2)
        status, _, body = rpc(gw, ping, idle)
        assert status == 404 and "expired" in json.loads(body)["error"]["message"]
        assert rpc(gw, ping, busy)[0] == 200
        time.sleep(2.5)  # the behaviour under test is inactivity
        assert rpc(gw, ping, busy)[0] == 404
        metrics = http("GET", gw.url + "/metrics")[2].decode()
        assert "asya_gateway_mcp_sessions 0" in metrics
    finally:
        gw.stop()


def test_tools_call_stream_sends_keepalives_while_waiting(gateway_binary, tmp_path, queue_tool):
    import http.client
    from gateway_harness import FakeActor, Gateway, ROUTES
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_KEEPALIVE": "300ms"}).start()
    try:
        session, _ = initialize(gw)
        call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "k"}, "_meta": {"progressToken": 7}}}
        connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        connection.request("POST", "/mcp", json.dumps(call), dict(ACCEPT, **{"Mcp-Session-Id": session}))
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
        comments = 0
        while comments < 2:  # two keepalives while nothing happens
            line = response.readline()
            assert line, "the stream ended early"
            comments += line.decode().rstrip("\r\n") == ": keepalive"
        actor = FakeActor(queue_tool, gw)
        actor.run_pipeline(actor.receive("echo"))
        rest = response.read().decode()
        messages = [json.loads(line[len("data: "):]) for line in rest.splitlines() if line.startswith("data: ")]
        assert messages[-1]["id"] == 9
        assert messages[-1]["result"]["structuredContent"] == {"echo": {"text": "k", "count": 2, "mode": "fast"}}
        assert any(m.get("method") == "notifications/progress" for m in messages)
        connection.close()
    finally:
        gw.stop()
