"""notifications/cancelled on /mcp (issue 11, item 9; issue 17): a tools/call the client cancelled
is never answered as a success, and its job is cancelled (its next actors are told to skip it)."""
import http.client as http_client
import json
import threading
import urllib.parse

from gateway_harness import http, http_json, wait_until
from test_mcp import ACCEPT, initialize, rpc


def cancel(gateway, session, request_id, reason="user pressed stop"):
    notification = {"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": request_id, "reason": reason}}
    status, _, body = rpc(gateway, notification, session)
    assert status == 202, body


def test_a_cancelled_streamed_call_ends_its_stream_without_a_result(gateway, actor):
    session, _ = initialize(gateway)
    url = urllib.parse.urlparse(gateway.url)
    connection = http_client.HTTPConnection(url.hostname, url.port, timeout=60)
    call = {"jsonrpc": "2.0", "id": "call-7", "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hi"}, "_meta": {"progressToken": "p"}}}
    connection.request("POST", "/mcp", json.dumps(call), dict(ACCEPT, **{"Mcp-Session-Id": session}))
    response = connection.getresponse()
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    envelope = actor.receive("echo")  # the job runs

    cancel(gateway, session, "call-7")
    stream = response.read().decode()  # returns when the gateway ends the stream
    messages = [json.loads(line[len("data: "):]) for line in stream.splitlines() if line.startswith("data: ")]
    assert not [m for m in messages if m.get("id") == "call-7"], stream
    connection.close()
    wait_until(lambda: "cancelled by the client: user pressed stop" in gateway.log.read_text(),
               what="the cancellation in the gateway log")

    # The job is cancelled too: a sidecar's next report is told so, and a late result changes
    # nothing.
    status, job, _ = http_json("GET", f"{gateway.url}/envelopes/{envelope['id']}")
    assert status == 200 and job["status"] == "cancelled", job
    assert "notifications/cancelled): user pressed stop" in job["error"]
    assert actor.progress(envelope["id"], ["echo"], 0, "received")[1]["cancelled"] is True
    actor.run_pipeline(envelope)
    assert http_json("GET", f"{gateway.url}/envelopes/{envelope['id']}")[1]["status"] == "cancelled"


def test_a_cancelled_json_call_is_answered_with_an_error_not_the_result(gateway, actor):
    session, _ = initialize(gateway)
    answers = []
    call = {"jsonrpc": "2.0", "id": 41, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hi"}}}
    caller = threading.Thread(target=lambda: answers.append(rpc(gateway, call, session)))
    caller.start()
    envelope = actor.receive("echo")
    cancel(gateway, session, 41)
    caller.join(60)
    assert not caller.is_alive()
    status, _, body = answers[0]
    answer = json.loads(body)
    assert status == 200 and "result" not in answer, answer
    assert answer["id"] == 41 and answer["error"]["code"] == -32800
    assert "cancelled" in answer["error"]["message"]
    actor.run_pipeline(envelope)  # a late result changes nothing for the cancelled request


def test_cancelling_an_unknown_or_finished_request_is_ignored(gateway):
    session, _ = initialize(gateway)
    cancel(gateway, session, 999)
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    status, _, body = rpc(gateway, ping, session)
    assert status == 200 and json.loads(body)["result"] == {}


def test_a_protocol_version_header_must_name_a_supported_version(gateway):
    """The header must name a supported version; another supported version than the negotiated
    one is accepted (the spec says SHOULD send the negotiated one, and the official conformance
    suite sends 2025-03-26 in a 2025-11-25 session), and the session keeps its version."""
    session, _ = initialize(gateway, "2025-06-18")
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    status, _, body = rpc(gateway, ping, session, {"MCP-Protocol-Version": "2024-10-01"})
    assert status == 400
    assert 'unsupported MCP-Protocol-Version "2024-10-01"' in json.loads(body)["error"]["message"]
    assert rpc(gateway, ping, session, {"MCP-Protocol-Version": "2025-03-26"})[0] == 200
    assert rpc(gateway, ping, session, {"MCP-Protocol-Version": "2025-06-18"})[0] == 200
    assert rpc(gateway, ping, session)[0] == 200  # absent: the negotiated version is assumed
    # The session still speaks 2025-06-18: no tasks, even with a 2025-11-25 header.
    listed = rpc(gateway, {"jsonrpc": "2.0", "id": 3, "method": "tasks/list"}, session,
                 {"MCP-Protocol-Version": "2025-11-25", "Accept": "application/json"})
    assert json.loads(listed[2])["error"]["code"] == -32601


def test_the_official_sdk_cancelling_a_call_gets_no_result(gateway, actor):
    import subprocess
    from test_mcp import MCP_CLIENT, npm_ready
    npm_ready()
    process = subprocess.Popen(["node", str(MCP_CLIENT / "cancel_tool.mjs"), gateway.url, "echo", '{"text": "hi"}'],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(process.stdout.readline()) == {"started": True}
        envelope = actor.receive("echo")  # the job runs
        process.stdin.write("cancel\n")
        process.stdin.flush()
        # The gateway acted on the SDK's notifications/cancelled: the call's wait ended and its
        # job is cancelled, so no result is sent, even when a late report arrives below.
        wait_until(lambda: "cancelled by the client: user pressed stop" in gateway.log.read_text(),
                   what="the SDK's cancellation in the gateway log")
        wait_until(lambda: http_json("GET", f"{gateway.url}/envelopes/{envelope['id']}")[1]["status"] == "cancelled",
                   what="the job to be cancelled")
        actor.run_pipeline(envelope)
        process.stdin.write("done\n")
        process.stdin.flush()
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert "user pressed stop" in report["error"], report
    assert report["results"] == [], report
