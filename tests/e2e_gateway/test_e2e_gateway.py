"""End to end through the real system: a client calls a tool on asya-gateway, the envelope
crosses real sidecars and Python runtimes on the SQLite queue, the end actors store the result and
report it, and the client gets it (REST, SSE, and MCP through the official TypeScript SDK).
Cases after the published gateway+actors integration suite (research 11.G)."""
import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from gateway_harness import http_json, wait_until
from sse import SseStream

MCP_CLIENT = pathlib.Path(__file__).resolve().parent.parent / "gateway" / "mcp_client"


def call(stack, name, arguments, timeout=60):
    """POST /tools/call; returns the CallToolResult."""
    status, result, _ = http_json("POST", stack.url + "/tools/call", {"name": name, "arguments": arguments},
                                  headers=stack.headers, timeout=timeout)
    assert status == 200, result
    return result


def job(stack, job_id):
    status, body, _ = http_json("GET", "%s/envelopes/%s" % (stack.url, job_id), headers=stack.headers)
    assert status == 200, body
    return body


def stored(stack, envelope_id, timeout=10):
    path = stack.results / ("%s.json" % envelope_id)
    wait_until(path.exists, timeout, "result file %s" % path)
    return json.loads(path.read_text())


def async_job(stack, name, arguments):
    """Calls an async tool; returns (job id, the answer's structuredContent)."""
    info = call(stack, name, arguments)["structuredContent"]
    return info["job_id"], info


def stream_events(stack, job_id, timeout=30):
    stream = SseStream("%s/envelopes/%s/stream" % (stack.url, job_id), headers=stack.headers, timeout=timeout)
    assert stream.status == 200
    try:
        return [data for _, event, data in stream.events() if event == "update"]
    finally:
        stream.close()


def test_echo_succeeds_and_the_result_store_holds_the_same_payload(stack):
    status, answer, _ = http_json("POST", stack.url + "/tools/call",
                                  {"name": "echo", "arguments": {"message": "Hello, World!"}},
                                  headers=stack.headers, timeout=60)
    assert status == 200
    assert answer["isError"] is False
    assert answer["structuredContent"] == {"echoed": "Hello, World!"}
    # The job id is the envelope id; find it through the stored result of this message.
    files = [json.loads(p.read_text()) for p in stack.results.glob("*.json")]
    mine = [f for f in files if f["payload"] == {"echoed": "Hello, World!"}]
    assert len(mine) == 1, files
    envelope = mine[0]
    assert envelope["route"]["actors"] == ["echo"] and envelope["route"]["current"] == 1
    record = job(stack, envelope["id"])
    assert record["status"] == "succeeded"
    assert record["result"] == envelope["payload"]
    assert record["progress_percent"] == 100


def test_two_actor_pipeline_streams_monotonic_progress_to_succeeded(stack):
    job_id, info = async_job(stack, "pipeline", {"value": 10})
    assert info["stream_url"] == "/envelopes/%s/stream" % job_id
    events = stream_events(stack, job_id)
    percents = [e["progress_percent"] for e in events]
    assert percents == sorted(percents), percents
    assert len(events) >= 3
    assert {e["actor"] for e in events} & {"doubler", "incrementer"}
    last = events[-1]
    assert last["status"] == "succeeded" and last["progress_percent"] == 100
    assert last["result"] == {"value": 25}
    record = job(stack, job_id)
    assert record["status"] == "succeeded" and record["result"] == {"value": 25}
    assert record["total_actors"] == 2
    assert stored(stack, job_id)["payload"] == {"value": 25}


def test_error_tool_fails_with_the_error(stack):
    answer = call(stack, "error", {"should_fail": True})
    assert answer["isError"] is True
    # The text says what failed where (issue 19: it said only "processing_error").
    assert answer["content"][0]["text"] == (
        'ValueError: asked to fail: should_fail=True (processing_error in actor "fail")')
    failure = answer["structuredContent"]
    assert failure["status"] == "failed" and failure["error"] == "processing_error"
    assert failure["failed_actor"] == "fail"
    assert failure["error_details"]["type"] == "ValueError"
    assert failure["error_details"]["message"] == "asked to fail: should_fail=True"
    record = job(stack, failure["job_id"])
    assert record["status"] == "failed" and record["error"] == "processing_error"
    # error-end stored the error envelope under the job's id.
    envelope = stored(stack, failure["job_id"])
    assert envelope["route"] == {"actors": ["fail"], "current": 0,
                                 "metadata": {"job_id": failure["job_id"], "tool": "error"}}
    assert envelope["payload"]["error"] == "processing_error"
    assert envelope["payload"]["original_payload"] == {"should_fail": True}


