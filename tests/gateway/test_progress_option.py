"""`progress` in routes.yaml (per tool and in `defaults`): with progress true an MCP tools/call that
sends a progressToken receives notifications/progress, with progress false it receives none (the
result still comes); an async answer advertises `stream_url` only with progress true, as in the
published design. Real gateway, real MCP TypeScript SDK, actors played through asya-queue."""
import json
import subprocess
import threading

import pytest

from gateway_harness import FakeActor, Gateway, http_json
from test_mcp import MCP_CLIENT, initialize, npm_ready, rpc

# `defaults.progress: false`: `quiet` inherits it, `loud` overrides it.
ROUTES_DEFAULT_OFF = """
defaults:
  progress: false
  timeout: 60
tools:
  - name: quiet
    parameters:
      text: {type: string, required: true}
    route: [quiet]
  - name: loud
    parameters:
      text: {type: string, required: true}
    route: [loud]
    progress: true
  - name: quiet_async
    parameters:
      text: {type: string, required: true}
    route: [quiet-async]
    async: true
  - name: loud_async
    parameters:
      text: {type: string, required: true}
    route: [loud-async]
    async: true
    progress: true
"""

# `defaults.progress: true`: `muted` turns it off for itself.
ROUTES_DEFAULT_ON = """
defaults:
  progress: true
  timeout: 60
tools:
  - name: muted
    parameters:
      text: {type: string, required: true}
    route: [muted]
    progress: false
  - name: chatty
    parameters:
      text: {type: string, required: true}
    route: [chatty]
"""


@pytest.fixture
def gateway_off(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES_DEFAULT_OFF).start()
    yield gw
    gw.stop()


@pytest.fixture
def gateway_on(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES_DEFAULT_ON).start()
    yield gw
    gw.stop()


def sdk_call(gateway, queue_tool, tool, actor_name, text):
    """Calls `tool` with the official SDK (which sends a progressToken because it has an
    onprogress handler) while a fake actor runs the pipeline; returns (result, progress list)."""
    npm_ready()
    process = subprocess.Popen(["node", str(MCP_CLIENT / "call_tool.mjs"), gateway.url, tool,
                                json.dumps({"text": text})], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    actor = FakeActor(queue_tool, gateway)
    actor.run_pipeline(actor.receive(actor_name, wait="30s"))
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    out = json.loads(stdout.strip().splitlines()[-1])
    return out["result"], out["progress"]


def raw_call(gateway, queue_tool, tool, actor_name, text):
    """tools/call with a progressToken and Accept: text/event-stream; returns every SSE message."""
    session, _ = initialize(gateway)
    call = {"jsonrpc": "2.0", "id": 11, "method": "tools/call",
            "params": {"name": tool, "arguments": {"text": text}, "_meta": {"progressToken": "tok"}}}
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("answer", rpc(gateway, call, session)))
    thread.start()
    actor = FakeActor(queue_tool, gateway)
    actor.run_pipeline(actor.receive(actor_name))
    thread.join(60)
    status, headers, body = box["answer"]
    assert status == 200, body
    assert headers["Content-Type"] == "text/event-stream"
    return [json.loads(line[len("data: "):]) for line in body.decode().splitlines() if line.startswith("data: ")]


def progress_of(messages):
    return [m["params"] for m in messages if m.get("method") == "notifications/progress"]


def test_sdk_gets_progress_only_from_tools_with_progress_true(gateway_off, queue_tool):
    result, progress = sdk_call(gateway_off, queue_tool, "loud", "loud", "a")
    assert result["isError"] is False and result["structuredContent"] == {"echo": {"text": "a"}}
    assert progress, "a progress: true tool sent no notifications/progress"
    values = [p["progress"] for p in progress]
    assert values == sorted(set(values)) and all(p["total"] == 100 for p in progress)

    result, progress = sdk_call(gateway_off, queue_tool, "quiet", "quiet", "b")
    assert result["isError"] is False and result["structuredContent"] == {"echo": {"text": "b"}}
    assert progress == []


def test_per_tool_progress_false_overrides_defaults_true(gateway_on, queue_tool):
    messages = raw_call(gateway_on, queue_tool, "muted", "muted", "m")
    assert progress_of(messages) == []
    assert messages[-1]["id"] == 11
    assert messages[-1]["result"]["structuredContent"] == {"echo": {"text": "m"}}

    messages = raw_call(gateway_on, queue_tool, "chatty", "chatty", "c")  # inherits defaults.progress
    assert [p["progress"] for p in progress_of(messages)][-1] >= 90
    assert messages[-1]["result"]["structuredContent"] == {"echo": {"text": "c"}}


def test_async_answers_advertise_the_stream_only_with_progress(gateway_off):
    _, answer, _ = http_json("POST", gateway_off.url + "/tools/call",
                             {"name": "quiet_async", "arguments": {"text": "q"}})
    info = answer["structuredContent"]
    assert set(info) == {"job_id", "status_url"}
    assert info["status_url"] == "/envelopes/" + info["job_id"]
    _, answer, _ = http_json("POST", gateway_off.url + "/tools/call",
                             {"name": "loud_async", "arguments": {"text": "l"}})
    info = answer["structuredContent"]
    assert info["stream_url"] == "/envelopes/%s/stream" % info["job_id"]
    # `"async": true` in the body (as `asya call` sends) follows the same rule.
    _, answer, _ = http_json("POST", gateway_off.url + "/tools/call",
                             {"name": "quiet", "arguments": {"text": "x"}, "async": True})
    assert "stream_url" not in answer["structuredContent"]
    _, answer, _ = http_json("POST", gateway_off.url + "/tools/call",
                             {"name": "loud", "arguments": {"text": "y"}, "async": True})
    assert "stream_url" in answer["structuredContent"]
