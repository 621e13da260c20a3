"""MCP Tasks (protocol 2025-11-25) on /mcp, with sidecars played by the test (FakeActor): the
capability and each tool's taskSupport, task-augmented calls with the official TypeScript SDK,
tasks kept in the job store (another replica, a restart), per-caller listing, cancellation (MCP,
REST), and the JSON-RPC errors for bad input."""
import json
import subprocess

import pytest

from gateway_harness import ROUTES, FakeActor, Gateway, http_json, wait_until
from test_mcp import MCP_CLIENT, initialize, npm_ready, rpc

JSON_ONLY = {"Accept": "application/json"}


class TasksClient:
    """tasks.mjs: the official SDK client, one JSON command per line."""

    def __init__(self, url, token=None):
        npm_ready()
        args = ["node", str(MCP_CLIENT / "tasks.mjs"), url] + ([token] if token else [])
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)

    def send(self, **command):
        """Sends a command without waiting for its answer (read it with answer())."""
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def answer(self):
        line = self.process.stdout.readline()
        assert line, "tasks.mjs ended: " + self.process.stderr.read()
        return json.loads(line)

    def __call__(self, **command):
        self.send(**command)
        return self.answer()

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def sdk(gateway):
    client = TasksClient(gateway.url)
    yield client
    client.close()


def session_2025_11_25(gateway):
    session, _ = initialize(gateway, "2025-11-25")
    return session


def call(gateway, session, method, params, request_id=7, headers=None):
    status, _, body = rpc(gateway, {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params},
                          session, dict(JSON_ONLY, **(headers or {})))
    assert status == 200, body
    return json.loads(body)


def job_of(gateway, job_id):
    return http_json("GET", f"{gateway.url}/envelopes/{job_id}")[1]


def test_the_capability_and_each_tools_task_support_are_advertised(gateway, sdk):
    capabilities = sdk(op="capabilities")["result"]
    assert capabilities["tasks"] == {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    tools = {t["name"]: t for t in sdk(op="tools")["result"]}
    assert tools["pipeline"]["execution"] == {"taskSupport": "optional"}  # async: tasks by default
    assert tools["echo"]["execution"] == {"taskSupport": "forbidden"}
    # Older protocol versions have no tasks.
    _, init = initialize(gateway, "2025-06-18")
    assert "tasks" not in init["result"]["capabilities"]


def test_a_task_augmented_call_is_polled_to_its_result_with_the_sdk(gateway, actor, sdk):
    sdk.send(op="stream", name="pipeline", arguments={"text": "as a task"}, ttl=60000)
    envelope = actor.receive("first", wait="30s")  # the job was started by tools/call
    actors = envelope["route"]["actors"]
    actor.progress(envelope["id"], actors, 0, "completed")
    actor.progress(envelope["id"], actors, 1, "processing", "thinking hard")
    # The SDK's own tasks/get polling sees the step (in the status message) before the end.
    probe = TasksClient(gateway.url)
    try:
        task = probe(op="get", taskId=envelope["id"])["result"]
        assert task["status"] == "working"
        assert task["statusMessage"] == "step 2 of 2: second: thinking hard"
        assert task["ttl"] == 60000 and task["pollInterval"] > 0
    finally:
        probe.close()
    actor.final(envelope["id"], "succeeded", {"answer": 42})
    messages = sdk.answer()["result"]
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "taskCreated" and kinds[-1] == "result", messages
    assert messages[0]["task"]["taskId"] == envelope["id"]  # task id = job id
    assert messages[0]["task"]["status"] == "working"
    assert "taskStatus" in kinds
    result = messages[-1]["result"]
    assert result["structuredContent"] == {"answer": 42} and result["isError"] is False
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": envelope["id"]}
    assert job_of(gateway, envelope["id"])["status"] == "succeeded"


def test_tasks_result_waits_for_the_end_and_streams_status_notifications(gateway, actor, sdk):
    created = sdk(op="create", name="pipeline", arguments={"text": "wait"})["result"]["task"]
    sdk.send(op="result", taskId=created["taskId"])  # blocks until the job ends
    envelope = actor.receive("first", wait="30s")
    actors = envelope["route"]["actors"]
    actor.progress(envelope["id"], actors, 0, "processing", "reading")
    actor.progress(envelope["id"], actors, 1, "processing", "writing")
    actor.final(envelope["id"], "succeeded", {"done": True})
    answer = sdk.answer()
    assert answer["result"]["structuredContent"] == {"done": True}, answer
    notes = sdk(op="statusNotifications")["result"]
    assert [n["taskId"] for n in notes] and all(n["taskId"] == created["taskId"] for n in notes)
    assert notes[-1]["status"] == "completed"
    assert any(n["statusMessage"] == "step 2 of 2: second: writing" for n in notes), notes


def test_tasks_cancel_ends_the_job_and_the_next_actor_is_told_to_skip_it(gateway, actor, sdk):
    created = sdk(op="create", name="pipeline", arguments={"text": "stop me"})["result"]["task"]
    envelope = actor.receive("first", wait="30s")
    actors = envelope["route"]["actors"]
    answer = actor.progress(envelope["id"], actors, 0, "received")[1]
    assert answer["job_status"] == "running" and "cancelled" not in answer
    cancelled = sdk(op="cancel", taskId=created["taskId"])["result"]
    assert cancelled["status"] == "cancelled" and cancelled["taskId"] == created["taskId"]
    assert job_of(gateway, created["taskId"])["status"] == "cancelled"
    # What the next sidecar asks before calling its handler (PROTOCOL §7), and a report's answer.
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{envelope['id']}/check", {},
                                  gateway.internal_headers())
    assert status == 200 and answer == {"job_status": "cancelled", "cancelled": True}
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/no-such-envelope/check", {},
                                  gateway.internal_headers())
    assert status == 200 and answer == {"cancelled": False}
    status, answer, _ = actor.progress(envelope["id"], actors, 1, "received")
    assert status == 200 and answer["cancelled"] is True and answer["job_status"] == "cancelled"
    assert sdk(op="get", taskId=created["taskId"])["result"]["status"] == "cancelled"
    # Cancelling again, or a finished task: -32602.
    again = sdk(op="cancel", taskId=created["taskId"])["error"]
    assert again["code"] == -32602 and "already cancelled" in again["message"]


