"""A2A (src/gateway/a2a/a2a.hpp) with the official A2A JS SDK client (tests/gateway/a2a_client,
@a2a-js/sdk through its A2A 0.3 compatibility layer) against a real gateway, the actors played
through the real queue; raw JSON-RPC for the error codes."""
import json
import pathlib
import shutil
import subprocess

import pytest

from gateway_harness import ROUTES, Gateway, http, http_json

A2A_CLIENT = pathlib.Path(__file__).resolve().parent / "a2a_client"
# The SDK's (A2A 1.0) task states.
SUBMITTED, WORKING, COMPLETED, FAILED, CANCELED = 1, 2, 3, 4, 5


def a2a_ready():
    if not (A2A_CLIENT / "node_modules" / "@a2a-js" / "sdk").exists():
        npm = shutil.which("npm")
        if not npm:
            pytest.fail("npm not installed: the A2A client test needs node and npm (scripts/setup)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=A2A_CLIENT, check=True, timeout=600)


def sdk(gateway, *args):
    """Starts the SDK client; returns the process (stdout: one JSON object per line)."""
    a2a_ready()
    return subprocess.Popen(["node", str(A2A_CLIENT / "client.mjs"), gateway.url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def outputs(process, timeout=120):
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def rpc(gateway, method, params, request_id=1):
    return http_json("POST", gateway.url + "/a2a", {"jsonrpc": "2.0", "id": request_id, "method": method,
                                                   "params": params}, gateway.client_headers())


def send_raw(gateway, text="raw", skill="echo"):
    message = {"kind": "message", "messageId": "m-1", "role": "user",
               "parts": [{"kind": "data", "data": {"text": text}}], "metadata": {"skill": skill}}
    status, answer, _ = rpc(gateway, "message/send", {"message": message})
    assert status == 200, answer
    return answer


def test_the_agent_card_lists_the_tools_as_skills(gateway):
    status, card, _ = http_json("GET", gateway.url + "/.well-known/agent-card.json")
    assert status == 200
    assert [s["id"] for s in card["skills"]] == ["echo", "pipeline", "quick"]
    assert card["url"] == gateway.url + "/a2a" and card["preferredTransport"] == "JSONRPC"
    assert card["capabilities"]["streaming"] is True
    (seen,) = [o for o in outputs(sdk(gateway, "card")) if "card" in o]
    assert [s["id"] for s in seen["card"]["skills"]] == ["echo", "pipeline", "quick"]


def test_send_returns_a_task_that_get_follows_to_the_result(gateway, actor):
    (sent,) = [o["sent"] for o in outputs(sdk(gateway, "send", "to-the-end")) if "sent" in o]
    assert sent["status"]["state"] == SUBMITTED
    envelope = actor.receive("echo", wait="30s")
    assert envelope["id"] == sent["id"] and envelope["payload"]["text"] == "to-the-end"
    actor.run_pipeline(envelope)
    (task,) = [o["task"] for o in outputs(sdk(gateway, "get", sent["id"])) if "task" in o]
    assert task["status"]["state"] == COMPLETED
    data = task["artifacts"][0]["parts"][0]["content"]["value"]
    assert data == {"echo": {"text": "to-the-end", "count": 2, "mode": "fast"}}


def test_a_blocking_send_returns_the_finished_task(gateway, actor):
    process = sdk(gateway, "sendwait", "blocking")
    envelope = actor.receive("echo", wait="30s")
    actor.run_pipeline(envelope)
    (sent,) = [o["sent"] for o in outputs(process) if "sent" in o]
    assert sent["id"] == envelope["id"] and sent["status"]["state"] == COMPLETED
    assert sent["artifacts"][0]["parts"][0]["content"]["value"]["echo"]["text"] == "blocking"


def test_stream_carries_progress_the_result_and_the_final_status(gateway, actor):
    process = sdk(gateway, "stream", "streamed")
    envelope = actor.receive("echo", wait="30s")
    actor.run_pipeline(envelope)
    events = [o["event"]["payload"] for o in outputs(process) if "event" in o]
    kinds = [e["$case"] for e in events]
    assert kinds[0] == "task" and events[0]["value"]["id"] == envelope["id"]
    working = [e["value"] for e in events if e["$case"] == "statusUpdate" and e["value"]["status"]["state"] == WORKING]
    assert any("echo: processing" in w["status"]["message"]["parts"][0]["content"]["value"] for w in working)
    artifact = [e["value"] for e in events if e["$case"] == "artifactUpdate"]
    assert artifact[0]["artifact"]["parts"][0]["content"]["value"]["echo"]["text"] == "streamed"
    assert kinds[-1] == "statusUpdate" and events[-1]["value"]["status"]["state"] == COMPLETED


def test_resubscribe_follows_a_running_task_to_its_end(gateway, actor):
    task_id = send_raw(gateway, "again")["result"]["id"]
    process = sdk(gateway, "resubscribe", task_id)
    envelope = actor.receive("echo", wait="30s")
    actor.run_pipeline(envelope)
    events = [o["event"]["payload"] for o in outputs(process) if "event" in o]
    assert events[0]["$case"] == "task" and events[0]["value"]["id"] == task_id
    assert events[-1]["value"]["status"]["state"] == COMPLETED


def test_cancel_stops_a_running_task_and_the_next_actor_is_told_to_skip_it(gateway, actor):
    process = sdk(gateway, "stream", "stop me")
    envelope = actor.receive("echo", wait="30s")
    task_id = envelope["id"]
    actors = envelope["route"]["actors"]
    assert actor.progress(task_id, actors, 0, "received")[1]["job_status"] == "running"
    (cancelled,) = [o["cancelled"] for o in outputs(sdk(gateway, "cancel", task_id)) if "cancelled" in o]
    assert cancelled["id"] == task_id and cancelled["status"]["state"] == CANCELED
    # The stream that followed the task ends with the canceled state.
    events = [o["event"]["payload"] for o in outputs(process) if "event" in o]
    assert events[-1]["$case"] == "statusUpdate" and events[-1]["value"]["status"]["state"] == CANCELED
    # The job is cancelled: the next sidecar skips the envelope (PROTOCOL §7).
    assert http_json("GET", f"{gateway.url}/envelopes/{task_id}", None, gateway.client_headers())[1]["status"] == "cancelled"
    status, answer, _ = actor.progress(task_id, actors, 0, "processing")
    assert status == 200 and answer["cancelled"] is True
    status, answer, _ = rpc(gateway, "tasks/get", {"id": task_id})
    assert answer["result"]["status"]["state"] == "canceled"
    # Cancelling again: the task already ended.
    status, answer, _ = rpc(gateway, "tasks/cancel", {"id": task_id})
    assert answer["error"]["code"] == -32002 and "already canceled" in answer["error"]["message"]


def test_a_finished_or_unknown_task_gets_the_a2a_errors(gateway, actor):
    task_id = send_raw(gateway, "finished")["result"]["id"]
    actor.run_pipeline(actor.receive("echo", wait="30s"))
    (error,) = [o["error"] for o in outputs(sdk(gateway, "cancel", task_id)) if "error" in o]
    assert "cannot be canceled" in error["message"]
    status, answer, _ = rpc(gateway, "tasks/cancel", {"id": task_id})
    assert answer["error"]["code"] == -32002 and "already completed" in answer["error"]["message"]
    assert rpc(gateway, "tasks/get", {"id": task_id})[1]["result"]["status"]["state"] == "completed"
    status, answer, _ = rpc(gateway, "tasks/get", {"id": "no-such-task"})
    assert answer["error"] == {"code": -32001, "message": 'Task not found: "no-such-task"'}
    status, answer, _ = rpc(gateway, "tasks/cancel", {"id": "no-such-task"})
    assert answer["error"]["code"] == -32001
    (error,) = [o["error"] for o in outputs(sdk(gateway, "get", "no-such-task")) if "error" in o]
    assert "no-such-task" in error["message"]


def test_bad_input_gets_the_right_json_rpc_errors(gateway):
    (error,) = [o["error"] for o in outputs(sdk(gateway, "bad")) if "error" in o]
    assert 'skill "echo"' in error["message"] and "text" in error["message"]
    status, _, body = http("POST", gateway.url + "/a2a", b"{oops", {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body)["error"]["code"] == -32700
    assert rpc(gateway, "message/teleport", {})[1]["error"]["code"] == -32601
    answer = rpc(gateway, "message/send", {"message": {"parts": [{"kind": "data", "data": {"text": "x"}}]}})[1]
    assert answer["error"]["code"] == -32602 and "message.metadata.skill" in answer["error"]["message"]
    answer = send_raw(gateway, skill="nope")
    assert answer["error"]["code"] == -32602 and '"nope"' in answer["error"]["message"]
    answer = rpc(gateway, "message/send", {"message": {"parts": [], "metadata": {"skill": "echo"}}})[1]
    assert answer["error"]["code"] == -32602 and "parts" in answer["error"]["message"]
    assert rpc(gateway, "tasks/get", {})[1]["error"]["code"] == -32602
    assert rpc(gateway, "tasks/pushNotificationConfig/set", {"taskId": "x"})[1]["error"]["code"] == -32003
    status, answer, _ = http_json("POST", gateway.url + "/a2a", {"jsonrpc": "1.0", "id": 1, "method": "tasks/get"})
    assert answer["error"]["code"] == -32600


def test_a2a_needs_the_client_token(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_TOKEN": "secret-a2a"}).start()
    try:
        assert http("GET", gw.url + "/.well-known/agent-card.json")[0] == 401
        assert http_json("POST", gw.url + "/a2a", {"jsonrpc": "2.0", "id": 1, "method": "tasks/get",
                                                   "params": {"id": "x"}})[0] == 401
        status, card, _ = http_json("GET", gw.url + "/.well-known/agent-card.json", headers=gw.client_headers())
        assert status == 200 and card["securitySchemes"]["bearer"]["scheme"] == "bearer"
    finally:
        gw.stop()


def test_with_several_tokens_each_caller_sees_only_its_own_tasks(gateway_binary, tmp_path):
    """ASYA_GATEWAY_TOKEN lists callers (as for MCP tasks): a task started with one token is
    unknown to another (tasks/get and tasks/cancel answer TaskNotFound) and works for its own."""
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_TOKEN": "alice-token,bob-token"}).start()
    alice = {"Authorization": "Bearer alice-token"}
    bob = {"Authorization": "Bearer bob-token"}

    def call(headers, method, params):
        return http_json("POST", gw.url + "/a2a", {"jsonrpc": "2.0", "id": 1, "method": method,
                                                   "params": params}, headers)[1]
    try:
        message = {"kind": "message", "messageId": "m-1", "role": "user",
                   "parts": [{"kind": "data", "data": {"text": "mine"}}], "metadata": {"skill": "echo"}}
        task = call(alice, "message/send", {"message": message})["result"]
        assert call(alice, "tasks/get", {"id": task["id"]})["result"]["id"] == task["id"]
        for method in ("tasks/get", "tasks/cancel", "tasks/resubscribe"):
            answer = call(bob, method, {"id": task["id"]})
            assert answer["error"]["code"] == -32001, (method, answer)
        assert call(alice, "tasks/get", {"id": task["id"]})["result"]["status"]["state"] != "canceled"
    finally:
        gw.stop()
