"""Resumable MCP SSE streams (src/gateway/mcp/streams.hpp, SEP-1699): priming events with ids,
streams closed for polling (ASYA_GATEWAY_MCP_POLL_AFTER), GET /mcp with Last-Event-ID, and the
session's standalone GET stream."""
import json
import threading

import pytest

from gateway_harness import ROUTES, FakeActor, Gateway, http
from sse import SseStream
from test_mcp import initialize, rpc
from test_mcp_generic import sse_messages


@pytest.fixture
def polling_gateway(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES,
                 {"ASYA_GATEWAY_MCP_POLL_AFTER": "300ms", "ASYA_GATEWAY_KEEPALIVE": "1s"}).start()
    yield gw
    gw.stop()


def sse_events(body):
    """(id, data text) of every event of an SSE body."""
    events = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
                      for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            events.append((fields.get("id"), fields.get("data", ""), fields.get("retry")))
    return events


def test_a_closed_stream_is_resumed_with_last_event_id(polling_gateway, queue_tool):
    actor = FakeActor(queue_tool, polling_gateway)
    session, _ = initialize(polling_gateway, "2025-11-25")
    call = {"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "resumed"}}}
    status, headers, body = rpc(polling_gateway, call, session)
    # The POST stream: only the priming event (id, retry, empty data), then closed at 300 ms.
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    events = sse_events(body)
    assert len(events) == 1, events
    event_id, data, retry = events[0]
    assert event_id and data == "" and retry == "300"
    assert not sse_messages(body)
    envelope = actor.receive("echo", wait="30s")
    assert event_id.startswith(envelope["id"] + "/")

    finisher = threading.Timer(1.5, lambda: actor.run_pipeline(envelope))
    finisher.start()
    status, headers, body = http("GET", polling_gateway.url + "/mcp", headers={
        "Accept": "text/event-stream", "Mcp-Session-Id": session, "Last-Event-ID": event_id}, timeout=60)
    finisher.join()
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    answers = [(i, json.loads(d)) for i, d, _ in sse_events(body) if d]
    assert len(answers) == 1
    result_id, answer = answers[0]
    assert answer["id"] == "call-1"
    assert answer["result"]["structuredContent"] == {"echo": {"text": "resumed", "count": 2, "mode": "fast"}}
    assert b": keepalive" in body, "no keepalive while the job ran (ASYA_GATEWAY_KEEPALIVE 1s)"
    # Resuming after the result: nothing more, the stream ends at once.
    status, _, rest = http("GET", polling_gateway.url + "/mcp", headers={
        "Accept": "text/event-stream", "Mcp-Session-Id": session, "Last-Event-ID": result_id})
    assert status == 200 and rest == b""


def test_bad_resumptions_get_precise_errors(polling_gateway):
    session, _ = initialize(polling_gateway, "2025-11-25")
    base = {"Accept": "text/event-stream", "Mcp-Session-Id": session}
    status, _, body = http("GET", polling_gateway.url + "/mcp", headers=dict(base, **{"Last-Event-ID": "garbage"}))
    assert status == 400 and '"garbage" is not an event id' in json.loads(body)["error"]["message"]
    unknown = "no-such-job/p/31"  # request id 1
    status, _, body = http("GET", polling_gateway.url + "/mcp", headers=dict(base, **{"Last-Event-ID": unknown}))
    assert status == 404 and '"no-such-job"' in json.loads(body)["error"]["message"]
    status, _, _ = http("GET", polling_gateway.url + "/mcp", headers={"Accept": "text/event-stream",
                                                                      "Mcp-Session-Id": "nope"})
    assert status == 404
    assert http("GET", polling_gateway.url + "/mcp", headers={"Accept": "text/event-stream"})[0] == 400


def test_the_standalone_stream_primes_and_keeps_alive(polling_gateway):
    session, _ = initialize(polling_gateway, "2025-11-25")
    stream = SseStream(polling_gateway.url + "/mcp", {"Accept": "text/event-stream", "Mcp-Session-Id": session},
                       timeout=10)
    assert stream.status == 200
    lines = [stream.response.readline().decode().rstrip("\r\n") for _ in range(5)]
    assert lines[0].startswith("id: ") and lines[1].startswith("retry: ") and lines[2] == "data: "
    assert lines[3] == "" and lines[4] == ": keepalive"  # after ASYA_GATEWAY_KEEPALIVE (1s)
    stream.close()


def test_older_sessions_keep_one_stream_to_the_end_without_priming(polling_gateway, queue_tool):
    actor = FakeActor(queue_tool, polling_gateway)
    session, _ = initialize(polling_gateway, "2025-06-18")
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "whole"}, "_meta": {"progressToken": "t"}}}
    answer = {}
    caller = threading.Thread(target=lambda: answer.update(r=rpc(polling_gateway, call, session)))
    caller.start()
    envelope = actor.receive("echo", wait="30s")
    threading.Timer(0.8, lambda: actor.run_pipeline(envelope)).start()
    caller.join(timeout=60)
    events = sse_events(answer["r"][2])
    assert all(data for _, data, _ in events)  # no priming event: it is new in 2025-11-25
    messages = sse_messages(answer["r"][2])
    assert messages[-1]["id"] == 5 and messages[-1]["result"]["isError"] is False