def test_bad_task_input_gets_the_right_json_rpc_errors(gateway, actor):
    session = session_2025_11_25(gateway)
    for method in ("tasks/get", "tasks/result", "tasks/cancel"):
        error = call(gateway, session, method, {"taskId": "no-such-task"})["error"]
        assert error["code"] == -32602 and 'unknown task "no-such-task"' in error["message"], error
        error = call(gateway, session, method, {})["error"]
        assert error["code"] == -32602 and "params.taskId" in error["message"]
    # A job that is not a task is not one.
    plain = call(gateway, session, "tools/call", {"name": "pipeline", "arguments": {"text": "x"}})
    job_id = plain["result"]["structuredContent"]["job_id"]
    assert call(gateway, session, "tasks/get", {"taskId": job_id})["error"]["code"] == -32602
    # Malformed `task` parameters.
    for task, why in ((True, "params.task must be an object"), ({"ttl": -5}, "params.task.ttl must be"),
                      ({"ttl": "1h"}, "params.task.ttl must be")):
        error = call(gateway, session, "tools/call", {"name": "pipeline", "arguments": {"text": "x"},
                                                      "task": task})["error"]
        assert error["code"] == -32602 and why in error["message"], error
    # Invalid arguments of a task-augmented call: an error, not a tool result.
    error = call(gateway, session, "tools/call", {"name": "pipeline", "arguments": {}, "task": {}})["error"]
    assert error["code"] == -32602 and "text" in error["message"]
    # A tool that does not run as a task.
    error = call(gateway, session, "tools/call", {"name": "echo", "arguments": {"text": "x"}, "task": {}})["error"]
    assert error["code"] == -32601 and "task_support: forbidden" in error["message"]
    # Garbage cursors.
    for cursor in ("garbage", "c1.zz", "", 17):
        error = call(gateway, session, "tasks/list", {"cursor": cursor})["error"]
        assert error["code"] == -32602 and "not a cursor this server gave" in error["message"], (cursor, error)
    # Cancelling a finished task.
    created = call(gateway, session, "tools/call", {"name": "pipeline", "arguments": {"text": "y"}, "task": {}})
    task_id = created["result"]["task"]["taskId"]
    actor.final(task_id, "succeeded", {"ok": True})
    error = call(gateway, session, "tasks/cancel", {"taskId": task_id})["error"]
    assert error["code"] == -32602 and "already completed and cannot be cancelled" in error["message"]
    assert job_of(gateway, task_id)["status"] == "succeeded"


