"""MCP Tasks and cancellation end to end (issue 17): the official MCP SDK client, the real gateway,
real sidecars reporting to it and real Python handlers that record every run in TEST_MARKER_DIR
(e2e_handlers.slow_first / slow_second). A cancelled job's remaining actors never run: the handlers'
own records show it."""
import json
import subprocess
import sys
import pathlib
import uuid

from gateway_harness import http_json, wait_until

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "gateway"))
from test_mcp_tasks import TasksClient  # noqa: E402


def client(stack):
    return TasksClient(stack.url, stack.tokens.get("ASYA_GATEWAY_TOKEN"))


def tag():
    return uuid.uuid4().hex[:12]


def stored(stack, envelope_id, timeout=60):
    path = stack.results / ("%s.json" % envelope_id)
    wait_until(path.exists, timeout, "result file %s" % path)
    return json.loads(path.read_text())


def ran(stack, t):
    return stack.cluster.markers_named(t + ".")


def test_a_task_augmented_call_is_polled_to_its_result(stack):
    sdk = client(stack)
    try:
        t = tag()
        messages = sdk(op="stream", name="slow_task", arguments={"tag": t, "sleep": 0.3})["result"]
    finally:
        sdk.close()
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "taskCreated" and kinds[-1] == "result", messages
    assert messages[-1]["result"]["structuredContent"] == {"tag": t, "sleep": 0.3, "second": True}
    assert ran(stack, t) == [t + ".slow-first", t + ".slow-second"]


def test_cancelling_a_running_task_stops_its_remaining_actors(stack):
    sdk = client(stack)
    try:
        running, queued = tag(), tag()
        first = sdk(op="create", name="slow_task", arguments={"tag": running, "sleep": 3})["result"]["task"]
        wait_until(lambda: ran(stack, running), 30, "slow-first to start the running task")
        # slow-first runs one message at a time: this one waits in its queue meanwhile.
        second = sdk(op="create", name="slow_task", arguments={"tag": queued, "sleep": 0})["result"]["task"]
        for task in (first, second):
            cancelled = sdk(op="cancel", taskId=task["taskId"])["result"]
            assert cancelled["status"] == "cancelled", cancelled
        # Both envelopes end in error-end as `cancelled`: the running handler finished but its
        # output went no further; the queued one never reached a handler.
        for task in (first, second):
            envelope = stored(stack, task["taskId"])
            assert envelope["payload"]["error"] == "cancelled", envelope
        assert "not forwarded" in stored(stack, first["taskId"])["payload"]["details"]["message"]
        assert "before actor slow-first started" in stored(stack, second["taskId"])["payload"]["details"]["message"]
        assert ran(stack, running) == [running + ".slow-first"]
        assert ran(stack, queued) == []
        for task in (first, second):
            assert sdk(op="get", taskId=task["taskId"])["result"]["status"] == "cancelled"
    finally:
        sdk.close()


def test_asya_cancel_cancels_a_job_and_explains_a_finished_one(stack, build_path):
    asya = build_path / "src" / "cli" / "asya"
    t = tag()
    status, answer, _ = http_json("POST", stack.url + "/tools/call",
                                  {"name": "slow_task", "arguments": {"tag": t, "sleep": 2}}, stack.headers)
    assert status == 200, answer
    job_id = answer["structuredContent"]["job_id"]
    wait_until(lambda: ran(stack, t), 30, "slow-first to start")
    env = {"PATH": "/usr/bin:/bin"}
    if stack.tokens.get("ASYA_GATEWAY_TOKEN"):
        env["ASYA_GATEWAY_TOKEN"] = stack.tokens["ASYA_GATEWAY_TOKEN"]
    command = [str(asya), "cancel", job_id, "--gateway", stack.url, "--reason", "changed my mind"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "cancelled " + job_id, done
    assert stored(stack, job_id)["payload"]["error"] == "cancelled"
    assert ran(stack, t) == [t + ".slow-first"]
    status, body, _ = http_json("GET", "%s/envelopes/%s" % (stack.url, job_id), headers=stack.headers)
    assert body["status"] == "cancelled" and body["error"] == "cancelled: changed my mind"
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already cancelled" in again.stderr, again
    unknown = subprocess.run([str(asya), "cancel", "no-such-job", "--gateway", stack.url], env=env,
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no-such-job" in unknown.stderr, unknown


def test_cancelling_a_fanned_out_job_stops_its_remaining_branches(stack):
    """Branch i sleeps 0.4*i s on one `branch` replica, so the branches run one after another: once
    branch 1 ended, the later ones are still queued (or running) and must end as `cancelled`."""
    status, answer, _ = http_json("POST", stack.url + "/tools/call", {"name": "fanout", "arguments": {"count": 6}},
                                  stack.headers)
    assert status == 200, answer
    job_id = answer["structuredContent"]["job_id"]
    stored(stack, job_id + "-1")
    status, answer, _ = http_json("POST", "%s/envelopes/%s/cancel" % (stack.url, job_id), {}, stack.headers)
    assert status == 200 and answer["status"] == "cancelled", answer
    for branch in range(3, 6):
        envelope = stored(stack, "%s-%d" % (job_id, branch))
        assert envelope["payload"]["error"] == "cancelled", envelope
    status, body, _ = http_json("GET", "%s/envelopes/%s" % (stack.url, job_id), headers=stack.headers)
    assert body["status"] == "cancelled"