def test_fan_out_succeeds_only_after_every_branch_ended(stack):
    job_id, _ = async_job(stack, "fanout", {"count": 3})
    events = stream_events(stack, job_id)
    assert events[-1]["status"] == "succeeded"
    assert [e for e in events if e["status"] in ("succeeded", "failed")] == [events[-1]]
    # Branch i sleeps 0.4*i s; the job is final only once all three reached happy-end (each writes
    # its result file before it reports).
    for branch_id in (job_id, job_id + "-1", job_id + "-2"):
        assert (stack.results / ("%s.json" % branch_id)).exists(), branch_id
    record = job(stack, job_id)
    assert record["status"] == "succeeded"
    assert record["payload"] == {"count": 3}
    assert [r["index"] for r in record["result"]] == [0, 1, 2]
    assert all(r["done"] and r["count"] == 3 for r in record["result"])
    assert sorted(b["id"] for b in record["branches"]) == sorted([job_id, job_id + "-1", job_id + "-2"])


def test_a_joined_fan_out_finishes_once_with_the_joins_one_result(stack):
    # PROTOCOL §4a: the branches end in the join actor; the job ends with its one output.
    job_id, _ = async_job(stack, "fanjoin", {"count": 4})
    events = stream_events(stack, job_id)
    assert events[-1]["status"] == "succeeded"
    assert [e for e in events if e["status"] in ("succeeded", "failed")] == [events[-1]]
    record = job(stack, job_id)
    assert record["status"] == "succeeded"
    assert record["result"] == {"joined": [0, 1, 2, 3], "all_done": True}
    assert [b["id"] for b in record.get("branches", [{"id": job_id}])] == [job_id]  # one branch: omitted
    assert any("joined 4 of 4 branches" in e.get("message", "") for e in events), events
    assert stored(stack, job_id)["payload"] == record["result"]
    for child in ("-1", "-2", "-3"):
        assert not (stack.results / ("%s%s.json" % (job_id, child))).exists()


JOINED = re.compile(r"joined (\d+) of (\d+) branches")


def joined_counts(messages, total):
    """The k of every "joined k of <total> branches" message, in order."""
    counts = []
    for message in messages:
        found = JOINED.search(message or "")
        if found and int(found.group(2)) == total:
            counts.append(int(found.group(1)))
    return counts


def test_a_join_reports_its_running_branch_count_on_rest_and_sse(stack):
    # PROTOCOL §7: the join's sidecar reports "joined k of n" while branches are stored (the first,
    # then at most one count per 250 ms, then the completing one); branches reach it 0.3 s apart.
    job_id, _ = async_job(stack, "fanjoin_paced", {"count": 12})
    seen = []

    def rest_shows_a_running_count():
        record = job(stack, job_id)
        seen.append(record["message"])
        return any(c < 12 for c in joined_counts([record["message"]], 12)) or \
            record["status"] in ("succeeded", "failed")
    wait_until(rest_shows_a_running_count, 90, "GET /envelopes/%s to show a running join count" % job_id)
    assert any(c < 12 for c in joined_counts(seen, 12)), seen
    events = stream_events(stack, job_id, timeout=90)
    assert events[-1]["status"] == "succeeded", events[-1]
    counts = joined_counts([e.get("message") for e in events], 12)
    assert len({c for c in counts if c < 12}) >= 2, counts
    assert counts == sorted(counts) and counts[-1] == 12, counts
    percents = [e["progress_percent"] for e in events]
    assert percents == sorted(percents), percents
    assert job(stack, job_id)["result"] == {"joined": list(range(12)), "all_done": True}


