"""Traces with no collector (docs/tracing.md): a fan-out pipeline behind a real gateway, real
sidecars reporting to it; the sidecars send their spans to the gateway's /v1/traces, the gateway
keeps them with its own call span, and `asya trace ID --json` shows one connected trace."""
import json
import subprocess

import pytest

from gateway_harness import http_json, wait_until
from test_e2e_gateway import async_job, stream_events


@pytest.fixture(scope="module")
def asya_binary(build_path):
    path = build_path / "src" / "cli" / "asya"
    if not path.exists():
        pytest.fail(f"{path} not built: ninja -C {build_path} asya")
    return path


def test_a_fan_out_job_is_one_connected_trace_in_asya_trace(stack, asya_binary):
    job_id, _ = async_job(stack, "fanout", {"count": 2})
    assert stream_events(stack, job_id)[-1]["status"] == "succeeded"

    # The gateway's spans: the call, then fanout (1 hop), branch and happy-end (2 hops each).
    def spans():
        status, body, _ = http_json("GET", "%s/envelopes/%s/trace" % (stack.url, job_id), headers=stack.headers)
        assert status == 200, body
        hops = [s for s in body["spans"] if s["name"].startswith("process ")]
        return body["spans"] if len(hops) == 5 else None
    got = wait_until(spans, 30, "the 5 hop spans of the job at the gateway")
    by_id = {s["span_id"]: s for s in got}
    assert len(by_id) == len(got), "a span kept twice"
    assert len({s["trace_id"] for s in got}) == 1
    roots = [s for s in got if not s.get("parent_span_id")]
    assert [r["name"] for r in roots] == ["call fanout"], roots
    for s in got:
        if s is not roots[0]:
            assert s["parent_span_id"] in by_id, s  # every parent is there: one connected trace
    # Each hop hangs off the publish span of the hop before it (the call for the first).
    for hop in (s for s in got if s["name"].startswith("process ")):
        parent = by_id[hop["parent_span_id"]]
        assert parent["name"] == "call fanout" or parent["name"].startswith("publish "), (hop, parent)

    env = {"PATH": "/usr/bin:/bin", "HOME": str(stack.cluster.tmp)}
    if "ASYA_GATEWAY_TOKEN" in stack.tokens:
        env["ASYA_GATEWAY_TOKEN"] = stack.tokens["ASYA_GATEWAY_TOKEN"]
    shown = subprocess.run([str(asya_binary), "trace", job_id, "--gateway", stack.url, "--json"],
                           capture_output=True, text=True, timeout=60, env=env)
    assert shown.returncode == 0, shown.stderr
    waterfall = json.loads(shown.stdout)
    assert waterfall["job_id"] == job_id and waterfall["status"] == "succeeded"
    assert waterfall["trace_ids"] == [got[0]["trace_id"]]
    hops = waterfall["hops"]
    assert sorted(h["actor"] for h in hops) == ["branch", "branch", "fanout", "happy-end", "happy-end"]
    assert sorted(h["envelope_id"] for h in hops if h["actor"] == "branch") == [job_id, job_id + "-1"]
    for h in hops:
        assert h["outcome"] == "success", h
        if h["actor"] != "happy-end":
            assert h["handler_ms"] > 0 and h["publish_ms"] > 0, h
    # Branch 1 sleeps 0.4 s in its handler (e2e_handlers.branch).
    slow = next(h for h in hops if h["actor"] == "branch" and h["envelope_id"] == job_id + "-1")
    assert slow["handler_ms"] >= 400, slow
    assert all(h["start_offset_ms"] >= 0 for h in hops)


def test_the_items_of_a_batching_actor_are_hops_of_their_job_trace(stack, asya_binary):
    """Batching (docs/tracing.md "Batches"): a fan-out's branches go through an actor that batches
    (ASYA_BATCH_MAX_SIZE=8); each branch is a hop of the job's one trace at the gateway, with its
    share of the batch's runtime call, and `asya trace` shows a handler time for each."""
    job_id, _ = async_job(stack, "fanbatch", {"count": 3})
    assert stream_events(stack, job_id)[-1]["status"] == "succeeded"

    def spans():
        status, body, _ = http_json("GET", "%s/envelopes/%s/trace" % (stack.url, job_id), headers=stack.headers)
        assert status == 200, body
        hops = [s for s in body["spans"] if s["name"].startswith("process ")]
        acks = [s for s in body["spans"] if s["name"] == "ack"]
        return body["spans"] if len(hops) == 7 and len(acks) == 7 else None
    got = wait_until(spans, 30, "the 7 hop spans of the job at the gateway (fanout, 3 batched, 3 happy-end)")
    by_id = {s["span_id"]: s for s in got}
    assert len(by_id) == len(got), "a span kept twice"
    assert len({s["trace_id"] for s in got}) == 1
    roots = [s for s in got if not s.get("parent_span_id")]
    assert [r["name"] for r in roots] == ["call fanbatch"], roots
    for s in got:
        if s is not roots[0]:
            assert s["parent_span_id"] in by_id, s
    batched = [s for s in got if s["name"] == "process batched"]
    assert sorted(s["envelope_id"] for s in batched) == sorted([job_id, job_id + "-1", job_id + "-2"])
    for hop in batched:
        assert by_id[hop["parent_span_id"]]["name"] == "publish asya-batched"
        children = {s["name"]: s for s in got if s.get("parent_span_id") == hop["span_id"]}
        assert sorted(children) == ["ack", "publish asya-happy-end", "runtime call"], children
        call = children["runtime call"]
        size = call["attributes"]["asya.batch_size"]
        assert 1 <= size <= 3 and 0 <= call["attributes"]["asya.batch_index"] < size, call
    for hop in (s for s in got if s["name"] == "process happy-end"):
        assert by_id[by_id[hop["parent_span_id"]]["parent_span_id"]]["name"] == "process batched"

    env = {"PATH": "/usr/bin:/bin", "HOME": str(stack.cluster.tmp)}
    if "ASYA_GATEWAY_TOKEN" in stack.tokens:
        env["ASYA_GATEWAY_TOKEN"] = stack.tokens["ASYA_GATEWAY_TOKEN"]
    shown = subprocess.run([str(asya_binary), "trace", job_id, "--gateway", stack.url, "--json"],
                           capture_output=True, text=True, timeout=60, env=env)
    assert shown.returncode == 0, shown.stderr
    hops = json.loads(shown.stdout)["hops"]
    assert sorted(h["actor"] for h in hops) == ["batched"] * 3 + ["fanout"] + ["happy-end"] * 3
    for h in hops:
        assert h["outcome"] == "success", h
        if h["actor"] == "batched":
            assert h["handler_ms"] >= 50 and h["publish_ms"] > 0, h