def test_tasks_list_pages_with_an_opaque_cursor_and_shows_only_the_callers_tasks(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_TOKEN": "alice-token,bob-token"}).start()
    try:
        alice = {"Authorization": "Bearer alice-token"}
        bob = {"Authorization": "Bearer bob-token"}

        def session_of(headers):
            status, response_headers, body = rpc(gw, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                                      "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                                                 "clientInfo": {"name": "t", "version": "1"}}},
                                                 extra=headers)
            assert status == 200, body
            return response_headers["Mcp-Session-Id"]

        alice_session, bob_session = session_of(alice), session_of(bob)
        created = []
        for i in range(52):  # a page holds 50
            answer = call(gw, alice_session, "tools/call",
                          {"name": "pipeline", "arguments": {"text": str(i)}, "task": {}}, headers=alice)
            created.append(answer["result"]["task"]["taskId"])
        bobs = call(gw, bob_session, "tools/call", {"name": "pipeline", "arguments": {"text": "b"}, "task": {}},
                    headers=bob)["result"]["task"]["taskId"]

        first = call(gw, alice_session, "tasks/list", {}, headers=alice)["result"]
        assert len(first["tasks"]) == 50 and first["nextCursor"]
        second = call(gw, alice_session, "tasks/list", {"cursor": first["nextCursor"]}, headers=alice)["result"]
        assert len(second["tasks"]) == 2 and "nextCursor" not in second
        listed = [t["taskId"] for t in first["tasks"] + second["tasks"]]
        assert sorted(listed) == sorted(created) and bobs not in listed
        assert [t["taskId"] for t in call(gw, bob_session, "tasks/list", {}, headers=bob)["result"]["tasks"]] == [bobs]
        # Another caller's task is unknown to bob, even with its id.
        error = call(gw, bob_session, "tasks/get", {"taskId": created[0]}, headers=bob)["error"]
        assert error["code"] == -32602
        assert call(gw, alice_session, "tasks/get", {"taskId": created[0]}, headers=alice)["result"]["taskId"] == created[0]
    finally:
        gw.stop()


def test_a_task_survives_a_gateway_restart_and_is_read_on_another_replica(gateway_binary, tmp_path, queue_tool):
    """Two gateways on one SQLite job store (ASYA_GATEWAY_DB); one is restarted mid-task."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shared = {"ASYA_GATEWAY_DB": str(tmp_path / "jobs.db"), "ASYA_SQLITE_PATH": str(tmp_path / "queues.db")}
    a = Gateway(gateway_binary, tmp_path / "a", ROUTES, shared).start()
    b = Gateway(gateway_binary, tmp_path / "b", ROUTES, shared).start()
    client_a = TasksClient(a.url)
    try:
        task = client_a(op="create", name="pipeline", arguments={"text": "durable"})["result"]["task"]
        actor = FakeActor(queue_tool, a)
        envelope = actor.receive("first", wait="30s")
        actor.progress(envelope["id"], envelope["route"]["actors"], 0, "processing", "halfway")
        client_b = TasksClient(b.url)
        try:
            seen = client_b(op="get", taskId=task["taskId"])["result"]
            assert seen["status"] == "working" and seen["statusMessage"] == "step 1 of 2: first: halfway"
            assert task["taskId"] in [t["taskId"] for t in client_b(op="list")["result"]["tasks"]]
        finally:
            client_b.close()
        client_a.close()
        assert a.stop() == 0
        a.start()  # restarted mid-task: the task is still there
        FakeActor(queue_tool, b).final(envelope["id"], "succeeded", {"survived": True})
        client_a = TasksClient(a.url)
        assert client_a(op="get", taskId=task["taskId"])["result"]["status"] == "completed"
        result = client_a(op="result", taskId=task["taskId"])["result"]
        assert result["structuredContent"] == {"survived": True}
    finally:
        client_a.close()
        a.stop()
        b.stop()


def test_rest_cancel_and_its_errors(gateway, actor):
    _, started, _ = http_json("POST", gateway.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "r"}})
    job_id = started["structuredContent"]["job_id"]
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{job_id}/cancel", {"reason": "user pressed stop"})
    assert status == 200 and answer == {"id": job_id, "status": "cancelled"}
    job = job_of(gateway, job_id)
    assert job["status"] == "cancelled" and job["error"] == "cancelled: user pressed stop"
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{job_id}/cancel", {})
    assert status == 409 and "already cancelled" in answer["error"]
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/nope/cancel", {})
    assert status == 404 and "nope" in answer["error"]
    status, answer, _ = http_json("POST", f"{gateway.url}/envelopes/{job_id}/cancel", {"reason": 5})
    assert status == 400 and "reason" in answer["error"]
    # The sidecar's final report after a cancel changes nothing.
    actor.final(job_id, "succeeded", {"late": True})
    assert job_of(gateway, job_id)["status"] == "cancelled"


def test_rest_cancel_needs_the_client_token_not_the_sidecar_one(gateway_binary, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_TOKEN": "client",
                                                   "ASYA_GATEWAY_INTERNAL_TOKEN": "sidecar"}).start()
    try:
        _, started, _ = http_json("POST", gw.url + "/tools/call", {"name": "pipeline", "arguments": {"text": "r"}},
                                  {"Authorization": "Bearer client"})
        job_id = started["structuredContent"]["job_id"]
        url = f"{gw.url}/envelopes/{job_id}/cancel"
        assert http_json("POST", url, {}, {"Authorization": "Bearer sidecar"})[0] == 401
        assert http_json("POST", url, {}, {"Authorization": "Bearer client"})[0] == 200
    finally:
        gw.stop()


def test_a_task_from_replica_a_is_read_listed_and_cancelled_on_replica_b_over_postgresql(
        gateway_binary, tmp_path, postgres_url, queue_tool):
    from test_postgres_replicas import fresh_database
    _, url = fresh_database(postgres_url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shared = {"ASYA_DATABASE_URL": url, "ASYA_SQLITE_PATH": str(tmp_path / "queues.db")}
    a = Gateway(gateway_binary, tmp_path / "a", ROUTES, shared).start()
    b = Gateway(gateway_binary, tmp_path / "b", ROUTES, shared).start()
    client_a, client_b = TasksClient(a.url), TasksClient(b.url)
    try:
        task = client_a(op="create", name="pipeline", arguments={"text": "pg"})["result"]["task"]
        envelope = FakeActor(queue_tool, a).receive("first", wait="30s")
        FakeActor(queue_tool, a).progress(envelope["id"], envelope["route"]["actors"], 0, "processing", "on a")
        seen = client_b(op="get", taskId=task["taskId"])["result"]
        assert seen["status"] == "working" and seen["statusMessage"] == "step 1 of 2: first: on a"
        assert task["taskId"] in [t["taskId"] for t in client_b(op="list")["result"]["tasks"]]
        client_a.send(op="result", taskId=task["taskId"])  # waits on A ...
        assert client_b(op="cancel", taskId=task["taskId"])["result"]["status"] == "cancelled"  # ... cancelled on B
        result = client_a.answer()["result"]
        assert result["isError"] is True and result["structuredContent"]["status"] == "cancelled", result
        assert client_a(op="get", taskId=task["taskId"])["result"]["status"] == "cancelled"
    finally:
        client_a.close()
        client_b.close()
        a.stop()
        b.stop()