def test_mcp_progress_notifications_show_the_joins_running_count(stack):
    npm_ready()
    env = dict(os.environ)
    env.pop("ASYA_GATEWAY_TOKEN", None)
    env.update({k: v for k, v in stack.tokens.items() if k == "ASYA_GATEWAY_TOKEN"})
    proc = subprocess.run(["node", str(MCP_CLIENT / "call_tool.mjs"), stack.url, "fanjoin_paced_sync",
                           json.dumps({"count": 12})], capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["result"]["isError"] is False, out["result"]
    assert out["result"]["structuredContent"] == {"joined": list(range(12)), "all_done": True}
    counts = joined_counts([p.get("message") for p in out["progress"]], 12)
    assert len({c for c in counts if c < 12}) >= 2, out["progress"]
    assert counts == sorted(counts), counts
    values = [p["progress"] for p in out["progress"]]
    assert values == sorted(values)


def test_empty_response_succeeds(stack):
    answer = call(stack, "empty", {"message": "empty test"})
    assert answer["isError"] is False
    files = [json.loads(p.read_text()) for p in stack.results.glob("*.json")]
    mine = [f for f in files if f["payload"] == {"message": "empty test"}]
    assert len(mine) == 1
    assert job(stack, mine[0]["id"])["status"] == "succeeded"


def test_ten_concurrent_calls_each_get_their_own_result(stack):
    messages = ["concurrent-%d" % i for i in range(10)]
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda m: call(stack, "echo", {"message": m}), messages))
    assert [a["structuredContent"] for a in answers] == [{"echoed": m} for m in messages]
    assert all(a["isError"] is False for a in answers)


def test_unicode_argument_round_trips(stack):
    text = "Hello 世界 🌍 مرحبا こんにちは Привет"
    answer = call(stack, "echo", {"message": text})
    assert answer["structuredContent"] == {"echoed": text}
    files = [json.loads(p.read_text(encoding="utf-8")) for p in stack.results.glob("*.json")]
    assert [f for f in files if f["payload"] == {"echoed": text}]


def test_tool_timeout_fails_the_job(stack):
    started = time.monotonic()
    answer = call(stack, "timeout", {"sleep_seconds": 12})
    took = time.monotonic() - started
    assert answer["isError"] is True
    assert answer["content"][0]["text"] == "timed out"
    # The tool's 2 s timeout, not the handler's 12 s (the margin is for a loaded machine).
    assert took < 10, took
    record = job(stack, answer["structuredContent"]["job_id"])
    assert record["status"] == "failed" and record["error"] == "timed out"


def npm_ready():
    if not (MCP_CLIENT / "node_modules" / "@modelcontextprotocol" / "sdk").exists():
        npm = shutil.which("npm")
        if not npm:
            pytest.fail("npm not installed: the MCP test needs node and npm")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=MCP_CLIENT, check=True, timeout=600)


def test_mcp_tools_call_through_the_pipeline_with_progress_notifications(stack):
    npm_ready()
    # call_tool.mjs sends ASYA_GATEWAY_TOKEN as its bearer token when set.
    env = dict(os.environ)
    env.pop("ASYA_GATEWAY_TOKEN", None)
    env.update({k: v for k, v in stack.tokens.items() if k == "ASYA_GATEWAY_TOKEN"})
    proc = subprocess.run(["node", str(MCP_CLIENT / "call_tool.mjs"), stack.url, "pipeline_sync",
                           json.dumps({"value": 10})], capture_output=True, text=True, timeout=90,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["result"]["isError"] is False
    assert out["result"]["structuredContent"] == {"value": 25}
    progress = out["progress"]
    assert progress, "no progress notifications reached the SDK client"
    values = [p["progress"] for p in progress]
    assert values == sorted(values)
    assert all(p["total"] == 100 for p in progress)


def test_tokens_are_enforced_and_no_sidecar_report_was_refused(stack):
    """With both tokens, the gateway refuses clients without the client token and sidecar calls
    without the internal one, while every report of the real sidecars above was accepted; without
    tokens nothing is refused either."""
    if stack.tokens:
        status, body, _ = http_json("POST", stack.url + "/tools/call",
                                    {"name": "echo", "arguments": {"message": "x"}})
        assert status == 401 and "ASYA_GATEWAY_TOKEN" in body["error"]
        # The client token does not open the sidecar endpoints.
        status, body, _ = http_json("POST", stack.url + "/envelopes/forged/final",
                                    {"id": "forged", "status": "succeeded", "result": 1},
                                    headers=stack.headers)
        assert status == 401 and "ASYA_GATEWAY_INTERNAL_TOKEN" in body["error"]
    answer = call(stack, "pipeline_sync", {"value": 1})
    assert answer["isError"] is False and answer["structuredContent"] == {"value": 7}
    logs = "".join(a.sidecar.text() for a in stack.cluster.actors if a.sidecar)
    assert "gateway refused" not in logs and "dropped after" not in logs, logs[-3000:]
