"""The generic MCP features (src/gateway/mcp/generic.hpp): logging/setLevel with
notifications/message from a real job, completion/complete, resources (job results as
asya://jobs/{id}) and prompts."""
import json
import threading

from gateway_harness import ROUTES, Gateway
from test_mcp import initialize, rpc


def call(gateway, session, method, params=None, request_id=7):
    message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    status, _, body = rpc(gateway, message, session)
    assert status == 200, body
    return json.loads(body)


def sse_messages(body):
    """The JSON messages of an SSE body (events without data, e.g. priming events, skipped)."""
    messages = []
    for block in body.decode().split("\n\n"):
        data = [line[len("data:"):].strip() for line in block.splitlines() if line.startswith("data:")]
        if data and data[0]:
            messages.append(json.loads("".join(data)))
    return messages


def test_initialize_advertises_the_generic_capabilities(gateway):
    _, answer = initialize(gateway, "2025-11-25")
    capabilities = answer["result"]["capabilities"]
    assert capabilities["logging"] == {}
    assert capabilities["completions"] == {}
    assert capabilities["resources"] == {"subscribe": False, "listChanged": False}
    assert capabilities["prompts"] == {"listChanged": False}


def test_a_log_level_brings_the_jobs_steps_as_log_notifications(gateway, actor):
    session, _ = initialize(gateway, "2025-11-25")
    assert call(gateway, session, "logging/setLevel", {"level": "info"})["result"] == {}
    answer = {}

    def tools_call():
        message = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "logged"}}}
        answer["response"] = rpc(gateway, message, session)

    caller = threading.Thread(target=tools_call)
    caller.start()
    envelope = actor.receive("echo", wait="30s")
    actor.run_pipeline(envelope)
    caller.join(timeout=60)
    status, headers, body = answer["response"]
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    messages = sse_messages(body)
    logs = [m["params"] for m in messages if m.get("method") == "notifications/message"]
    # info and above: the actor's "completed" step and the job's success; no debug steps.
    assert [(log["level"], log["data"]["envelope_state"]) for log in logs] == [
        ("info", "completed"), ("info", "succeeded")]
    assert all(log["data"]["id"] == envelope["id"] and log["logger"] == "asya" for log in logs)
    assert messages[-1]["id"] == 9 and messages[-1]["result"]["isError"] is False


def test_a_failed_job_logs_an_error_even_at_the_error_level(gateway, actor):
    session, _ = initialize(gateway, "2025-11-25")
    call(gateway, session, "logging/setLevel", {"level": "error"})
    answer = {}

    def tools_call():
        message = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "boom"}}}
        answer["response"] = rpc(gateway, message, session)

    caller = threading.Thread(target=tools_call)
    caller.start()
    envelope = actor.receive("echo", wait="30s")
    actor.progress(envelope["id"], ["echo"], 0, "received")
    actor.final(envelope["id"], "failed", error="handler raised ValueError: boom")
    caller.join(timeout=60)
    logs = [m["params"] for m in sse_messages(answer["response"][2]) if m.get("method") == "notifications/message"]
    assert len(logs) == 1
    assert logs[0]["level"] == "error"
    assert "boom" in logs[0]["data"]["error"]


def test_a_bad_log_level_is_an_invalid_params_error(gateway):
    session, _ = initialize(gateway, "2025-11-25")
    error = call(gateway, session, "logging/setLevel", {"level": "loud"})["error"]
    assert error["code"] == -32602
    assert '"loud"' in error["message"] and "debug, info" in error["message"]


def test_completion_of_enum_parameters_and_job_ids(gateway, actor):
    session, _ = initialize(gateway, "2025-11-25")
    done = call(gateway, session, "completion/complete",
                {"ref": {"type": "ref/tool", "name": "echo"}, "argument": {"name": "mode", "value": "sl"}})
    assert done["result"]["completion"] == {"values": ["slow"], "total": 1, "hasMore": False}
    everything = call(gateway, session, "completion/complete",
                      {"ref": {"type": "ref/tool", "name": "echo"}, "argument": {"name": "mode", "value": ""}})
    assert everything["result"]["completion"]["values"] == ["fast", "slow"]
    started = call(gateway, session, "tools/call", {"name": "pipeline", "arguments": {"text": "x"}})
    job_id = json.loads(started["result"]["content"][0]["text"])["job_id"]
    ids = call(gateway, session, "completion/complete",
               {"ref": {"type": "ref/resource", "uri": "asya://jobs/{id}"},
                "argument": {"name": "id", "value": job_id[:4]}})
    assert ids["result"]["completion"]["values"] == [job_id]
    none = call(gateway, session, "completion/complete",
                {"ref": {"type": "ref/prompt", "name": "anything"}, "argument": {"name": "a", "value": ""}})
    assert none["result"]["completion"]["values"] == []
    unknown = call(gateway, session, "completion/complete",
                   {"ref": {"type": "ref/tool", "name": "nope"}, "argument": {"name": "mode", "value": ""}})
    assert unknown["error"]["code"] == -32602 and '"nope"' in unknown["error"]["message"]
    bad = call(gateway, session, "completion/complete", {"ref": {"type": "ref/x"}, "argument": {}})
    assert bad["error"]["code"] == -32602 and "ref/x" in bad["error"]["message"]
    assert call(gateway, session, "completion/complete", {})["error"]["code"] == -32602


def test_jobs_are_resources(gateway, actor):
    session, _ = initialize(gateway, "2025-11-25")
    templates = call(gateway, session, "resources/templates/list")["result"]["resourceTemplates"]
    assert [t["uriTemplate"] for t in templates] == ["asya://jobs/{id}"]
    assert call(gateway, session, "resources/list")["result"] == {"resources": []}
    started = call(gateway, session, "tools/call", {"name": "pipeline", "arguments": {"text": "res"}})
    job_id = json.loads(started["result"]["content"][0]["text"])["job_id"]
    envelope = actor.receive("first", wait="30s")
    actor.final(envelope["id"], "succeeded", {"answer": 42})
    resources = call(gateway, session, "resources/list")["result"]["resources"]
    assert [r["uri"] for r in resources] == [f"asya://jobs/{job_id}"]
    assert resources[0]["mimeType"] == "application/json" and "pipeline" in resources[0]["description"]
    # Read from another session too: the job store answers.
    other, _ = initialize(gateway, "2025-06-18")
    contents = call(gateway, other, "resources/read", {"uri": f"asya://jobs/{job_id}"})["result"]["contents"]
    assert contents[0]["uri"] == f"asya://jobs/{job_id}" and contents[0]["mimeType"] == "application/json"
    document = json.loads(contents[0]["text"])
    assert document["status"] == "succeeded" and document["result"] == {"answer": 42}
    missing = call(gateway, other, "resources/read", {"uri": "asya://jobs/no-such-job"})["error"]
    assert missing["code"] == -32002 and "no-such-job" in missing["message"]
    bad = call(gateway, other, "resources/read", {"uri": "file:///etc/passwd"})["error"]
    assert bad["code"] == -32602 and "asya://jobs/{id}" in bad["message"]


def test_prompts_are_empty(gateway):
    session, _ = initialize(gateway, "2025-11-25")
    assert call(gateway, session, "prompts/list")["result"] == {"prompts": []}
    error = call(gateway, session, "prompts/get", {"name": "summarize"})["error"]
    assert error["code"] == -32602 and '"summarize"' in error["message"]


def test_tasks_are_resources_of_their_caller_only(gateway_binary, tmp_path):
    """An MCP task (tools/call with `task`) is one of the session's jobs (resources/list, job id
    completion); another caller's task reads as unknown (resources/read -32002)."""
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_TOKEN": "alice-token,bob-token"}).start()
    try:
        alice = {"Authorization": "Bearer alice-token", "Accept": "application/json, text/event-stream"}
        bob = {"Authorization": "Bearer bob-token", "Accept": "application/json, text/event-stream"}

        def session_of(headers):
            status, response_headers, body = rpc(gw, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                                      "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                                                 "clientInfo": {"name": "t", "version": "1"}}},
                                                 extra=headers)
            assert status == 200, body
            assert "tasks" in json.loads(body)["result"]["capabilities"]
            return response_headers["Mcp-Session-Id"]

        def ask(session, headers, method, params):
            status, _, body = rpc(gw, {"jsonrpc": "2.0", "id": 3, "method": method, "params": params},
                                  session, headers)
            assert status == 200, body
            return json.loads(body)

        alice_session, bob_session = session_of(alice), session_of(bob)
        task_id = ask(alice_session, alice, "tools/call",
                      {"name": "pipeline", "arguments": {"text": "r"}, "task": {}})["result"]["task"]["taskId"]
        listed = ask(alice_session, alice, "resources/list", {})["result"]["resources"]
        assert [r["uri"] for r in listed] == ["asya://jobs/" + task_id]
        completed = ask(alice_session, alice, "completion/complete",
                        {"ref": {"type": "ref/resource", "uri": "asya://jobs/{id}"},
                         "argument": {"name": "id", "value": task_id[:4]}})["result"]["completion"]
        assert completed["values"] == [task_id]
        read = ask(alice_session, alice, "resources/read", {"uri": "asya://jobs/" + task_id})["result"]
        assert json.loads(read["contents"][0]["text"])["id"] == task_id
        hidden = ask(bob_session, bob, "resources/read", {"uri": "asya://jobs/" + task_id})["error"]
        assert hidden["code"] == -32002 and "asya://jobs/" + task_id in hidden["message"]
        assert ask(bob_session, bob, "resources/list", {})["result"] == {"resources": []}
    finally:
        gw.stop()
